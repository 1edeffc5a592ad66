package controller

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
	"converge.dev/converge/internal/clustertest"
)

// TestJsonnetApplication: an Application on a folder of Jsonnet files,
// with a top-level argument, an external variable taken from Argo CD's
// build environment and a library folder, syncs the objects the files
// build. Before Jsonnet was rendered, this folder synced zero objects
// and showed Synced/Healthy.
func TestJsonnetApplication(t *testing.T) {
	c, repo := setup(t)
	ensureNamespace(t, c, "argocd")
	permissiveProject(t, c, "anything")
	ns := clustertest.Namespace(t)
	name := "jsonnet-" + ns
	app := argoApp(name, ns, "anything", map[string]any{"repoURL": "file://" + repo.Bare, "path": "apps/guestbook-jsonnet",
		"directory": map[string]any{"jsonnet": map[string]any{
			"tlas":    []any{map[string]any{"name": "color", "value": "green"}},
			"extVars": []any{map[string]any{"name": "app", "value": "$ARGOCD_APP_NAME"}},
			"libs":    []any{"jsonnet-lib"},
		}}})
	create(t, c, app)
	got := getApp(t, c, name, "Synced and Healthy", func(a *v1alpha1.Application) bool {
		return a.Status.Sync.Status == "Synced" && a.Status.Health.Status == "Healthy"
	})
	if n := len(got.Status.Resources); n != 2 {
		t.Errorf("status lists %d resources, want the Service and the ConfigMap", n)
	}
	var cm corev1.ConfigMap
	if err := c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "guestbook-ui-settings"}, &cm); err != nil {
		t.Fatal(err)
	}
	if cm.Data["color"] != "green" || cm.Data["app"] != name || cm.Labels["app.kubernetes.io/part-of"] != "guestbook" {
		t.Errorf("ConfigMap built without the tla, extVar or library: data %v labels %v", cm.Data, cm.Labels)
	}
	var svc corev1.Service
	if err := c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "guestbook-ui"}, &svc); err != nil {
		t.Fatal(err)
	}
	if unsupported := got.Status.Conditions; len(unsupported) != 0 {
		for _, cond := range unsupported {
			t.Errorf("unexpected condition %s: %s", cond.Type, cond.Message)
		}
	}
}
