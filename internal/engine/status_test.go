package engine

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"converge.dev/converge/internal/cluster"
	"converge.dev/converge/internal/clustertest"
	"converge.dev/converge/internal/gittest"
	"converge.dev/converge/internal/source/git"
)

// TestFirstSyncDryRunsEachObjectOnce is an Application's first
// reconcile: a comparison, then a sync, then the comparison written to
// its status. The first comparison calls every object Missing without a
// dry run, the sync dry-runs each object once before applying any and
// writes its inventory once, and the last comparison reuses the answers
// of the applies.
func TestFirstSyncDryRunsEachObjectOnce(t *testing.T) {
	const n = 30
	srv := gittest.NewServer(t, "", "")
	repo, url := srv.NewRepo(t, "org/first.git")
	files := map[string]string{}
	for i := range n {
		// ConfigMaps: nothing else writes them after the apply, so the
		// last comparison finds the versions the applies returned.
		files[fmt.Sprintf("big/cm-%02d.yaml", i)] = fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm-%d}\ndata: {k: v%d}\n", i, i)
	}
	repo.Commit("app", files)
	repo.Publish()
	counter := &requestCounter{}
	cfg := clustertest.RESTConfig(t)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { counter.next = rt; return counter })
	c, err := cluster.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ns := clustertest.Namespace(t)
	eng := New(Options{Fetcher: git.New(git.Options{CacheDir: t.TempDir()}), Cluster: c})
	u := Unit{Name: "first-" + ns, RepoURL: url, Path: "big", DestNamespace: ns}
	ctx := context.Background()

	st, err := eng.Status(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	if st.Synced || len(st.Objects) != n {
		t.Fatalf("before any sync: synced %v, %d objects", st.Synced, len(st.Objects))
	}
	for _, o := range st.Objects {
		if o.Sync != "Missing" {
			t.Errorf("%s is %s before any sync, want Missing", o.Ref, o.Sync)
		}
	}
	if d := counter.dryRuns.Load(); d != 0 {
		t.Errorf("the comparison before the first sync sent %d dry runs, want 0", d)
	}

	counter.reset()
	if _, err := eng.Sync(ctx, u, SyncOptions{Prune: true, Force: true}); err != nil {
		t.Fatal(err)
	}
	if d := counter.dryRuns.Load(); d != n {
		t.Errorf("the first sync sent %d dry runs for %d objects, want one each", d, n)
	}
	// The applies and one inventory write: the write-ahead inventory is
	// already the one after the sync.
	if w := counter.writes.Load(); w != n+1 {
		t.Errorf("the first sync sent %d writes for %d objects, want %d", w, n, n+1)
	}

	counter.reset()
	st, err = eng.Status(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Synced {
		t.Errorf("after the sync: %+v", st.Objects)
	}
	if d := counter.dryRuns.Load(); d != 0 {
		t.Errorf("the comparison after the sync sent %d dry runs, want 0", d)
	}
}
