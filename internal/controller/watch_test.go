package controller

import (
	"context"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/event"

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
