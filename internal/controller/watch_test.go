package controller

import (
	"context"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"converge.dev/converge/internal/object"
	"converge.dev/converge/internal/plan"
)

// TestOwnerApplication: a live change reaches its Application whatever
// dots the Application's name holds (issue: selfHeal fell back to the
// poll interval for "example.guestbook").
func TestOwnerApplication(t *testing.T) {
	tests := []struct{ owner, want string }{
		{"argocd.argocd.orders-api-prod", "argocd/orders-api-prod"},
		{"argocd.argocd.example.guestbook", "argocd/example.guestbook"},
		{"argocd.team-a.a.b.c", "team-a/a.b.c"},
		{"flux.ns.name", ""},
		{"argocd.only", ""},
		{"argocd..name", ""},
		{"", ""},
	}
	for _, tt := range tests {
		obj := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{plan.OwnerAnnotation: tt.owner}}}
		got := ""
		if reqs := ownerApplication(context.Background(), obj); len(reqs) == 1 {
			got = reqs[0].NamespacedName.String()
		}
		if got != tt.want {
			t.Errorf("owner %q: got %q, want %q", tt.owner, got, tt.want)
		}
	}
}

// TestAnnotationsChanged: the controller clearing the refresh annotation
// wakes nothing; a refresh asked for, or any other annotation change,
// does.
func TestAnnotationsChanged(t *testing.T) {
	refresh := map[string]string{RefreshAnnotation: "normal", "team": "a"}
	tests := []struct {
		name     string
		old, new map[string]string
		want     bool
	}{
		{"refresh cleared", refresh, map[string]string{"team": "a"}, false},
		{"refresh asked", map[string]string{"team": "a"}, refresh, true},
		{"refresh made hard", refresh, map[string]string{RefreshAnnotation: "hard", "team": "a"}, true},
		{"cleared and another changed", refresh, map[string]string{"team": "b"}, true},
		{"other changed", map[string]string{"team": "a"}, map[string]string{"team": "b"}, true},
		{"nothing changed", refresh, refresh, false},
	}
	for _, tt := range tests {
		e := event.UpdateEvent{ObjectOld: &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Annotations: tt.old}},
			ObjectNew: &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Annotations: tt.new}}}
		if got := (annotationsChanged{}).Update(e); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestLiveChangeDropsOwnWrites: an update at the version the engine's
// own apply returned is its echo and wakes nothing; the same object at
// another version (an edit) does, and so does a delete.
func TestLiveChangeDropsOwnWrites(t *testing.T) {
	gvk := schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}
	wrote := func(ref object.Ref, uid types.UID, rv string) bool {
		return ref == object.Ref{Version: "v1", Kind: "ConfigMap", Namespace: "shop", Name: "settings"} && uid == "u1" && rv == "5"
	}
	l := liveChange{gvk: gvk, wrote: wrote}
	at := func(rv string) *metav1.PartialObjectMetadata {
		return &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "settings", UID: "u1", ResourceVersion: rv}}
	}
	if l.Update(event.UpdateEvent{ObjectOld: at("4"), ObjectNew: at("5")}) {
		t.Error("the echo of the engine's own apply woke the Application")
	}
	if !l.Update(event.UpdateEvent{ObjectOld: at("5"), ObjectNew: at("6")}) {
		t.Error("an edit after the apply did not wake the Application")
	}
	if !l.Delete(event.DeleteEvent{Object: at("5")}) {
		t.Error("a delete did not wake the Application")
	}
	if !(liveChange{gvk: gvk}).Update(event.UpdateEvent{ObjectOld: at("4"), ObjectNew: at("5")}) {
		t.Error("without the engine's record, a change must wake the Application")
	}
}
