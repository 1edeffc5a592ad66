package controller

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"converge.dev/converge/internal/clustertest"
	"converge.dev/converge/internal/server/rbac"
)

// TestUIPolicyLoader reads argocd-rbac-cm from the real API server: none
// is Argo CD's default (the built-in roles), a good one binds its users,
// and one that does not parse refuses everyone, the local admin too.
func TestUIPolicyLoader(t *testing.T) {
	c, _ := setup(t)
	admin, bob := rbac.User{Name: "admin"}, rbac.User{Name: "bob"}
	for _, tc := range []struct {
		name         string
		csv          string // "" : no ConfigMap
		admin, bobOK bool
	}{
		{"no ConfigMap", "", true, false},
		{"a good policy", "g, bob, role:readonly\n", true, true},
		{"a policy that does not parse", "g, bob, role:readonly\np, role:x, applications\n", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := clustertest.Namespace(t)
			if tc.csv != "" {
				create(t, c, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "argocd-rbac-cm"}, Data: map[string]string{"policy.csv": tc.csv}})
			}
			p := &policyLoader{reader: c, key: types.NamespacedName{Namespace: ns, Name: "argocd-rbac-cm"}}
			e := p.get()
			if got := e.Can(admin, rbac.Applications, rbac.Delete, "default/web"); got != tc.admin {
				t.Errorf("admin may delete: %v, want %v", got, tc.admin)
			}
			if got := e.Can(bob, rbac.Applications, rbac.Get, "default/web"); got != tc.bobOK {
				t.Errorf("bob may read: %v, want %v", got, tc.bobOK)
			}
		})
	}
}
