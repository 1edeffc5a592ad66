package controller

import (
	"context"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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
