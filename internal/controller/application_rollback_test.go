package controller

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
	"converge.dev/converge/internal/clustertest"
	"converge.dev/converge/internal/dialect/argocd"
	"converge.dev/converge/internal/gittest"
)

// TestApplicationRollback is `argocd app rollback` on an Application
// without automated sync: two syncs make two history entries; the
// rollback's operation names the first one's revision, the controller
// syncs that revision (not the target), the live object is back, and the
// rollback is a third history entry. The Application is then OutOfSync
// against its target, as in Argo CD.
func TestApplicationRollback(t *testing.T) {
	c, _ := setup(t)
	ctx := context.Background()
	ns, dest := clustertest.Namespace(t), clustertest.Namespace(t)
	repo := gittest.NewRepo(t, t.TempDir()+"/app.git")
	commit := func(v string) string {
		repo.Commit("v"+v, map[string]string{"web/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\ndata: {version: \"" + v + "\"}\n"})
		repo.Publish()
		return repo.Head().String()
	}
	rev1 := commit("1")
	create(t, c, &v1alpha1.AppProject{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: ns},
		Spec: v1alpha1.AppProjectSpec{SourceRepos: []string{"*"}, Destinations: []v1alpha1.ApplicationDestination{{Server: "*", Namespace: "*"}}}})
	a := app(dest, "web", gittest.FileURL(repo.Bare), "web", nil)
	a.Namespace, a.Spec.SyncPolicy = ns, nil
	create(t, c, a)
	operate := func(revision string) {
		t.Helper()
		op, _ := json.Marshal(map[string]any{"operation": v1alpha1.Operation{Sync: &v1alpha1.SyncOperation{Revision: revision}, InitiatedBy: &v1alpha1.InitiatedBy{Username: "test"}}})
		if err := c.Patch(ctx, &v1alpha1.Application{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"}}, client.RawPatch(types.MergePatchType, op)); err != nil {
			t.Fatal(err)
		}
	}
	version := func(want string) {
		t.Helper()
		err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			cm := &corev1.ConfigMap{}
			return c.Get(ctx, types.NamespacedName{Namespace: dest, Name: "web"}, cm) == nil && cm.Data["version"] == want, nil
		})
		if err != nil {
			t.Fatalf("ConfigMap web never at version %s", want)
		}
	}
	operate("")
	version("1")
	refresh := func() {
		t.Helper()
		if err := c.Patch(ctx, &v1alpha1.Application{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"}},
			client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"`+RefreshAnnotation+`":"hard"}}}`))); err != nil {
			t.Fatal(err)
		}
	}
	rev2 := commit("2")
	refresh()
	waitNamed(t, c, ns, "web", "OutOfSync at the new commit", func(a *v1alpha1.Application) bool { return a.Status.Sync.Revision == rev2 })
	operate("")
	version("2")
	w := waitNamed(t, c, ns, "web", "with two deployments", func(a *v1alpha1.Application) bool { return len(a.Status.History) == 2 && a.Operation == nil })

	e, err := argocd.RollbackTo(w, -1)
	if err != nil || e.Revision != rev1 {
		t.Fatalf("rollback target %+v %v, want %s", e, err, rev1)
	}
	operate(e.Revision)
	version("1")
	w = waitNamed(t, c, ns, "web", "rolled back", func(a *v1alpha1.Application) bool {
		h := a.Status.History
		return len(h) == 3 && h[2].Revision == rev1 && a.Operation == nil
	})
	if st := w.Status.OperationState; st == nil || st.Phase != "Succeeded" || st.SyncResult == nil || st.SyncResult.Revision != rev1 {
		t.Errorf("the rollback's operation state %+v", st)
	}
	// The next comparison is against the target again: OutOfSync.
	refresh()
	waitNamed(t, c, ns, "web", "OutOfSync against main", func(a *v1alpha1.Application) bool {
		return a.Status.Sync.Status == "OutOfSync" && a.Status.Sync.Revision == rev2
	})
	version("1") // and nothing synced it forward
}
