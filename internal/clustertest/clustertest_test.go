package clustertest_test

import (
	"context"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"converge.dev/converge/internal/clustertest"
)

func TestMain(m *testing.M) { clustertest.Main(m, clustertest.Options{}) }

// TestNamespaceIsFreshPerTest checks that each call gets its own namespace,
// ready for pods (its default ServiceAccount exists).
func TestNamespaceIsFreshPerTest(t *testing.T) {
	a, b := clustertest.Namespace(t), clustertest.Namespace(t)
	if a == b {
		t.Fatalf("two calls gave the same namespace %q", a)
	}
	cs := clustertest.Clientset(t)
	for _, ns := range []string{a, b} {
		if _, err := cs.CoreV1().ServiceAccounts(ns).Get(context.Background(), "default", metav1.GetOptions{}); err != nil {
			t.Errorf("namespace %s: default ServiceAccount: %v", ns, err)
		}
	}
	if clustertest.Kubeconfig(t) == "" {
		t.Error("Kubeconfig() is empty")
	}
}
