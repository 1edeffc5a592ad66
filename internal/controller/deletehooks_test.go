package controller

import (
	"context"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
	"converge.dev/converge/internal/clustertest"
)

// TestDeletionHooks: PreDelete and PostDelete hooks are not applied by a
// sync; deleting the Application (with Argo CD's resources finalizer)
// runs the PreDelete hooks (here a Job that must complete, and a
// ConfigMap), deletes the Application's objects, then runs the
// PostDelete hooks, and only then lets the Application go.
func TestDeletionHooks(t *testing.T) {
	c, repo := setup(t)
	ctx := context.Background()
	ensureNamespace(t, c, "argocd")
	permissiveProject(t, c, "anything")
	ns := clustertest.Namespace(t)
	hook := func(name, phase string) string {
		return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " + name + "\n  annotations:\n    argocd.argoproj.io/hook: " + phase +
			"\ndata: {value: ran}\n"
	}
	repo.Commit("deletion hooks", map[string]string{
		"delhooks/app.yaml":         configMapYAML("app", "v1"),
		"delhooks/pre-delete.yaml":  hook("pre-delete-marker", "PreDelete"),
		"delhooks/post-delete.yaml": hook("post-delete-marker", "PostDelete"),
		"delhooks/backup.yaml": "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: backup\n  annotations:\n    argocd.argoproj.io/hook: PreDelete\n" +
			"spec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: b, image: example/backup:1}]\n",
	})
	repo.Publish()
	name := "delhooks-" + ns
	app := argoApp(name, ns, "anything", map[string]any{"repoURL": "file://" + repo.Bare, "path": "delhooks"})
	app.SetFinalizers([]string{ResourcesFinalizer})
	create(t, c, app)
	getApp(t, c, name, "Synced", func(a *v1alpha1.Application) bool {
		return a.Status.Sync.Status == "Synced" && a.Status.OperationState != nil && a.Status.OperationState.Phase == "Succeeded"
	})
	if configMapValue(c, ns, "app") != "v1" {
		t.Fatal("the Application's ConfigMap was not applied")
	}
	for _, m := range []string{"pre-delete-marker", "post-delete-marker"} {
		if configMapValue(c, ns, m) != "" {
			t.Errorf("deletion hook %s was applied by a sync", m)
		}
	}

	if err := c.Delete(ctx, app); err != nil {
		t.Fatal(err)
	}
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		return c.Get(ctx, types.NamespacedName{Namespace: "argocd", Name: name}, &v1alpha1.Application{}) != nil, nil
	})
	if err != nil {
		got := &v1alpha1.Application{}
		_ = c.Get(ctx, types.NamespacedName{Namespace: "argocd", Name: name}, got)
		t.Fatalf("the Application was not deleted: %v %v", err, got.Status.Conditions)
	}
	if configMapValue(c, ns, "app") != "" {
		t.Error("the Application's ConfigMap is still there")
	}
	for _, m := range []string{"pre-delete-marker", "post-delete-marker"} {
		if configMapValue(c, ns, m) != "ran" {
			t.Errorf("deletion hook %s did not run", m)
		}
	}
}
