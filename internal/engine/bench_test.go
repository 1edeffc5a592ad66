package engine

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"converge.dev/converge/internal/cluster"
	"converge.dev/converge/internal/clustertest"
	"converge.dev/converge/internal/gittest"
	"converge.dev/converge/internal/object"
	"converge.dev/converge/internal/plan"
	"converge.dev/converge/internal/render"
	"converge.dev/converge/internal/source/git"
)

// requestCounter counts API requests by kind: reads, server-side dry runs
// and real writes.
type requestCounter struct {
	next                   http.RoundTripper
	reads, dryRuns, writes atomic.Int64
}

func (c *requestCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	switch {
	case r.Method == http.MethodGet:
		c.reads.Add(1)
	case strings.Contains(r.URL.RawQuery, "dryRun=All"):
		c.dryRuns.Add(1)
	default:
		c.writes.Add(1)
	}
	return c.next.RoundTrip(r)
}

func (c *requestCounter) reset() { c.reads.Store(0); c.dryRuns.Store(0); c.writes.Store(0) }

// manyObjects is an app of n objects: ConfigMaps, Services and
// Deployments in equal parts, across three waves.
func manyObjects(n int) map[string]string {
	files := map[string]string{}
	for i := 0; i < n; i++ {
		var doc string
		switch i % 3 {
		case 0:
			doc = fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm-%d, annotations: {argocd.argoproj.io/sync-wave: \"%d\"}}\ndata: {k: v%d}\n", i, i%3, i)
		case 1:
			doc = fmt.Sprintf("apiVersion: v1\nkind: Service\nmetadata: {name: svc-%d}\nspec: {selector: {app: a%d}, ports: [{port: 80}]}\n", i, i)
		case 2:
			doc = fmt.Sprintf("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: dep-%d}\nspec: {replicas: 0, selector: {matchLabels: {app: a%d}}, template: {metadata: {labels: {app: a%d}}, spec: {containers: [{name: c, image: example/app:%d}]}}}\n", i, i, i, i)
		}
		files[fmt.Sprintf("big/obj-%04d.yaml", i)] = doc
	}
	return files
}

// BenchmarkRenderAndPlan500 renders a 500-object folder and plans it
// against a live state equal to it: the pure part of every resync.
func BenchmarkRenderAndPlan500(b *testing.B) {
	dir := b.TempDir()
	for name, doc := range manyObjects(500) {
		writeFileB(b, filepath.Join(dir, name), doc)
	}
	objs, err := render.RenderDirectory(dir, filepath.Join(dir, "big"), render.DirectoryOptions{})
	if err != nil {
		b.Fatal(err)
	}
	live := map[object.Key]*unstructured.Unstructured{}
	for _, d := range objs {
		live[object.RefOf(d.Object).Key()] = d.Object
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		objs, err := render.RenderDirectory(dir, filepath.Join(dir, "big"), render.DirectoryOptions{})
		if err != nil {
			b.Fatal(err)
		}
		p, err := plan.Make(plan.Input{Unit: "bench", Desired: objs, Live: live, Predicted: live})
		if err != nil || p.Changes() != 0 || len(p.Steps) != 500 {
			b.Fatalf("plan: %d steps, %d changes, %v", len(p.Steps), p.Changes(), err)
		}
	}
}

// noopEnv syncs an app of n objects once and returns an engine whose API
// requests are counted.
func noopEnv(tb testing.TB, n int) (*Engine, Unit, *requestCounter) {
	eng, u, counter := countedEnv(tb, manyObjects(n))
	if _, err := eng.Sync(context.Background(), u, SyncOptions{Prune: true}); err != nil {
		tb.Fatal(err)
	}
	return eng, u, counter
}

// countedEnv publishes files (under big/) and returns an engine whose
// API requests are counted, and a unit on them.
func countedEnv(tb testing.TB, files map[string]string) (*Engine, Unit, *requestCounter) {
	srv := gittest.NewServer(tb, "", "")
	repo, url := srv.NewRepo(tb, "org/big.git")
	repo.Commit("big app", files)
	repo.Publish()
	counter := &requestCounter{}
	cfg := clustertest.RESTConfig(tb)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { counter.next = rt; return counter })
	cfg.QPS, cfg.Burst = 1000, 2000
	c, err := cluster.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	ns := clustertest.Namespace(tb)
	eng := New(Options{Fetcher: git.New(git.Options{CacheDir: tb.TempDir()}), Cluster: c})
	u := Unit{Name: "bench-" + ns, RepoURL: url, Path: "big", DestNamespace: ns}
	return eng, u, counter
}

