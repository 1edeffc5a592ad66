package flux

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	sourcev1 "converge.dev/converge/internal/api/fluxcd/source/v1"
	"converge.dev/converge/internal/engine"
	"converge.dev/converge/internal/object"
	"converge.dev/converge/internal/plan"
)

func TestRevisions(t *testing.T) {
	for _, tc := range []struct {
		ref           *sourcev1.GitRepositoryRef
		rev, artifact string
	}{
		{nil, "", "HEAD@sha1:abc"},
		{&sourcev1.GitRepositoryRef{Branch: "main"}, "branch:main", "main@sha1:abc"},
		{&sourcev1.GitRepositoryRef{Tag: "v1.2.0"}, "tag:v1.2.0", "v1.2.0@sha1:abc"},
		{&sourcev1.GitRepositoryRef{SemVer: ">=1.0.0", Branch: "main"}, "semver:>=1.0.0", ">=1.0.0@sha1:abc"},
		{&sourcev1.GitRepositoryRef{Name: "refs/heads/dev", Tag: "x"}, "refs/heads/dev", "refs/heads/dev@sha1:abc"},
		{&sourcev1.GitRepositoryRef{Commit: "abc", Branch: "main"}, "abc", "sha1:abc"},
	} {
		if got := Revision(tc.ref); got != tc.rev {
			t.Errorf("Revision(%+v) = %q, want %q", tc.ref, got, tc.rev)
		}
		got := ArtifactRevision(tc.ref, "abc")
		if got != tc.artifact {
			t.Errorf("ArtifactRevision(%+v) = %q, want %q", tc.ref, got, tc.artifact)
		}
		if CommitOf(got) != "abc" {
			t.Errorf("CommitOf(%q) = %q", got, CommitOf(got))
		}
	}
}

func TestUnsupported(t *testing.T) {
	ks := &unstructured.Unstructured{Object: map[string]any{
		"kind": "Kustomization",
		"spec": map[string]any{
			"path": "./x", "prune": true, "interval": "5m",
			"sourceRef":      map[string]any{"kind": "GitRepository", "name": "s", "exotic": "y"},
			"postBuild":      map[string]any{"substitute": map[string]any{"a": "b"}},
			"decryption":     map[string]any{"provider": "sops"},
			"components":     []any{"../c"},
			"healthChecks":   []any{},
			"dependsOn":      []any{map[string]any{"name": "a"}},
			"commonMetadata": map[string]any{},
		},
	}}
	got := strings.Join(Unsupported(ks), ",")
	want := "spec.sourceRef.exotic"
	if got != want {
		t.Errorf("Unsupported = %s\nwant          %s", got, want)
	}
	// force: false is Flux's default and asks for nothing; true asks to
	// recreate objects whose immutable fields changed, which converge
	// does not do.
	for force, want := range map[bool]string{false: "spec.sourceRef.exotic", true: "spec.force,spec.sourceRef.exotic"} {
		ks.Object["spec"].(map[string]any)["force"] = force
		if got := strings.Join(Unsupported(ks), ","); got != want {
			t.Errorf("force %v: Unsupported = %s, want %s", force, got, want)
		}
	}
}

func TestInventory(t *testing.T) {
	rep := engine.Report{Plan: plan.Plan{Steps: []plan.Step{
		{Ref: object.Ref{Group: "apps", Version: "v1", Kind: "Deployment", Namespace: "shop", Name: "web"}, Action: plan.Update},
		{Ref: object.Ref{Version: "v1", Kind: "Namespace", Name: "shop"}, Action: plan.Unchanged},
		{Ref: object.Ref{Version: "v1", Kind: "ConfigMap", Namespace: "shop", Name: "gone"}, Action: plan.Prune},
		{Ref: object.Ref{Version: "v1", Kind: "ConfigMap", Namespace: "shop", Name: "theirs"}, Action: plan.Conflict},
	}}}
	var ids []string
	for _, e := range Inventory(rep).Entries {
		ids = append(ids, e.ID+"@"+e.Version)
	}
	if got := strings.Join(ids, " "); got != "_shop__Namespace@v1 shop_web_apps_Deployment@v1" {
		t.Errorf("inventory %s", got)
	}
}

func TestReadyOfAndMarkUnsupported(t *testing.T) {
	obj := map[string]any{"status": map[string]any{"conditions": []any{
		map[string]any{"type": "Reconciling", "status": "True"},
		map[string]any{"type": "Ready", "status": "False", "reason": "BuildFailed", "message": "kustomize build failed"},
	}}}
	if c := ReadyOf(obj); c == nil || c.Status != metav1.ConditionFalse || c.Reason != "BuildFailed" || c.Message != "kustomize build failed" {
		t.Errorf("ReadyOf = %+v", c)
	}
	if c := ReadyOf(map[string]any{"status": map[string]any{}}); c != nil {
		t.Errorf("ReadyOf without conditions = %+v", c)
	}
	var conds []metav1.Condition
	MarkUnsupported(&conds, 3, []string{"spec.a", "spec.b"})
	if len(conds) != 1 || conds[0].Message != "fields not supported by converge, ignored: spec.a, spec.b" || conds[0].ObservedGeneration != 3 {
		t.Errorf("conditions %+v", conds)
	}
	MarkUnsupported(&conds, 4, nil)
	if len(conds) != 0 {
		t.Errorf("conditions after none: %+v", conds)
	}
}
