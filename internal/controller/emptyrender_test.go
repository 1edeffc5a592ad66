package controller

import (
	"context"
	"strings"
	"testing"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
	"converge.dev/converge/internal/clustertest"
)

// TestRefusedSyncIsOutOfSync: when a new revision renders nothing and
// the sync refuses to prune everything (allowEmpty is off), the
// Application says OutOfSync at the new revision beside the SyncError,
// and keeps its objects. Before, it still showed Synced at the old
// revision.
func TestRefusedSyncIsOutOfSync(t *testing.T) {
	c, repo := setup(t)
	ensureNamespace(t, c, "argocd")
	permissiveProject(t, c, "anything")
	ns := clustertest.Namespace(t)
	repo.Commit("one", map[string]string{"emptied/cm.yaml": configMapYAML("kept", "v1"), "emptied/README.md": "docs stay\n"})
	repo.Publish()
	name := "emptied-" + ns
	app := argoApp(name, ns, "anything", map[string]any{"repoURL": "file://" + repo.Bare, "path": "emptied"})
	create(t, c, app)
	getApp(t, c, name, "Synced", func(a *v1alpha1.Application) bool { return a.Status.Sync.Status == "Synced" })
	emptied := repo.RemoveAll("the manifests go", "emptied/cm.yaml")
	repo.Publish()
	if err := c.Patch(context.Background(), app, rawMerge([]byte(`{"metadata":{"annotations":{"`+RefreshAnnotation+`":"normal"}}}`))); err != nil {
		t.Fatal(err)
	}
	got := getApp(t, c, name, "a SyncError", func(a *v1alpha1.Application) bool {
		return strings.Contains(condition(a, "SyncError"), "render is empty")
	})
	if got.Status.Sync.Status != "OutOfSync" || got.Status.Sync.Revision != emptied.String() {
		t.Errorf("sync %s at %s beside the SyncError, want OutOfSync at %s", got.Status.Sync.Status, got.Status.Sync.Revision, emptied)
	}
	if configMapValue(c, ns, "kept") != "v1" {
		t.Error("the refused sync pruned the ConfigMap")
	}
}
