package engine

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"converge.dev/converge/internal/object"
)

// lateIndex is a live index whose watch has not seen anything yet: it
// says every object is missing, as a real one does for an object created
// a moment ago.
type lateIndex struct{}

func (lateIndex) Version(context.Context, object.Ref) (types.UID, string, bool) { return "", "", true }
func (lateIndex) Owned(context.Context, schema.GroupVersionKind, string, string) ([]object.Ref, bool) {
	return nil, true
}

// TestLateIndexNeverAdopts: an object another client created, which the
// live index has not seen yet, is still a conflict naming its creator,
// and is left as it is: the dry run shows it exists, and the engine
// reads it before it decides.
func TestLateIndexNeverAdopts(t *testing.T) {
	// The live object shares a field with Git's (the dry run then fails
	// on the other manager's field) or has none in common (the dry run
	// passes, with the live resourceVersion).
	for _, key := range []string{"mode", "other"} {
		t.Run(key, func(t *testing.T) { lateIndexNeverAdopts(t, key) })
	}
}

func lateIndexNeverAdopts(t *testing.T, key string) {
	e := newEnv(t, "lateindex")
	ctx := context.Background()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings", Namespace: e.ns}, Data: map[string]string{key: "by-hand"}}
	if _, err := e.cs.CoreV1().ConfigMaps(e.ns).Create(ctx, cm, metav1.CreateOptions{FieldManager: "kubectl-create"}); err != nil {
		t.Fatal(err)
	}
	e.repo.Commit("settings", map[string]string{"lateindex/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {mode: from-git}\n"})
	e.repo.Publish()
	eng := e.eng.Watching(lateIndex{})
	rep, err := eng.Sync(ctx, e.unit, SyncOptions{Prune: true})
	if err != nil {
		t.Fatal(err)
	}
	conflict := ""
	for _, s := range rep.Plan.Steps {
		if s.Ref.Name == "settings" {
			conflict = string(s.Action) + ": " + s.Reason
		}
	}
	if !strings.Contains(conflict, `created by "kubectl-create"`) {
		t.Errorf("the plan for settings is %q, want a conflict naming kubectl-create", conflict)
	}
	live, err := e.cs.CoreV1().ConfigMaps(e.ns).Get(ctx, "settings", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if live.Data[key] != "by-hand" || live.Data["mode"] == "from-git" || live.Annotations["converge.dev/owner"] != "" {
		t.Errorf("the object was taken over: data %v, annotations %v", live.Data, live.Annotations)
	}
}

// TestWroteKnowsOwnApplies: the version an apply returned is the
// engine's own write; the version after someone else's edit is not, and
// neither is a version the engine only read.
func TestWroteKnowsOwnApplies(t *testing.T) {
	e := newEnv(t, "wrote")
	ctx := context.Background()
	e.repo.Commit("settings", map[string]string{"wrote/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {mode: from-git}\n"})
	e.repo.Publish()
	e.sync(SyncOptions{Prune: true})
	ref := object.Ref{Version: "v1", Kind: "ConfigMap", Namespace: e.ns, Name: "settings"}
	cm, err := e.cs.CoreV1().ConfigMaps(e.ns).Get(ctx, "settings", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !e.eng.Wrote(ref, cm.UID, cm.ResourceVersion) {
		t.Errorf("the version the sync applied (%s) is not known as the engine's own", cm.ResourceVersion)
	}
	if e.eng.Wrote(ref, "another-uid", cm.ResourceVersion) {
		t.Error("another object of the same name counts as the engine's own")
	}
	cm.Data["mode"] = "by-hand"
	edited, err := e.cs.CoreV1().ConfigMaps(e.ns).Update(ctx, cm, metav1.UpdateOptions{FieldManager: "kubectl-edit"})
	if err != nil {
		t.Fatal(err)
	}
	if e.eng.Wrote(ref, edited.UID, edited.ResourceVersion) {
		t.Error("someone else's edit counts as the engine's own write")
	}
	// A comparison reads the edited version: known, but not written.
	if _, err := e.eng.Status(ctx, e.unit); err != nil {
		t.Fatal(err)
	}
	if e.eng.Wrote(ref, edited.UID, edited.ResourceVersion) {
		t.Error("a version the engine only read counts as its own write")
	}
}

// TestComparisonAfterSyncBehindLateIndex: right after a sync, the live
// index may not have seen what the sync created. The comparison reads
// those objects (the engine applied them) rather than calling them
// Missing, which flapped an Application to OutOfSync after every first
// sync; an object deleted since is then Missing, as it is.
func TestComparisonAfterSyncBehindLateIndex(t *testing.T) {
	e := newEnv(t, "lateafter")
	ctx := context.Background()
	e.repo.Commit("two", map[string]string{"lateafter/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: made}\ndata: {k: v}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: gone}\ndata: {k: v}\n"})
	e.repo.Publish()
	eng := e.eng.Watching(lateIndex{})
	if _, err := eng.Sync(ctx, e.unit, SyncOptions{Prune: true}); err != nil {
		t.Fatal(err)
	}
	if err := e.cs.CoreV1().ConfigMaps(e.ns).Delete(ctx, "gone", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	st, err := eng.Status(ctx, e.unit)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, o := range st.Objects {
		got[o.Ref.Name] = o.Sync
	}
	if got["made"] != "Synced" || got["gone"] != "Missing" {
		t.Errorf("after the sync, behind an index that has seen nothing: %v, want made Synced and gone Missing", got)
	}
}
