package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
	"converge.dev/converge/internal/cli"
	"converge.dev/converge/internal/localcluster"
)

// runUp runs `converge up args...` in a fresh home until wait says the
// demo is there, then stops it as Ctrl-C would. It returns up's stderr.
func runUp(t *testing.T, args []string, wantApps int, ready func(home string) bool) string {
	t.Helper()
	home := t.TempDir()
	t.Setenv(localcluster.HomeEnv, home)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr bytes.Buffer
	var mu sync.Mutex
	done := make(chan int, 1)
	go func() {
		done <- cli.Run(ctx, append([]string{"up", "--ui-addr", "127.0.0.1:0"}, args...), &bytes.Buffer{}, &lockedStderr{b: &stderr, mu: &mu})
	}()

	kubeconfig := filepath.Join(home, "clusters", "converge", "kubeconfig")
	var apps dynamic.ResourceInterface
	err := wait.PollUntilContextTimeout(context.Background(), 500*time.Millisecond, 4*time.Minute, true, func(context.Context) (bool, error) {
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
		if err != nil || len(list.Items) != wantApps {
			return false, nil
		}
		for _, a := range list.Items {
			s, _, _ := unstructured.NestedString(a.Object, "status", "sync", "status")
			h, _, _ := unstructured.NestedString(a.Object, "status", "health", "status")
			if s != "Synced" || h != "Healthy" {
				return false, nil
			}
		}
		mu.Lock()
		out := stderr.String()
		mu.Unlock()
		return (ready == nil || ready(home)) && strings.Contains(out, "UI: http://"), nil
	})
	if err != nil {
		t.Fatalf("demo Applications not Synced and Healthy: %v\n%s", err, stderr.String())
	}
	mu.Lock()
	out := stderr.String()
	mu.Unlock()
	if !strings.Contains(out, "converge is up.") {
		t.Errorf("up did not say what to look at next:\n%s", out)
	}
	uiUnits(t, out, wantApps)

	cancel() // Ctrl-C
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("up exited with %d after Ctrl-C:\n%s", code, stderr.String())
		}
	case <-time.After(time.Minute):
		t.Fatal("up did not stop within a minute of Ctrl-C")
	}
	mu.Lock()
	defer mu.Unlock()
	entries, _ := os.ReadDir(filepath.Join(home, "clusters"))
	for _, e := range entries {
		t.Errorf("cluster %s that up created is still there after Ctrl-C", e.Name())
	}
	return stderr.String()
}

type lockedStderr struct {
	b  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedStderr) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

var uiLine = regexp.MustCompile(`UI: (http://\S+)  \(login admin / (\S+), shown once\)`)

// uiUnits logs in to the UI up printed, as its admin, and expects the
// demo's Applications in its list.
func uiUnits(t *testing.T, out string, wantApps int) {
	t.Helper()
	m := uiLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("up printed no UI address and login:\n%s", out)
	}
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	resp, err := hc.Post(m[1]+"/api/v1/session", "application/json", strings.NewReader(`{"username":"admin","password":"`+m[2]+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("UI login as admin: %s", resp.Status)
	}
	resp, err = hc.Get(m[1] + "/api/v1/units?kind=Application")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var page struct {
		Total  int
		Counts struct{ Health map[string]int }
	}
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		t.Fatal(err)
	}
	if page.Total != wantApps || page.Counts.Health["Healthy"] != wantApps {
		t.Errorf("the UI lists %d Applications (%v healthy), want %d healthy", page.Total, page.Counts.Health, wantApps)
	}
}

// TestUp runs `converge up` until the three demo Applications are Synced
// and Healthy, then stops it as Ctrl-C would and checks that the cluster
// it created is gone.
func TestUp(t *testing.T) {
	var once sync.Once
	runUp(t, nil, 3, func(home string) bool {
		once.Do(func() { doctorOnUp(t, home) })
		return true
	})
}

// doctorOnUp runs converge doctor on up's cluster and its demo
// repository: the units pass, what up leaves out warns (the controller
// runs outside the cluster, no alert rule, no DriftPolicy, the demo's
// lint warnings), nothing fails; then a GitRepository whose Secret is
// missing fails the credentials item, and doctor exits 1.
func doctorOnUp(t *testing.T, home string) {
	t.Helper()
	kubeconfig := filepath.Join(home, "clusters", "converge", "kubeconfig")
	doctor := func() (int, map[string]string) {
		var out, errb bytes.Buffer
		code := cli.Run(context.Background(), []string{"doctor", "--kubeconfig", kubeconfig, "--repo", "file://" + filepath.Join(home, "demo", "apps.git"), "-o", "json"}, &out, &errb)
		var items []struct{ ID, Result string }
		if err := json.Unmarshal(out.Bytes(), &items); err != nil {
			t.Fatalf("doctor -o json: %v\n%s\n%s", err, out.String(), errb.String())
		}
		got := map[string]string{}
		for _, it := range items {
			got[it.ID] = it.Result
		}
		return code, got
	}
	code, got := doctor()
	want := map[string]string{"controller": "warn", "permissions": "warn", "resources": "warn", "metrics": "warn", "credentials": "pass",
		"alerts": "warn", "override": "warn", "units": "pass", "repository": "warn"}
	if code != 0 || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("doctor on up's cluster: exit %d, %v; want 0, %v", code, got, want)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	repo := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
		"metadata": map[string]any{"name": "private", "namespace": "default"},
		"spec":     map[string]any{"url": "https://git.example.com/private.git", "interval": "10m", "secretRef": map[string]any{"name": "missing"}}}}
	if _, err := dynamic.NewForConfigOrDie(cfg).Resource(schema.GroupVersionResource{Group: "source.toolkit.fluxcd.io", Version: "v1", Resource: "gitrepositories"}).
		Namespace("default").Create(context.Background(), repo, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if code, got := doctor(); code != 1 || got["credentials"] != "fail" {
		t.Errorf("doctor after a GitRepository lost its Secret: exit %d, %v", code, got)
	}
}

// TestUpClusters runs `converge up --clusters 3`: two more local clusters,
// registered as Argo CD cluster Secrets, get orders-api through the demo
// ApplicationSet (one Application each, besides the three demo ones), and
// its Deployment runs in each. All three clusters go on Ctrl-C.
func TestUpClusters(t *testing.T) {
	stderr := runUp(t, []string{"--clusters", "3"}, 5, func(home string) bool {
		for _, name := range []string{"converge-2", "converge-3"} {
			cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(home, "clusters", name, "kubeconfig"))
			if err != nil {
				return false
			}
			d, err := kubernetes.NewForConfigOrDie(cfg).AppsV1().Deployments("orders-fleet").Get(context.Background(), "orders-api", metav1.GetOptions{})
			if err != nil || d.Status.AvailableReplicas < 1 {
				return false
			}
		}
		return true
	})
	if !strings.Contains(stderr, "Fleet (converge-2, converge-3") {
		t.Errorf("up did not name the fleet:\n%s", stderr)
	}
}
