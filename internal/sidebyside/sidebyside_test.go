//go:build sidebyside

package sidebyside

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	kustomizev1 "converge.dev/converge/internal/api/fluxcd/kustomize/v1"
	sourcev1 "converge.dev/converge/internal/api/fluxcd/source/v1"
	"converge.dev/converge/internal/cluster"
	"converge.dev/converge/internal/clustertest"
	"converge.dev/converge/internal/controller"
	"converge.dev/converge/internal/fluxcontrollers"
	"converge.dev/converge/internal/gittest"
	"converge.dev/converge/internal/install"
	"converge.dev/converge/internal/object"
)

func TestMain(m *testing.M) {
	ctrllog.SetLogger(logr.Discard())
	log.SetOutput(io.Discard) // the Git server logs every request
	clustertest.Main(m, clustertest.Options{})
}

// settings come from the environment, so one binary runs any matrix.
type settings struct {
	sizes       []int
	objects     int
	wait        bool
	repeat      int
	interval    time.Duration
	steady      time.Duration
	concurrency int
	tools       []string
	// limit bounds each phase's wait. A phase that outlasts it is
	// reported as a lower bound with the count of units done, and the
	// run goes on: a run of Flux at N=1000 would otherwise take hours.
	limit time.Duration
}

func fromEnv(t *testing.T) settings {
	s := settings{objects: 5, repeat: 1, interval: 10 * time.Minute, steady: 2 * time.Minute, concurrency: 20,
		tools: []string{"converge", "flux"}, limit: 30 * time.Minute}
	for _, f := range strings.Split(env("SIDEBYSIDE_N", "100"), ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			t.Fatalf("SIDEBYSIDE_N: %v", err)
		}
		s.sizes = append(s.sizes, n)
	}
	atoi := func(k string, d *int) {
		if v := os.Getenv(k); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("%s: %v", k, err)
			}
			*d = n
		}
	}
	dur := func(k string, d *time.Duration) {
		if v := os.Getenv(k); v != "" {
			x, err := time.ParseDuration(v)
			if err != nil {
				t.Fatalf("%s: %v", k, err)
			}
			*d = x
		}
	}
	atoi("SIDEBYSIDE_OBJECTS", &s.objects)
	atoi("SIDEBYSIDE_REPEAT", &s.repeat)
	atoi("SIDEBYSIDE_CONCURRENCY", &s.concurrency)
	dur("SIDEBYSIDE_INTERVAL", &s.interval)
	dur("SIDEBYSIDE_STEADY", &s.steady)
	dur("SIDEBYSIDE_LIMIT", &s.limit)
	s.wait = os.Getenv("SIDEBYSIDE_WAIT") == "true"
	if v := os.Getenv("SIDEBYSIDE_TOOLS"); v != "" {
		s.tools = strings.Split(v, ",")
	}
	return s
}

func env(k, d string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return d
}

// TestSideBySide runs converge and Flux's controllers alternately on
// the same cluster and Git server, for each size in SIDEBYSIDE_N, and
// prints their figures side by side with the raw apply rate.
func TestSideBySide(t *testing.T) {
	s := fromEnv(t)
	ctx := context.Background()
	converge := buildConverge(t)
	for _, c := range []fluxcontrollers.Controller{fluxcontrollers.SourceController, fluxcontrollers.KustomizeController} {
		if _, err := c.Binary(ctx, os.Stderr); err != nil {
			t.Fatal(err)
		}
	}
	cfg := clustertest.RESTConfig(t)
	cfg.QPS, cfg.Burst = -1, 0
	cc, err := cluster.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Each tool runs on its own CRDs: converge's as converge install
	// applies them, Flux's as its release does (with the schema defaults
	// its controllers rely on). They are swapped before each run.
	convergeCRDs, err := install.CRDs()
	if err != nil {
		t.Fatal(err)
	}
	fluxFiles, err := fluxcontrollers.CRDs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var fluxCRDs []object.Decoded
	for i, data := range fluxFiles {
		objs, err := object.Decode(data, fmt.Sprintf("flux-crd-%d.yaml", i))
		if err != nil {
			t.Fatal(err)
		}
		fluxCRDs = append(fluxCRDs, objs...)
	}
	useCRDs := func(tool string) {
		crds := convergeCRDs
		if tool == "flux" {
			crds = fluxCRDs
		}
		if _, err := install.Apply(ctx, cc, crds); err != nil {
			t.Fatal(err)
		}
	}
	srv := gittest.NewServer(t, "", "")
	repo, url := srv.NewRepo(t, "fleet.git")
	for _, n := range s.sizes {
		t.Run(fmt.Sprintf("n%d", n), func(t *testing.T) {
			files := map[string]string{}
			for i := range n {
				for j := range s.objects {
					files[fmt.Sprintf("units/u-%04d/cm-%02d.yaml", i, j)] = configMap(i, j, "cold")
				}
			}
			repo.Commit(fmt.Sprintf("%d units", n), files)
			repo.Publish()
			rawNs := clustertest.Namespace(t)
			ssa8, err := SSARate(ctx, cfg, rawNs, n*s.objects, 8, "a")
			if err != nil {
				t.Fatal(err)
			}
			ssa32, err := SSARate(ctx, cfg, rawNs, n*s.objects, 32, "b")
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("raw server-side apply, %d ConfigMaps: %.0f/s with 8 workers, %.0f/s with 32", n*s.objects, ssa8, ssa32)
			all := map[string][]result{}
			for rep := range s.repeat {
				for _, tool := range s.tools {
					useCRDs(tool)
					r := runOnce(t, s, tool, converge, repo, url, n, rep)
					all[tool] = append(all[tool], r)
				}
			}
			report(t, s, n, ssa8, ssa32, all)
		})
	}
}

