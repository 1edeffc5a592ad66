package clustertest_test

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

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

// TestAPIOnlyNamespacesFinishDeleting backs the README's claim that an
// API-only cluster still runs the namespace controller: a deleted
// namespace with content goes away instead of staying Terminating.
func TestAPIOnlyNamespacesFinishDeleting(t *testing.T) {
	cs := clustertest.Clientset(t)
	ctx := context.Background()
	ns := clustertest.Namespace(t)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "content"}}
	if _, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cs.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		t.Errorf("namespace %s still exists 30s after delete: %v", ns, err)
	}
}