// TestNoopResyncWritesNothing: a resync of an unchanged revision sends no
// write to the API server, only reads and dry runs.
func TestNoopResyncWritesNothing(t *testing.T) {
	eng, u, counter := noopEnv(t, 60)
	counter.reset()
	rep, err := eng.Sync(context.Background(), u, SyncOptions{Prune: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Plan.Changes() != 0 || len(rep.Events) != 0 {
		t.Errorf("no-op resync planned %d changes, did %d", rep.Plan.Changes(), len(rep.Events))
	}
	if w := counter.writes.Load(); w != 0 {
		t.Errorf("no-op resync sent %d writes, want 0", w)
	}
	t.Logf("no-op resync of 60 objects: %d reads, %d dry runs, %d writes", counter.reads.Load(), counter.dryRuns.Load(), counter.writes.Load())
}

// BenchmarkNoopResync500 measures a steady-state resync of a 500-object
// unit against the real API server and reports requests per resync.
func BenchmarkNoopResync500(b *testing.B) {
	eng, u, counter := noopEnv(b, 500)
	counter.reset()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := eng.Sync(context.Background(), u, SyncOptions{Prune: true}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(counter.reads.Load())/float64(b.N), "reads/op")
	b.ReportMetric(float64(counter.dryRuns.Load())/float64(b.N), "dryruns/op")
	b.ReportMetric(float64(counter.writes.Load())/float64(b.N), "writes/op")
}

func writeFileB(b *testing.B, path, data string) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkUnit10000 syncs a unit of 10,000 ConfigMaps, cold, and then
// resyncs it unchanged: does a unit that large converge, and what does
// its steady state cost? Run with -benchtime 1x; it prints the cold sync
// time and the requests of one resync.
func BenchmarkUnit10000(b *testing.B) {
	const n = 10000
	var doc strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&doc, "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm-%05d}\ndata: {k: v%d}\n", i, i)
	}
	srv := gittest.NewServer(b, "", "")
	repo, url := srv.NewRepo(b, "org/huge.git")
	repo.Commit("huge", map[string]string{"huge/all.yaml": doc.String()})
	repo.Publish()
	counter := &requestCounter{}
	cfg := clustertest.RESTConfig(b)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { counter.next = rt; return counter })
	cfg.QPS, cfg.Burst = 1000, 2000
	c, err := cluster.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	ns := clustertest.Namespace(b)
	eng := New(Options{Fetcher: git.New(git.Options{CacheDir: b.TempDir()}), Cluster: c})
	u := Unit{Name: "huge-" + ns, RepoURL: url, Path: "huge", DestNamespace: ns}
	start := time.Now()
	if _, err := eng.Sync(context.Background(), u, SyncOptions{Prune: true, Wait: true}); err != nil {
		b.Fatal(err)
	}
	cold := time.Since(start)
	b.Logf("cold sync of %d objects: %s, %d reads, %d dry runs, %d writes", n, cold.Round(time.Millisecond),
		counter.reads.Load(), counter.dryRuns.Load(), counter.writes.Load())
	counter.reset()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rep, err := eng.Sync(context.Background(), u, SyncOptions{Prune: true, Wait: true})
		if err != nil || rep.Plan.Changes() != 0 {
			b.Fatalf("resync: %d changes, %v", rep.Plan.Changes(), err)
		}
	}
	b.StopTimer()
	b.ReportMetric(cold.Seconds(), "cold-s")
	b.ReportMetric(float64(counter.reads.Load())/float64(b.N), "reads/op")
	b.ReportMetric(float64(counter.dryRuns.Load())/float64(b.N), "dryruns/op")
	b.ReportMetric(float64(counter.writes.Load())/float64(b.N), "writes/op")
}
