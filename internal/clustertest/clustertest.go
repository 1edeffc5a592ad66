// Package clustertest gives a test package one real local cluster and each
// test a fresh namespace in it.
//
//	func TestMain(m *testing.M) { clustertest.Main(m, clustertest.Options{}) }
//
//	func TestX(t *testing.T) {
//		ns := clustertest.Namespace(t)
//		cfg := clustertest.RESTConfig(t)
//		...
//	}
//
// The cluster is API-only unless Options.Nodes is set; it stops when the
// tests end, and dies with the test binary if that panics or is killed.
package clustertest

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"converge.dev/converge/internal/controlplane"
	"converge.dev/converge/internal/localcluster"
)

// Options configure the package's cluster.
type Options struct {
	// Nodes is the number of fake nodes. Zero runs the API only.
	Nodes int
}

var current *localcluster.Cluster

// Main starts the cluster, runs the tests and stops the cluster. It does
// not return.
func Main(m *testing.M, o Options) {
	os.Exit(run(m, o))
}

func run(m *testing.M, o Options) int {
	if !flag.Parsed() {
		flag.Parse() // for testing.Verbose before m.Run
	}
	dir, err := os.MkdirTemp("", "converge-test-cluster-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "clustertest:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	start := time.Now()
	c, err := localcluster.Start(ctx, localcluster.Options{
		Name:      "test",
		Dir:       dir,
		Nodes:     o.Nodes,
		WaitNodes: true,
		// The first build takes minutes; a silent test would look hung.
		Build: controlplane.Options{Progress: os.Stderr},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "clustertest: start cluster:", err)
		return 1
	}
	if testing.Verbose() {
		fmt.Fprintf(os.Stderr, "clustertest: cluster ready at %s in %s\n", c.APIURL, time.Since(start).Round(time.Millisecond))
	}
	current = c
	code := m.Run()
	if err := c.Stop(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "clustertest: stop cluster:", err)
	}
	return code
}

// Cluster is the package's cluster.
func Cluster(t testing.TB) *localcluster.Cluster {
	t.Helper()
	if current == nil {
		t.Fatal("clustertest: no cluster; call clustertest.Main from TestMain")
	}
	return current
}

// Kubeconfig is the path of the cluster's admin kubeconfig.
func Kubeconfig(t testing.TB) string { return Cluster(t).Kubeconfig() }

// RESTConfig is a fresh admin client configuration.
func RESTConfig(t testing.TB) *rest.Config {
	t.Helper()
	cfg, err := Cluster(t).RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 100, 200
	return cfg
}

// Clientset is a typed admin client.
func Clientset(t testing.TB) kubernetes.Interface {
	t.Helper()
	cs, err := kubernetes.NewForConfig(RESTConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// Namespace creates a namespace for this test, waits for its default
// ServiceAccount (pods are refused before it exists) and deletes the
// namespace when the test ends.
func Namespace(t testing.TB) string {
	t.Helper()
	cs := Clientset(t)
	ctx := context.Background()
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(name) > 40 {
		name = name[:40]
	}
	ns, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		GenerateName: strings.Trim(name, "-") + "-",
	}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	t.Cleanup(func() {
		cs.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{})
	})
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := cs.CoreV1().ServiceAccounts(ns.Name).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("namespace %s: default ServiceAccount never appeared: %v", ns.Name, err)
	}
	return ns.Name
}

// Partition makes cfg's clients lose the cluster when cut is called, as
// a replica whose network fails does: every connection they hold is
// closed (watches too), and every new one is refused. It must be called
// before any client is built from cfg.
func Partition(cfg *rest.Config) (cut func()) {
	var (
		mu    sync.Mutex
		down  bool
		conns []net.Conn
	)
	var d net.Dialer
	cfg.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		mu.Lock()
		defer mu.Unlock()
		if down {
			return nil, fmt.Errorf("clustertest: partitioned from %s", addr)
		}
		c, err := d.DialContext(ctx, network, addr)
		if err == nil {
			conns = append(conns, c)
		}
		return c, err
	}
	return func() {
		mu.Lock()
		defer mu.Unlock()
		down = true
		for _, c := range conns {
			c.Close()
		}
	}
}
