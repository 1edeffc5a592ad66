package argocd_test

import (
	"strings"
	"testing"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
	"converge.dev/converge/internal/dialect/argocd"
)

// TestRollbackTo: `argocd app rollback`'s choices and refusals.
func TestRollbackTo(t *testing.T) {
	src := v1alpha1.ApplicationSource{RepoURL: "https://git.example.com/apps.git", Path: "apps/web", TargetRevision: "main"}
	hist := []v1alpha1.RevisionHistory{{ID: 3, Revision: "aaa", Source: src}, {ID: 4, Revision: "bbb", Source: src}, {ID: 5, Revision: "ccc", Source: src}}
	app := func(automated bool, h []v1alpha1.RevisionHistory) *v1alpha1.Application {
		a := &v1alpha1.Application{Spec: v1alpha1.ApplicationSpec{Source: &src, SyncPolicy: &v1alpha1.SyncPolicy{}}, Status: v1alpha1.ApplicationStatus{History: h}}
		a.Name = "web"
		if automated {
			a.Spec.SyncPolicy.Automated = &v1alpha1.SyncPolicyAutomated{}
		}
		return a
	}
	moved := append([]v1alpha1.RevisionHistory{{ID: 1, Revision: "old", Source: v1alpha1.ApplicationSource{RepoURL: src.RepoURL, Path: "apps/legacy"}}}, hist...)
	for _, tc := range []struct {
		name     string
		app      *v1alpha1.Application
		id       int64
		revision string
		err      string
	}{
		{"the one before the last", app(false, hist), -1, "bbb", ""},
		{"by id", app(false, hist), 3, "aaa", ""},
		{"automated sync", app(true, hist), 3, "", "rollback cannot be initiated when auto-sync is enabled"},
		{"one deployment", app(false, hist[:1]), -1, "", "Application 'web' should have at least two successful deployments"},
		{"unknown id", app(false, hist), 9, "", "application web does not have deployment with id 9"},
		{"another path", app(false, moved), 1, "", `rendered from https://git.example.com/apps.git path "apps/legacy"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := argocd.RollbackTo(tc.app, tc.id)
			switch {
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Errorf("got %v, want an error containing %q", err, tc.err)
			case tc.err == "" && (err != nil || e.Revision != tc.revision):
				t.Errorf("got %+v %v, want revision %s", e, err, tc.revision)
			}
		})
	}
}