func configMap(i, j int, rev string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: u-%04d-%02d\ndata:\n  revision: %s\n", i, j, rev)
}

// buildConverge builds this checkout's converge, or takes the binary
// SIDEBYSIDE_CONVERGE names (to measure an older build).
func buildConverge(t *testing.T) string {
	if bin := os.Getenv("SIDEBYSIDE_CONVERGE"); bin != "" {
		return bin
	}
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "converge")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/converge")
	cmd.Dir = strings.TrimSpace(string(out))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build converge: %v\n%s", err, out)
	}
	return bin
}

// runOnce starts one tool's controllers, creates a GitRepository and n
// Kustomizations in a fresh namespace, and measures the cold start, a
// commit to every unit and the steady state; then it deletes the units
// (the controller prunes what they applied) and stops the controllers.
func runOnce(t *testing.T, s settings, tool, converge string, repo *gittest.Repo, url string, n, rep int) result {
	ctx := context.Background()
	cfg := clustertest.RESTConfig(t)
	cfg.QPS, cfg.Burst = -1, 0
	scheme, err := controller.Scheme()
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	nsObj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: fmt.Sprintf("sbs-%s-%d-", tool, n)}}
	if err := c.Create(ctx, nsObj); err != nil {
		t.Fatal(err)
	}
	ns := nsObj.Name
	dir := t.TempDir()
	logFile, err := os.Create(filepath.Join(dir, tool+".log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	var pids []int
	var stop func()
	// SIDEBYSIDE_PROFILE=DIR saves converge's CPU profile of the cold
	// start and its heap in the steady state there, and logs their tops.
	profiles, metricsAddr := os.Getenv("SIDEBYSIDE_PROFILE"), ""
	switch {
	case strings.HasPrefix(tool, "converge"):
		// "converge" is one process; "converge3" three replicas sharing
		// six shards.
		replicas, _ := strconv.Atoi(strings.TrimPrefix(tool, "converge"))
		var cmds []*exec.Cmd
		for i := range max(replicas, 1) {
			args := []string{"controller", "--kubeconfig", clustertest.Kubeconfig(t),
				"--concurrency", strconv.Itoa(s.concurrency), "--interval", s.interval.String()}
			if i == 0 && profiles != "" {
				if metricsAddr, err = FreeAddr(); err != nil {
					t.Fatal(err)
				}
				args = append(args, "--metrics-addr", metricsAddr)
			}
			if replicas > 1 {
				args = append(args, "--shards", strconv.Itoa(2*replicas), "--shard-identity", fmt.Sprintf("r%d", i),
					"--leader-election-namespace", ns)
			}
			cmd := exec.Command(converge, args...)
			cmd.Stdout, cmd.Stderr = logFile, logFile
			cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+filepath.Join(dir, fmt.Sprintf("cache-%d", i)))
			if v := os.Getenv("SIDEBYSIDE_GOMEMLIMIT"); v != "" {
				// converge's only: the API server keeps its own.
				cmd.Env = append(cmd.Env, "GOMEMLIMIT="+v)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			pids = append(pids, cmd.Process.Pid)
			cmds = append(cmds, cmd)
		}
		stop = func() {
			for _, cmd := range cmds {
				cmd.Process.Kill()
				cmd.Wait()
			}
		}
	case tool == "flux":
		r, err := fluxcontrollers.Start(ctx, fluxcontrollers.Options{Kubeconfig: clustertest.Kubeconfig(t), Dir: dir,
			Concurrent: s.concurrency, Log: logFile})
		if err != nil {
			t.Fatal(err)
		}
		pids = []int{r.Source.Process.Pid, r.Kustomize.Process.Pid}
		stop = r.Stop
	default:
		t.Fatalf("unknown tool %q", tool)
	}
	defer stop()
	time.Sleep(3 * time.Second) // let the controllers start their informers before the clock starts

	watch := newWatcher(t, cfg, ns)
	res := result{tool: tool}
	p0, r0 := measure(t, cfg, pids)
	cpuDone := make(chan string, 1)
	if metricsAddr != "" {
		go func() {
			path := filepath.Join(profiles, fmt.Sprintf("%s-n%d-cold-cpu.pb.gz", tool, n))
			secs := env("SIDEBYSIDE_PROFILE_SECONDS", "30")
			if err := Profile(ctx, metricsAddr, "profile?seconds="+secs, path); err != nil {
				t.Log(err)
				path = ""
			}
			cpuDone <- path
		}()
	}
	start := time.Now()
	gr := &sourcev1.GitRepository{ObjectMeta: metav1.ObjectMeta{Name: "fleet", Namespace: ns},
		// Flux's own CRD defaults the timeout; converge's does not, and
		// source-controller dereferences it.
		Spec: sourcev1.GitRepositorySpec{URL: url, Interval: metav1.Duration{Duration: s.interval}, Timeout: &metav1.Duration{Duration: time.Minute},
			Ref: &sourcev1.GitRepositoryRef{Branch: "main"}}}
	if err := c.Create(ctx, gr); err != nil {
		t.Fatal(err)
	}
	head := repo.Head().String()
	parallel(t, n, func(i int) error {
		return c.Create(ctx, &kustomizev1.Kustomization{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("u-%04d", i), Namespace: ns},
			Spec: kustomizev1.KustomizationSpec{SourceRef: kustomizev1.CrossNamespaceSourceReference{Kind: "GitRepository", Name: "fleet"},
				Path: fmt.Sprintf("./units/u-%04d", i), TargetNamespace: ns, Prune: true, Wait: s.wait,
				Interval: metav1.Duration{Duration: s.interval}}})
	})
	res.n = n
	res.coldDone = watch.waitAll(t, n, head, s.limit)
	res.cold = time.Since(start)
	p1, r1 := measure(t, cfg, pids)
	res.coldCPU, res.coldReqs = p1.CPU-p0.CPU, r1.Sub(r0)

	files := map[string]string{}
	for i := range n {
		// Per tool and repeat: a value an earlier run already committed
		// would leave nothing to apply.
		files[fmt.Sprintf("units/u-%04d/cm-00.yaml", i)] = configMap(i, 0, fmt.Sprintf("commit-%s-%d", tool, rep))
	}
	head = repo.Commit("a commit to every unit", files).String()
	repo.Publish()
	start = time.Now()
	patch := fmt.Sprintf(`{"metadata":{"annotations":{"reconcile.fluxcd.io/requestedAt":%q}}}`, time.Now().Format(time.RFC3339Nano))
	if err := c.Patch(ctx, gr, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
		t.Fatal(err)
	}
	// After an unfinished cold phase this counts from the commit
	// all the same: every unit must still be reconciled once at the new
	// head, so the figure stays a lower bound.
	res.commitDone = watch.waitAll(t, n, head, s.limit)
	res.commit = time.Since(start)
	p2, r2 := measure(t, cfg, pids)
	res.commitCPU, res.commitReqs = p2.CPU-p1.CPU, r2.Sub(r1)

	if s.steady > 0 && res.commitDone == n {
		time.Sleep(s.steady)
		p3, r3 := measure(t, cfg, pids)
		res.steadyCPU, res.steadyReqs = p3.CPU-p2.CPU, r3.Sub(r2)
		res.steadyWrites, res.steadyReads = res.steadyReqs.Writes(), res.steadyReqs.Reads()
		res.steadyRSS, res.steadyAnon = p3.RSS, p3.Anon
		p2 = p3
	}
	if metricsAddr != "" {
		if path := <-cpuDone; path != "" {
			top, err := Top(path, 25)
			t.Logf("%s, N=%d: CPU profile of the first %ss (%s)\n%s", tool, n, env("SIDEBYSIDE_PROFILE_SECONDS", "30"), path, top)
			if err != nil {
				t.Log(err)
			}
		}
		path := filepath.Join(profiles, fmt.Sprintf("%s-n%d-steady-heap.pb.gz", tool, n))
		if err := Profile(ctx, metricsAddr, "heap?gc=1", path); err != nil {
			t.Log(err)
		} else {
			for _, idx := range []string{"inuse_space", "alloc_space"} {
				top, err := Top(path, 25, "-sample_index="+idx)
				t.Logf("%s, N=%d: steady heap, %s (%s)\n%s", tool, n, idx, path, top)
				if err != nil {
					t.Log(err)
				}
			}
		}
	}
	res.peak = p2.Peak

	// Deleting the units makes the controller prune what they applied;
	// the next run starts on an empty namespace.
	t.Logf("%s", res.line(n*s.objects)) // before the cleanup, which can fail
	// A collection DELETE of a thousand units can outlast the API
	// server's request timeout while it goes on deleting: waitGone
	// tells.
	if err := c.DeleteAllOf(ctx, &kustomizev1.Kustomization{}, client.InNamespace(ns)); err != nil && !apierrors.IsTimeout(err) && !apierrors.IsServerTimeout(err) {
		t.Fatal(err)
	}
	watch.waitGone(t, max(10*time.Minute, s.limit))
	// The source goes while its controller runs: Flux's carries a
	// finalizer that only source-controller removes.
	c.Delete(ctx, gr)
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if err := c.Get(ctx, client.ObjectKeyFromObject(gr), &sourcev1.GitRepository{}); apierrors.IsNotFound(err) {
			break
		}
	}
	stop()
	// The namespace controller deleting what is left must not count in
	// the next run's figures.
	c.Delete(ctx, nsObj)
	for deadline := time.Now().Add(5 * time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
		if err := c.Get(ctx, client.ObjectKeyFromObject(nsObj), &corev1.Namespace{}); apierrors.IsNotFound(err) {
			break
		}
	}
	return res
}

