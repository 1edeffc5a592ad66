package controller

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
	"converge.dev/converge/internal/clustertest"
	"converge.dev/converge/internal/server/rbac"
)

// TestUIPolicyLoader reads argocd-rbac-cm and the AppProjects beside it
// from the real API server: none is Argo CD's default (the built-in
// roles); a good one binds its users, with its policy.<name>.csv
// overlays and scopes; the roles of a project in that namespace bind
// their groups, and a project elsewhere binds nobody; one that does not
// parse refuses everyone, the local admin too.
func TestUIPolicyLoader(t *testing.T) {
	c, _ := setup(t)
	admin, bob := rbac.User{Name: "admin"}, rbac.User{Name: "bob", Groups: []string{"team-a-ci"}}
	other := clustertest.Namespace(t)
	role := []v1alpha1.ProjectRole{{Name: "ci", Groups: []string{"team-a-ci"}, Policies: []string{"p, proj:team-a:ci, applications, sync, team-a/*, allow"}}}
	create(t, c, &v1alpha1.AppProject{ObjectMeta: metav1.ObjectMeta{Namespace: other, Name: "team-b"},
		Spec: v1alpha1.AppProjectSpec{Roles: []v1alpha1.ProjectRole{{Name: "ci", Groups: []string{"team-a-ci"},
			Policies: []string{"p, proj:team-b:ci, applications, sync, team-b/*, allow"}}}}})
	for _, tc := range []struct {
		name          string
		data          map[string]string // nil: no ConfigMap
		project       bool
		admin, bobGet bool
		bobSyncA      bool
	}{
		{"no ConfigMap", nil, false, true, false, false},
		{"a good policy", map[string]string{"policy.csv": "g, bob, role:readonly\n"}, false, true, true, false},
		{"an overlay", map[string]string{"policy.csv": "", "policy.team.csv": "g, bob, role:readonly\n"}, false, true, true, false},
		{"scopes name the email", map[string]string{"policy.csv": "g, team-a-ci, role:readonly\n", "scopes": "[email]"}, false, true, false, false},
		{"scopes name the groups", map[string]string{"policy.csv": "g, team-a-ci, role:readonly\n", "scopes": "[groups, email]"}, false, true, true, false},
		{"a project role", nil, true, true, false, true},
		{"scopes that do not parse", map[string]string{"scopes": "[groups"}, false, false, false, false},
		{"a policy that does not parse", map[string]string{"policy.csv": "g, bob, role:readonly\np, role:x, applications\n"}, false, false, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := clustertest.Namespace(t)
			if tc.data != nil {
				create(t, c, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "argocd-rbac-cm"}, Data: tc.data})
			}
			if tc.project {
				create(t, c, &v1alpha1.AppProject{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "team-a"}, Spec: v1alpha1.AppProjectSpec{Roles: role}})
			}
			p := &policyLoader{reader: c, projects: c, key: types.NamespacedName{Namespace: ns, Name: "argocd-rbac-cm"}}
			e := p.get()
			if got := e.Can(admin, rbac.Applications, rbac.Delete, "default/web"); got != tc.admin {
				t.Errorf("admin may delete: %v, want %v", got, tc.admin)
			}
			if got := e.Can(bob, rbac.Applications, rbac.Get, "default/web"); got != tc.bobGet {
				t.Errorf("bob may read: %v, want %v", got, tc.bobGet)
			}
			if got := e.Can(bob, rbac.Applications, rbac.Sync, "team-a/web"); got != tc.bobSyncA {
				t.Errorf("bob may sync team-a/web: %v, want %v", got, tc.bobSyncA)
			}
			if e.Can(bob, rbac.Applications, rbac.Sync, "team-b/web") {
				t.Error("a project outside the RBAC namespace granted bob a sync")
			}
		})
	}
}
