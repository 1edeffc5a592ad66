package controller

import (
	"context"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
	"converge.dev/converge/internal/clustertest"
)

// TestDefaultProject: an Application in project "default" works with no
// AppProject written, as in Argo CD, which creates that project itself;
// a field of the project converge does not act on is named on the
// Application.
func TestDefaultProject(t *testing.T) {
	c, repo := setup(t)
	ctx := context.Background()
	ensureNamespace(t, c, "argocd")
	def := &v1alpha1.AppProject{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: "argocd"}}
	if err := c.Delete(ctx, def); err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	ns := clustertest.Namespace(t)
	name := "default-" + ns
	app := argoApp(name, ns, "default", map[string]any{"repoURL": "file://" + repo.Bare, "path": "apps/guestbook-jsonnet",
		"directory": map[string]any{"jsonnet": map[string]any{"libs": []any{"jsonnet-lib"},
			"extVars": []any{map[string]any{"name": "app", "value": "x"}}}}})
	_ = unstructured.SetNestedMap(app.Object, map[string]any{}, "spec", "syncPolicy", "automated")
	create(t, c, app)
	getApp(t, c, name, "Synced", func(a *v1alpha1.Application) bool { return a.Status.Sync.Status == "Synced" })
	if err := c.Get(ctx, types.NamespacedName{Namespace: "argocd", Name: "default"}, def); err != nil {
		t.Fatalf("the default project was not created: %v", err)
	}
	if len(def.Spec.SourceRepos) != 1 || def.Spec.SourceRepos[0] != "*" || len(def.Spec.ClusterResourceWhitelist) != 1 {
		t.Errorf("default project %+v, want Argo CD's: any repo, destination and kind", def.Spec)
	}

	// A stricter project field converge does not enforce is named.
	raw := &unstructured.Unstructured{}
	raw.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind("AppProject"))
	if err := c.Get(ctx, types.NamespacedName{Namespace: "argocd", Name: "default"}, raw); err != nil {
		t.Fatal(err)
	}
	_ = unstructured.SetNestedSlice(raw.Object, []any{map[string]any{"keyID": "4AEE18F83AFDEB23"}}, "spec", "signatureKeys")
	if err := c.Update(ctx, raw); err != nil {
		t.Fatal(err)
	}
	if err := c.Get(ctx, types.NamespacedName{Namespace: "argocd", Name: name}, app); err != nil {
		t.Fatal(err)
	}
	app.SetAnnotations(map[string]string{RefreshAnnotation: "normal"})
	if err := c.Update(ctx, app); err != nil {
		t.Fatal(err)
	}
	getApp(t, c, name, "UnsupportedFields naming the project field", func(a *v1alpha1.Application) bool {
		return strings.Contains(condition(a, "UnsupportedFields"), "AppProject default spec.signatureKeys")
	})
	// Other tests' Applications use the default project too: leave it
	// as Argo CD makes it.
	if err := c.Get(ctx, types.NamespacedName{Namespace: "argocd", Name: "default"}, raw); err == nil {
		unstructured.RemoveNestedField(raw.Object, "spec", "signatureKeys")
		_ = c.Update(ctx, raw)
	}
}