func measure(t *testing.T, cfg *rest.Config, pids []int) (Proc, Requests) {
	p, err := SumProcs(pids...)
	if err != nil {
		t.Fatal(err)
	}
	r, err := ReadRequests(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p, r
}

func parallel(t *testing.T, n int, f func(i int) error) {
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 16)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := f(i); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
}

// watcher keeps the namespace's Kustomizations in an informer, so that
// waiting for them costs the API server one LIST and a WATCH, not a
// LIST per poll.
type watcher struct {
	cache cache.Cache
	ns    string
}

func newWatcher(t *testing.T, cfg *rest.Config, ns string) *watcher {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s, _ := controller.Scheme()
	ca, err := cache.New(cfg, cache.Options{Scheme: s, DefaultNamespaces: map[string]cache.Config{ns: {}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.GetInformer(ctx, &kustomizev1.Kustomization{}); err != nil {
		t.Fatal(err)
	}
	go ca.Start(ctx)
	ca.WaitForCacheSync(ctx)
	return &watcher{cache: ca, ns: ns}
}

// waitAll waits until each of n Kustomizations has been seen Ready at
// commit head. Seen once is enough: Flux sets Ready=Unknown while it
// reconciles a unit again (its interval), so all n are rarely Ready at
// the same instant.
func (w *watcher) waitAll(t *testing.T, n int, head string, timeout time.Duration) int {
	deadline := time.Now().Add(timeout)
	done := map[string]bool{}
	for {
		var list kustomizev1.KustomizationList
		if err := w.cache.List(context.Background(), &list, client.InNamespace(w.ns)); err != nil {
			t.Fatal(err)
		}
		last := ""
		for _, ks := range list.Items {
			c := apimeta.FindStatusCondition(ks.Status.Conditions, "Ready")
			if c != nil && c.Status == metav1.ConditionTrue && strings.HasSuffix(ks.Status.LastAppliedRevision, head) &&
				ks.Status.ObservedGeneration == ks.Generation {
				done[ks.Name] = true
			} else if c != nil && !done[ks.Name] {
				last = ks.Name + ": " + c.Reason + ": " + c.Message
			}
		}
		if len(done) == n {
			return n
		}
		if time.Now().After(deadline) {
			t.Logf("%d of %d Kustomizations Ready at %s after %s, the limit (one not: %s)", len(done), n, head, timeout, last)
			return len(done)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (w *watcher) waitGone(t *testing.T, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for {
		var list kustomizev1.KustomizationList
		if err := w.cache.List(context.Background(), &list, client.InNamespace(w.ns)); err != nil {
			t.Fatal(err)
		}
		if len(list.Items) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d Kustomizations still there after %s", len(list.Items), timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
