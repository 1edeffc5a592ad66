package controller

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
	"converge.dev/converge/internal/clustertest"
)

// TestPluginSourceIsRefused: an Application with a config management
// plugin source is an InvalidSpecError naming the field, with sync status
// Unknown: never Synced/Healthy after rendering nothing.
func TestPluginSourceIsRefused(t *testing.T) {
	c, repo := setup(t)
	ensureNamespace(t, c, "argocd")
	permissiveProject(t, c, "anything")
	ns := clustertest.Namespace(t)
	app := argoApp("plugin-"+ns, ns, "anything", map[string]any{"repoURL": "file://" + repo.Bare, "path": "apps/orders-api/overlays/prod", "plugin": map[string]any{"name": "cmp-tanka"}})
	create(t, c, app)
	got := getApp(t, c, "plugin-"+ns, "an InvalidSpecError", func(a *v1alpha1.Application) bool { return condition(a, "InvalidSpecError") != "" })
	if msg := condition(got, "InvalidSpecError"); !strings.Contains(msg, "spec.source.plugin: config management plugins are not supported") {
		t.Errorf("InvalidSpecError %q does not name the plugin field", msg)
	}
	if got.Status.Sync.Status == "Synced" || got.Status.Health.Status == "Healthy" {
		t.Errorf("a refused Application shows %s/%s", got.Status.Sync.Status, got.Status.Health.Status)
	}
}

// argoApp is an Application in namespace argocd as a user writes one
// (unstructured: every field is kept, even those converge's types lack),
// in project, for the in-cluster destination ns, with automated sync and
// prune. source holds at least repoURL and path.
func argoApp(name, ns, project string, source map[string]any) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
		"metadata": map[string]any{"name": name, "namespace": "argocd"},
		"spec": map[string]any{"project": project, "source": source,
			"destination": map[string]any{"server": "https://kubernetes.default.svc", "namespace": ns},
			"syncPolicy":  map[string]any{"automated": map[string]any{"prune": true}}},
	}}
}
