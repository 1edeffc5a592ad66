package cli_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
	"converge.dev/converge/internal/cli"
	"converge.dev/converge/internal/localcluster"
)

// TestUp runs `converge up` until the three demo Applications are Synced
// and Healthy, then stops it as Ctrl-C would and checks that the cluster
// it created is gone.
func TestUp(t *testing.T) {
	home := t.TempDir()
	t.Setenv(localcluster.HomeEnv, home)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr bytes.Buffer
	done := make(chan int, 1)
	go func() { done <- cli.Run(ctx, []string{"up"}, &bytes.Buffer{}, &stderr) }()

	kubeconfig := filepath.Join(home, "clusters", "converge", "kubeconfig")
	var apps dynamic.ResourceInterface
	err := wait.PollUntilContextTimeout(context.Background(), 500*time.Millisecond, 3*time.Minute, true, func(context.Context) (bool, error) {
		select {
		case code := <-done:
			t.Fatalf("up exited early with %d:\n%s", code, stderr.String())
		default:
		}
		if apps == nil {
			cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
			if err != nil {
				return false, nil
			}
			apps = dynamic.NewForConfigOrDie(cfg).Resource(v1alpha1.GroupVersion.WithResource("applications")).Namespace("argocd")
		}
		list, err := apps.List(context.Background(), metav1.ListOptions{})
		if err != nil || len(list.Items) != 3 {
			return false, nil
		}
		for _, a := range list.Items {
			s, _, _ := unstructured.NestedString(a.Object, "status", "sync", "status")
			h, _, _ := unstructured.NestedString(a.Object, "status", "health", "status")
			if s != "Synced" || h != "Healthy" {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("demo Applications not Synced and Healthy: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "converge is up.") {
		t.Errorf("up did not say what to look at next:\n%s", stderr.String())
	}

	cancel() // Ctrl-C
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("up exited with %d after Ctrl-C:\n%s", code, stderr.String())
		}
	case <-time.After(time.Minute):
		t.Fatal("up did not stop within a minute of Ctrl-C")
	}
	if _, err := os.Stat(filepath.Join(home, "clusters", "converge")); !os.IsNotExist(err) {
		t.Errorf("the cluster up created is still there after Ctrl-C: %v", err)
	}
}
