package localcluster_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"converge.dev/converge/internal/controlplane"
	"converge.dev/converge/internal/localcluster"
)

// start runs a cluster for one test and stops it at the end.
func start(t *testing.T, nodes int) *localcluster.Cluster {
	t.Helper()
	c, err := localcluster.Start(context.Background(), localcluster.Options{
		Name:      "t",
		Dir:       t.TempDir(),
		Nodes:     nodes,
		WaitNodes: true,
		Build:     controlplane.Options{Progress: os.Stderr},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Stop(context.Background()) })
	return c
}

func clients(t *testing.T, c *localcluster.Cluster) (kubernetes.Interface, dynamic.Interface) {
	t.Helper()
	cfg, err := c.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	return kubernetes.NewForConfigOrDie(cfg), dynamic.NewForConfigOrDie(cfg)
}

// apply server-side applies one testdata file with field manager
// converge-test and returns the object the server stored.
func apply(t *testing.T, dyn dynamic.Interface, gvr schema.GroupVersionResource, ns, file string) *unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	obj := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(data, &obj.Object); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	json, _ := obj.MarshalJSON()
	var ri dynamic.ResourceInterface = dyn.Resource(gvr)
	if ns != "" {
		ri = dyn.Resource(gvr).Namespace(ns)
	}
	force := true
	got, err := ri.Patch(context.Background(), obj.GetName(), types.ApplyPatchType, json,
		metav1.PatchOptions{FieldManager: "converge-test", Force: &force})
	if err != nil {
		t.Fatalf("apply %s: %v", file, err)
	}
	return got
}

var (
	deployments = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	services    = schema.GroupVersionResource{Version: "v1", Resource: "services"}
	crds        = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	widgets     = schema.GroupVersionResource{Group: "test.converge.dev", Version: "v1", Resource: "widgets"}
	jobs        = schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "jobs"}
)

// TestTwoClustersSideBySide starts two API-only clusters, applies objects
// to the first only, and checks that each cluster sees only its own state,
// that deleting one leaves the other serving, and that no process is left.
func TestTwoClustersSideBySide(t *testing.T) {
	a, b := start(t, 0), start(t, 0)
	if a.APIURL == b.APIURL || a.Ports.EtcdClient == b.Ports.EtcdClient {
		t.Fatalf("clusters share ports: %+v and %+v", a.Ports, b.Ports)
	}
	csA, dynA := clients(t, a)
	csB, _ := clients(t, b)

	t.Run("server-side apply", func(t *testing.T) {
		ctx := context.Background()
		ns := "apply"
		if _, err := csA.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		dep := apply(t, dynA, deployments, ns, "deployment.yaml")
		if mgr := dep.GetManagedFields()[0].Manager; mgr != "converge-test" {
			t.Errorf("deployment manager: got %q, want converge-test", mgr)
		}
		svc := apply(t, dynA, services, ns, "service.yaml")
		if ip, _, _ := unstructured.NestedString(svc.Object, "spec", "clusterIP"); net.ParseIP(ip) == nil {
			t.Errorf("service clusterIP: got %q, want an address from the service range", ip)
		}
		apply(t, dynA, crds, "", "crd.yaml")
		waitEstablished(t, dynA, "widgets.test.converge.dev")
		w := apply(t, dynA, widgets, ns, "widget.yaml")
		if size, _, _ := unstructured.NestedInt64(w.Object, "spec", "size"); size != 3 {
			t.Errorf("widget spec.size: got %d, want 3", size)
		}
		// The schema is enforced: a string where an integer belongs is refused.
		bad := map[string]any{"apiVersion": "test.converge.dev/v1", "kind": "Widget",
			"metadata": map[string]any{"name": "bad"}, "spec": map[string]any{"size": "three"}}
		_, err := dynA.Resource(widgets).Namespace(ns).Create(ctx, &unstructured.Unstructured{Object: bad}, metav1.CreateOptions{})
		if !apierrors.IsInvalid(err) {
			t.Errorf("widget with a string size: got %v, want Invalid", err)
		}
	})

	t.Run("independent", func(t *testing.T) {
		if _, err := csB.CoreV1().Namespaces().Get(context.Background(), "apply", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("namespace from cluster A in cluster B: got %v, want NotFound", err)
		}
	})

	t.Run("delete one, the other serves", func(t *testing.T) {
		pid := a.PID
		if err := a.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		assertGone(t, pid, a.APIURL)
		if _, err := csB.CoreV1().Namespaces().List(context.Background(), metav1.ListOptions{}); err != nil {
			t.Errorf("cluster B after A stopped: %v", err)
		}
		pid = b.PID
		if err := b.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		assertGone(t, pid, b.APIURL)
	})
}

func waitEstablished(t *testing.T, dyn dynamic.Interface, name string) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		crd, err := dyn.Resource(crds).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
		for _, c := range conds {
			m := c.(map[string]any)
			if m["type"] == "Established" && m["status"] == "True" {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("CRD %s not Established: %v", name, err)
	}
}

// assertGone checks that the process no longer exists (not even as a
// zombie) and that the API port refuses connections.
func assertGone(t *testing.T, pid int, apiURL string) {
	t.Helper()
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		t.Errorf("pid %d still exists after Stop: kill 0 = %v, stat %q", pid, err, stat)
	}
	if conn, err := net.DialTimeout("tcp", strings.TrimPrefix(apiURL, "https://"), time.Second); err == nil {
		conn.Close()
		t.Errorf("%s still accepts connections after Stop", apiURL)
	}
}
