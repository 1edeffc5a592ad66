package engine

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"converge.dev/converge/internal/cluster"
	"converge.dev/converge/internal/clustertest"
	"converge.dev/converge/internal/gittest"
	"converge.dev/converge/internal/render"
	"converge.dev/converge/internal/render/helm"
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
	files := map[string]string{}
	for i := range n {
		// ConfigMaps: nothing else writes them after the apply, so the
		// last comparison finds the versions the applies returned.
		files[fmt.Sprintf("big/cm-%02d.yaml", i)] = fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm-%d}\ndata: {k: v%d}\n", i, i)
	}
	eng, u, counter := countedEnv(t, files)
	ctx := context.Background()
	// The inventories' namespace is made by the first sync on a cluster,
	// which this test may be: made here, it is not counted.
	_, err := clustertest.Clientset(t).CoreV1().Namespaces().Create(ctx,
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: cluster.InventoryNamespace}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}

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
	if _, err := eng.Sync(ctx, u, SyncOptions{Prune: true}); err != nil {
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

// TestJsonnetFoldersRenderInTheChild: with Jsonnet on (as an Argo CD
// directory source has it), a folder holding a .jsonnet file still
// renders in the render child, and a plain folder renders in process.
// The child here cannot start, so only the render that uses it fails.
func TestJsonnetFoldersRenderInTheChild(t *testing.T) {
	srv := gittest.NewServer(t, "", "")
	repo, url := srv.NewRepo(t, "org/jsonnet.git")
	repo.Commit("two folders", map[string]string{
		"plain/cm.yaml":      "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: plain}\n",
		"built/main.jsonnet": "{apiVersion: 'v1', kind: 'ConfigMap', metadata: {name: 'built'}}\n",
	})
	repo.Publish()
	child := &helm.Child{Command: filepath.Join(t.TempDir(), "no-such-binary")}
	eng := New(Options{Fetcher: git.New(git.Options{CacheDir: t.TempDir()}), HelmChild: child})
	ctx := context.Background()
	unit := func(path string) Unit {
		return Unit{Name: path, RepoURL: url, Path: path, Render: RenderOptions{Jsonnet: &render.JsonnetOptions{}}}
	}
	r, err := eng.Render(ctx, unit("plain"))
	if err != nil {
		t.Fatalf("a folder without Jsonnet went to the child: %v", err)
	}
	if len(r.Objects) != 1 {
		t.Errorf("plain: %d objects", len(r.Objects))
	}
	if _, err := eng.Render(ctx, unit("built")); err == nil || !strings.Contains(err.Error(), "render process") {
		t.Errorf("a folder with a .jsonnet file did not go to the child: %v", err)
	}
}
