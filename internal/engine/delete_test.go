package engine

import (
	"context"
	"errors"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestDeleteUnit: deleting a unit removes what it applied, but an object
// marked Delete=confirm holds everything until approved, Delete=false is
// kept, and an object another unit took over is never touched.
func TestDeleteUnit(t *testing.T) {
	e := newEnv(t, "del")
	cm := func(name, opts string) string {
		return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " + name +
			"\n  annotations: {argocd.argoproj.io/sync-options: \"" + opts + "\"}\ndata: {k: v}\n---\n"
	}
	e.repo.Commit("unit", map[string]string{"del/all.yaml": cm("plain", "") + cm("keep", "Delete=false") + cm("ask", "Delete=confirm") + cm("stolen", "")})
	e.repo.Publish()
	e.sync(SyncOptions{})
	// Someone else's unit claims "stolen" since.
	ctx := context.Background()
	stolen, _ := e.cs.CoreV1().ConfigMaps(e.ns).Get(ctx, "stolen", metav1.GetOptions{})
	stolen.Annotations["converge.dev/owner"] = "someone-else"
	if _, err := e.cs.CoreV1().ConfigMaps(e.ns).Update(ctx, stolen, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	dctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	rep, err := e.eng.Delete(dctx, e.unit.Name, DeleteOptions{})
	if !errors.Is(err, ErrAwaitingApproval) || len(rep.Awaiting) != 1 || rep.Awaiting[0].Name != "ask" || len(rep.Deleted) != 0 {
		t.Fatalf("unapproved: %+v, %v; want ask awaiting approval and nothing deleted", rep, err)
	}
	for _, name := range []string{"plain", "keep", "ask", "stolen"} {
		if e.configMapRaw(name) == nil {
			t.Errorf("%s deleted while the deletion awaited approval", name)
		}
	}
	// An approval older than the object does not count.
	if _, err := e.eng.Delete(dctx, e.unit.Name, DeleteOptions{Approved: time.Now().Add(-time.Hour)}); !errors.Is(err, ErrAwaitingApproval) {
		t.Fatalf("stale approval: %v, want still awaiting", err)
	}

	rep, err = e.eng.Delete(dctx, e.unit.Name, DeleteOptions{Approved: time.Now().Add(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{"plain": false, "ask": false, "keep": true, "stolen": true} {
		if got := e.configMapRaw(name) != nil; got != want {
			t.Errorf("%s exists=%v after the approved deletion, want %v", name, got, want)
		}
	}
	if len(rep.Kept) != 1 || rep.Kept[0].Ref.Name != "keep" {
		t.Errorf("kept %+v, want keep (Delete=false)", rep.Kept)
	}
	inv, err := e.eng.o.Cluster.LoadInventory(ctx, e.unit.Name)
	if err != nil || len(inv.Objects) != 0 {
		t.Errorf("inventory after delete: %+v %v, want none", inv, err)
	}
}

func (e *env) configMapRaw(name string) map[string]string {
	e.t.Helper()
	cm, err := e.cs.CoreV1().ConfigMaps(e.ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return nil
	}
	if cm.Data == nil {
		return map[string]string{}
	}
	return cm.Data
}
