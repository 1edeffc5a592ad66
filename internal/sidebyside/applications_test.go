//go:build sidebyside

package sidebyside

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
	"converge.dev/converge/internal/cluster"
	"converge.dev/converge/internal/clustertest"
	"converge.dev/converge/internal/controller"
	"converge.dev/converge/internal/gittest"
	"converge.dev/converge/internal/install"
)

// TestApplications times converge's controller on SIDEBYSIDE_APPS Argo
// CD Applications of SIDEBYSIDE_APP_OBJECTS ConfigMaps each (default
// 10): cold to Synced and Healthy, then a commit to every one (each
// refreshed by its annotation, as a webhook would), with the raw
// server-side-apply rate of the same objects as the ceiling. Argo CD
// itself is not run: it needs Redis and a repo-server beside the
// controller, which this harness does not build.
func TestApplications(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("SIDEBYSIDE_APPS"))
	if n == 0 {
		t.Skip("SIDEBYSIDE_APPS is not set")
	}
	objects := 10
	if v, _ := strconv.Atoi(os.Getenv("SIDEBYSIDE_APP_OBJECTS")); v > 0 {
		objects = v
	}
	s := fromEnv(t)
	ctx := context.Background()
	bin := buildConverge(t)
	cfg := clustertest.RESTConfig(t)
	cfg.QPS, cfg.Burst = -1, 0
	cc, err := cluster.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	crds, err := install.CRDs()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := install.Apply(ctx, cc, crds); err != nil {
		t.Fatal(err)
	}
	srv := gittest.NewServer(t, "", "")
	repo, url := srv.NewRepo(t, "apps.git")
	files := map[string]string{}
	for i := range n {
		for j := range objects {
			files[fmt.Sprintf("apps/a-%04d/cm-%02d.yaml", i, j)] = configMap(i, j, "cold")
		}
	}
	head := repo.Commit(fmt.Sprintf("%d apps", n), files).String()
	repo.Publish()
	ssa, err := SSARate(ctx, cfg, clustertest.Namespace(t), n*objects, 32, "a")
	if err != nil {
		t.Fatal(err)
	}
	ns := clustertest.Namespace(t)
	scheme, _ := controller.Scheme()
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(filepath.Join(t.TempDir(), "converge.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	hookAddr, err := FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	metricsAddr, err := FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "controller", "--kubeconfig", clustertest.Kubeconfig(t),
		"--concurrency", strconv.Itoa(s.concurrency), "--interval", s.interval.String(), "--webhook-addr", hookAddr,
		"--metrics-addr", metricsAddr)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+t.TempDir(), "CONVERGE_WEBHOOK_GITHUB_SECRET="+hookSecret)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	time.Sleep(3 * time.Second)
	pids := []int{cmd.Process.Pid}

	if err := c.Create(ctx, &v1alpha1.AppProject{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: ns},
		Spec: v1alpha1.AppProjectSpec{SourceRepos: []string{"*"}, Destinations: []v1alpha1.ApplicationDestination{{Server: "*", Namespace: "*"}},
			ClusterResourceWhitelist: []metav1.GroupKind{{Group: "*", Kind: "*"}}}}); err != nil {
		t.Fatal(err)
	}
	w := newAppWatcher(t, ns)
	p0, r0 := measure(t, cfg, pids)
	start := time.Now()
	parallel(t, n, func(i int) error {
		// manifest-generate-paths, as Argo CD advises for a monorepo: a
		// push refreshes only the Applications whose folder it changed.
		return c.Create(ctx, &v1alpha1.Application{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("a-%04d", i), Namespace: ns,
			Annotations: map[string]string{controller.ManifestGeneratePathsAnnotation: "."}},
			Spec: v1alpha1.ApplicationSpec{Project: "default",
				Source:      &v1alpha1.ApplicationSource{RepoURL: url, TargetRevision: "main", Path: fmt.Sprintf("apps/a-%04d", i)},
				Destination: v1alpha1.ApplicationDestination{Server: "https://kubernetes.default.svc", Namespace: ns},
				SyncPolicy:  &v1alpha1.SyncPolicy{Automated: &v1alpha1.SyncPolicyAutomated{Prune: true, SelfHeal: true}}}})
	})
	w.waitAll(t, n, head, 30*time.Minute)
	cold := time.Since(start)
	p1, r1 := measure(t, cfg, pids)

	files = map[string]string{}
	for i := range n {
		files[fmt.Sprintf("apps/a-%04d/cm-00.yaml", i)] = configMap(i, 0, "commit")
	}
	head = repo.Commit("a commit to every app", files).String()
	repo.Publish()
	start = time.Now()
	parallel(t, n, func(i int) error {
		patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:"normal"}}}`, controller.RefreshAnnotation)
		app := &v1alpha1.Application{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("a-%04d", i), Namespace: ns}}
		return c.Patch(ctx, app, client.RawPatch(types.MergePatchType, []byte(patch)))
	})
	w.waitAll(t, n, head, 30*time.Minute)
	commit := time.Since(start)
	p2, r2 := measure(t, cfg, pids)

	// What the controller still has queued when the first edit comes,
	// and how many reconciles each phase took (one per Application is
	// the floor).
	queue := `workqueue_depth{controller="application"`
	reconciles := `controller_runtime_reconcile_total{controller="application"`
	if m, err := Scrape(ctx, metricsAddr, queue, reconciles); err == nil {
		t.Logf("before the edits:\n%s", m)
	}
	heal := selfHeal(t, c, ns, n, 20)
	// SIDEBYSIDE_PROFILE=DIR: the CPU profile of the pushes.
	profiled := make(chan string, 1)
	if dir := os.Getenv("SIDEBYSIDE_PROFILE"); dir != "" {
		go func() {
			path := filepath.Join(dir, fmt.Sprintf("apps-n%d-pushes-cpu.pb.gz", n))
			if err := Profile(ctx, metricsAddr, "profile?seconds=60", path); err != nil {
				t.Log(err)
				path = ""
			}
			profiled <- path
		}()
	} else {
		profiled <- ""
	}
	pushes := pushToApplied(t, c, repo, url, "http://"+hookAddr+controller.WebhookPath, ns, n, 20)
	if path := <-profiled; path != "" {
		top, err := Top(path, 30, "-cum")
		t.Logf("CPU profile of the first 60 s of pushes (%s)\n%s %v", path, top, err)
	}

	var b strings.Builder
	fmt.Fprintf(&b, "\n%d Applications of %d ConfigMaps (%d objects), %d workers; raw server-side apply %.0f objects/s (32 workers)\n", n, objects, n*objects, s.concurrency, ssa)
	fmt.Fprintf(&b, "cold to Synced and Healthy: %.1f s (%.0f objects/s, %.0f%% of raw), CPU %.1f s, requests {%s}\n",
		cold.Seconds(), float64(n*objects)/cold.Seconds(), 100*float64(n*objects)/cold.Seconds()/ssa, (p1.CPU - p0.CPU).Seconds(), r1.Sub(r0))
	fmt.Fprintf(&b, "a commit to every Application: %.1f s, CPU %.1f s, requests {%s}\n", commit.Seconds(), (p2.CPU - p1.CPU).Seconds(), r2.Sub(r1))
	fmt.Fprintf(&b, "a manual edit to self-healed, %d edits 3 s apart: p50 %s, max %s\n", len(heal), heal[len(heal)/2].Round(time.Millisecond), heal[len(heal)-1].Round(time.Millisecond))
	fmt.Fprintf(&b, "a push (GitHub webhook) to applied, %d pushes 3 s apart: p50 %s, max %s\n", len(pushes), pushes[len(pushes)/2].Round(time.Millisecond), pushes[len(pushes)-1].Round(time.Millisecond))
	fmt.Fprintf(&b, "peak RSS %s, RSS after the commit %s (anonymous %s)\n", mb(p2.Peak), mb(p2.RSS), mb(p2.Anon))
	fmt.Fprintf(&b, "requests: cold {%s}\n  commit {%s}\n", r1.Sub(r0).Detail(), r2.Sub(r1).Detail())
	fmt.Print(b.String())
	t.Log(b.String())
	c.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
}

// selfHeal edits one ConfigMap of k Applications, 3 s apart, as kubectl
// would, and times each until the controller has put Git's value back.
// The edits span the controller's periodic resyncs, which queue behind
// them. It returns the times sorted.
func selfHeal(t *testing.T, c client.Client, ns string, n, k int) []time.Duration {
	ctx := context.Background()
	var out []time.Duration
	for i := range k {
		name := fmt.Sprintf("u-%04d-01", (i*7919)%n)
		cm := &corev1.ConfigMap{}
		if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, cm); err != nil {
			t.Fatal(err)
		}
		cm.Data["revision"] = "edited by hand"
		start := time.Now()
		if err := c.Update(ctx, cm); err != nil {
			t.Fatal(err)
		}
		out = append(out, waitRevision(t, c, ns, name, "cold", start))
		time.Sleep(3 * time.Second)
	}
	t.Logf("self-heal times in the order of the edits: %v", out) // which one is slow says why
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// waitRevision polls a ConfigMap until its revision is want, and returns
// the time since start.
func waitRevision(t *testing.T, c client.Client, ns, name, want string, start time.Time) time.Duration {
	for {
		cm := &corev1.ConfigMap{}
		if err := c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, cm); err != nil {
			t.Fatal(err)
		}
		if cm.Data["revision"] == want {
			return time.Since(start)
		}
		if time.Since(start) > 5*time.Minute {
			t.Fatalf("%s: revision %q, not %q, 5 minutes on", name, cm.Data["revision"], want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// hookSecret signs the harness's push deliveries.
const hookSecret = "sidebyside-webhook-secret"

// pushToApplied commits a change to one ConfigMap of k Applications, 3 s
// apart, delivers each push to the controller as GitHub would (a signed
// push event naming the changed file), and times each until the
// ConfigMap holds the pushed value. It returns the times sorted.
func pushToApplied(t *testing.T, c client.Client, repo *gittest.Repo, url, hook, ns string, n, k int) []time.Duration {
	var out []time.Duration
	for i := range k {
		app := (i * 7907) % n
		file := fmt.Sprintf("apps/a-%04d/cm-02.yaml", app)
		value := fmt.Sprintf("push-%d", i)
		sha := repo.Commit("push "+value, map[string]string{file: configMap(app, 2, value)}).String()
		repo.Publish()
		body, _ := json.Marshal(map[string]any{"ref": "refs/heads/main", "after": sha,
			"commits":    []map[string]any{{"id": sha, "modified": []string{file}}},
			"repository": map[string]any{"clone_url": url, "html_url": strings.TrimSuffix(url, ".git"), "default_branch": "main"}})
		mac := hmac.New(sha256.New, []byte(hookSecret))
		mac.Write(body)
		req, _ := http.NewRequest(http.MethodPost, hook, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-GitHub-Event", "push")
		req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		reply, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(reply), fmt.Sprintf("a-%04d", app)) {
			t.Fatalf("push %d: %s %s", i, resp.Status, reply)
		}
		out = append(out, waitRevision(t, c, ns, fmt.Sprintf("u-%04d-02", app), value, start))
		time.Sleep(3 * time.Second)
	}
	t.Logf("push times in the order of the pushes: %v", out)
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

type appWatcher struct {
	cache cache.Cache
	ns    string
}

func newAppWatcher(t *testing.T, ns string) *appWatcher {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s, _ := controller.Scheme()
	ca, err := cache.New(clustertest.RESTConfig(t), cache.Options{Scheme: s, DefaultNamespaces: map[string]cache.Config{ns: {}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.GetInformer(ctx, &v1alpha1.Application{}); err != nil {
		t.Fatal(err)
	}
	go ca.Start(ctx)
	ca.WaitForCacheSync(ctx)
	return &appWatcher{cache: ca, ns: ns}
}

// waitAll waits until each of n Applications has been seen Synced and
// Healthy at commit head.
func (w *appWatcher) waitAll(t *testing.T, n int, head string, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	done := map[string]bool{}
	for {
		var list v1alpha1.ApplicationList
		if err := w.cache.List(context.Background(), &list, client.InNamespace(w.ns)); err != nil {
			t.Fatal(err)
		}
		last := ""
		for _, a := range list.Items {
			if a.Status.Sync.Status == "Synced" && a.Status.Health.Status == "Healthy" && a.Status.Sync.Revision == head {
				done[a.Name] = true
			} else if !done[a.Name] {
				last = fmt.Sprintf("%s: %s/%s at %.8s", a.Name, a.Status.Sync.Status, a.Status.Health.Status, a.Status.Sync.Revision)
			}
		}
		if len(done) == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d Applications Synced and Healthy at %s after %s (one not: %s)", len(done), n, head, timeout, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
