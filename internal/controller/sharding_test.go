package controller

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	kustomizev1 "converge.dev/converge/internal/api/fluxcd/kustomize/v1"
	sourcev1 "converge.dev/converge/internal/api/fluxcd/source/v1"
	"converge.dev/converge/internal/cluster"
	"converge.dev/converge/internal/clustertest"
	"converge.dev/converge/internal/engine"
	"converge.dev/converge/internal/gittest"
	"converge.dev/converge/internal/shard"
	"converge.dev/converge/internal/source/git"
)

// shardKey is Flux's sharding label. The package's shared test
// controller runs as Flux's main instance does ("!sharding.fluxcd.io/key"),
// so it leaves alone the objects labelled for the replicas below.
const shardKey = "sharding.fluxcd.io/key"

// reconciles records which replica works on which unit, and when.
type reconciles struct {
	mu      sync.Mutex
	inside  map[string]string // unit → replica in it
	clashes []string
	ends    map[string]map[string]time.Time // unit → replica → last end
}

func (x *reconciles) observe(replica string) func(string) func() {
	return func(unit string) func() {
		x.mu.Lock()
		if other, ok := x.inside[unit]; ok && other != replica {
			x.clashes = append(x.clashes, fmt.Sprintf("%s reconciled %s while %s was at it", replica, unit, other))
		}
		x.inside[unit] = replica
		x.mu.Unlock()
		return func() {
			x.mu.Lock()
			defer x.mu.Unlock()
			if x.inside[unit] == replica {
				delete(x.inside, unit)
			}
			if x.ends[unit] == nil {
				x.ends[unit] = map[string]time.Time{}
			}
			x.ends[unit][replica] = time.Now()
		}
	}
}

// startReplica runs one sharded controller with its own engine, caches
// and connection, which cut severs.
func startReplica(t *testing.T, ns, id string, x *reconciles) (cut func()) {
	t.Helper()
	cfg := clustertest.RESTConfig(t)
	cut = clustertest.Partition(cfg)
	cc, err := cluster.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "converge-replica-"+id+"-")
	if err != nil {
		t.Fatal(err)
	}
	eng := engine.New(engine.Options{Fetcher: git.New(git.Options{CacheDir: filepath.Join(dir, "git")}), Cluster: cc})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	o := Options{Engine: eng, Interval: 10 * time.Minute, WatchLabelSelector: shardKey + "=ring",
		Sharding: shard.Options{Namespace: ns, Identity: id, Shards: 6, Observe: x.observe(id),
			// Short enough for a quick takeover. With 4 s, 2 s and 500 ms
			// the takeover check failed twice in CI runs of every package
			// side by side (never alone, nor in a full local run); a Lease
			// write times out at the retry period, and on a loaded machine
			// that can make the survivors drop and retake shards. These
			// leave more room; the takeover now takes about 10 s.
			LeaseDuration: 8 * time.Second, RenewDeadline: 5 * time.Second, RetryPeriod: time.Second}}
	go func() {
		defer close(done)
		if err := Run(ctx, cfg, o); err != nil && ctx.Err() == nil {
			t.Errorf("replica %s: %v", id, err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done; os.RemoveAll(dir) })
	return cut
}

// TestShardedReplicas: three replicas split twelve Kustomizations and
// their GitRepository by Lease-held shards. All become Ready; one replica
// is cut off from the API server, a commit follows, and every unit
// reaches it through the two others. No unit is ever reconciled by two
// replicas at once.
func TestShardedReplicas(t *testing.T) {
	c, _ := setup(t)
	ctx := context.Background()
	const units = 12
	ns := clustertest.Namespace(t)
	repo := gittest.NewRepo(t, t.TempDir()+"/units.git")
	commit := func(rev string) {
		files := map[string]string{}
		for i := range units {
			files[fmt.Sprintf("u%d/cm.yaml", i)] = fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: u%d}\ndata: {rev: %q}\n", i, rev)
		}
		repo.Commit("rev "+rev, files)
		repo.Publish()
	}
	commit("1")

	x := &reconciles{inside: map[string]string{}, ends: map[string]map[string]time.Time{}}
	cuts := map[string]func(){}
	for _, id := range []string{"a", "b", "c"} {
		cuts[id] = startReplica(t, ns, id, x)
	}
	ring := map[string]string{shardKey: "ring"}
	create(t, c, &sourcev1.GitRepository{ObjectMeta: metav1.ObjectMeta{Name: "units", Namespace: ns, Labels: ring},
		Spec: sourcev1.GitRepositorySpec{URL: gittest.FileURL(repo.Bare), Interval: metav1.Duration{Duration: 10 * time.Minute},
			Ref: &sourcev1.GitRepositoryRef{Branch: "main"}}})
	for i := range units {
		create(t, c, &kustomizev1.Kustomization{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("u%d", i), Namespace: ns, Labels: ring},
			Spec: kustomizev1.KustomizationSpec{SourceRef: kustomizev1.CrossNamespaceSourceReference{Kind: "GitRepository", Name: "units"},
				Path: fmt.Sprintf("./u%d", i), Prune: true, TargetNamespace: ns, Interval: metav1.Duration{Duration: 10 * time.Minute}}})
	}
	allAt := func(rev string, within time.Duration) {
		t.Helper()
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, within, true, func(ctx context.Context) (bool, error) {
			for i := range units {
				cm := &corev1.ConfigMap{}
				if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: fmt.Sprintf("u%d", i)}, cm); err != nil || cm.Data["rev"] != rev {
					return false, nil
				}
				ks := &kustomizev1.Kustomization{}
				if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: fmt.Sprintf("u%d", i)}, ks); err != nil ||
					!isReady(ks.Status.Conditions) || ks.Status.LastAppliedRevision != "main@sha1:"+repo.Head().String() {
					return false, nil
				}
			}
			return true, nil
		})
		if err != nil {
			t.Fatalf("the %d units never all reached rev %s: %v", units, rev, err)
		}
	}
	start := time.Now()
	allAt("1", 90*time.Second)
	t.Logf("%d units Ready through three replicas in %s", units, time.Since(start).Round(time.Millisecond))

	// Wait for the split to settle (each replica holds its two shards,
	// unchanged over a few ring ticks), then cut off the replica whose
	// shards hold the most units: they must be taken over. Units a
	// replica worked on while the first shards were handed around are
	// not its own any more, so ownership is read from the Leases.
	held := stableSplit(t, c, ns)
	shards, err := shard.New(kubernetes.NewForConfigOrDie(clustertest.RESTConfig(t)).CoordinationV1(), shard.Options{Namespace: ns, Identity: "test", Shards: 6})
	if err != nil {
		t.Fatal(err)
	}
	keys := []string{key(ns, "units")}
	for i := range units {
		keys = append(keys, key(ns, fmt.Sprintf("u%d", i)))
	}
	var victim string
	var bs []string
	for _, id := range []string{"a", "b", "c"} {
		var mine []string
		for _, k := range keys {
			if slices.Contains(held[id], shards.Of(k)) {
				mine = append(mine, k)
			}
		}
		if len(mine) > len(bs) {
			victim, bs = id, mine
		}
	}
	survivors := slices.DeleteFunc([]string{"a", "b", "c"}, func(id string) bool { return id == victim })

	cut := time.Now()
	cuts[victim]()
	// Nothing about the victim's units changes: the survivors reconcile
	// them because taking its shards enqueues them. The bound is for a
	// failure, not a speed target: on a loaded machine (CI runs packages
	// side by side on two cores) it took over 30 s once; the time is
	// logged.
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 2*time.Minute, true, func(context.Context) (bool, error) {
		x.mu.Lock()
		defer x.mu.Unlock()
		for _, unit := range bs {
			if !x.ends[unit][survivors[0]].After(cut) && !x.ends[unit][survivors[1]].After(cut) {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Errorf("%s's units %v (shards %v) were not reconciled by %v when they took its shards: %v", victim, bs, held[victim], survivors, err)
		dumpRing(t, c, ns, x)
		t.FailNow()
	}
	t.Logf("%s's units reconciled by the others %s after the cut, with no event about them", victim, time.Since(cut).Round(time.Millisecond))
	commit("2")
	// Ask the source for the new commit, as `flux reconcile source git` does.
	src := &sourcev1.GitRepository{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "units"}, src); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(src.DeepCopy())
	src.Annotations = map[string]string{ReconcileRequestAnnotation: time.Now().Format(time.RFC3339Nano)}
	if err := c.Patch(ctx, src, patch); err != nil {
		t.Fatal(err)
	}
	allAt("2", 90*time.Second)
	t.Logf("with %s cut off, all %d units at the next commit %s later (it had %v)", victim, units, time.Since(cut).Round(time.Millisecond), bs)

	x.mu.Lock()
	defer x.mu.Unlock()
	for _, msg := range x.clashes {
		t.Error(msg)
	}
}

// stableSplit waits until three replicas hold two shards each, the same
// ones over three ring ticks, and returns them by replica.
func stableSplit(t *testing.T, c client.Client, ns string) map[string][]int {
	t.Helper()
	var prev string
	same := 0
	held := map[string][]int{}
	err := wait.PollUntilContextTimeout(context.Background(), time.Second, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		leases := &coordinationv1.LeaseList{}
		if err := c.List(ctx, leases, client.InNamespace(ns), client.MatchingLabels{"converge.dev/shard-role": "shard"}); err != nil {
			return false, nil
		}
		held = map[string][]int{}
		for _, l := range leases.Items {
			i, err := strconv.Atoi(l.Name[strings.LastIndex(l.Name, "-")+1:])
			if err != nil || l.Spec.HolderIdentity == nil {
				continue
			}
			held[*l.Spec.HolderIdentity] = append(held[*l.Spec.HolderIdentity], i)
		}
		for _, s := range held {
			slices.Sort(s)
		}
		now := fmt.Sprint(held)
		if now == prev && len(held) == 3 && len(held["a"]) == 2 && len(held["b"]) == 2 && len(held["c"]) == 2 {
			same++
		} else {
			same = 0
		}
		prev = now
		return same >= 3, nil
	})
	if err != nil {
		t.Fatalf("the shards never settled two by replica: %v", held)
	}
	return held
}

// dumpRing logs, for a failed takeover, who holds each Lease and which
// reconciles are still running.
func dumpRing(t *testing.T, c client.Client, ns string, x *reconciles) {
	t.Helper()
	leases := &coordinationv1.LeaseList{}
	if err := c.List(context.Background(), leases, client.InNamespace(ns)); err != nil {
		t.Logf("leases: %v", err)
	}
	for _, l := range leases.Items {
		var who string
		if l.Spec.HolderIdentity != nil {
			who = *l.Spec.HolderIdentity
		}
		var renewed string
		if l.Spec.RenewTime != nil {
			renewed = time.Since(l.Spec.RenewTime.Time).Round(time.Millisecond).String() + " ago"
		}
		t.Logf("lease %s: held by %q, renewed %s, rv %s", l.Name, who, renewed, l.ResourceVersion)
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	for unit, by := range x.inside {
		t.Logf("%s is still reconciling %s", by, unit)
	}
	for unit, ends := range x.ends {
		t.Logf("%s last ended: %v", unit, ends)
	}
}

// TestGateSelector: Flux's watch label selector lets through only the
// objects it matches, and an object already deleted (the reconciler must
// see it gone).
func TestGateSelector(t *testing.T) {
	c, _ := setup(t)
	ctx := context.Background()
	ns := clustertest.Namespace(t)
	cfg := clustertest.RESTConfig(t)
	s, _ := Scheme()
	cc, err := cache.New(cfg, cache.Options{Scheme: s})
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go cc.Start(cctx)
	for name, labels := range map[string]map[string]string{
		"main":   nil,
		"shard1": {shardKey: "shard1"},
		"shard2": {shardKey: "shard2"},
	} {
		// Suspended: the package's controller leaves them alone.
		create(t, c, &sourcev1.GitRepository{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
			Spec: sourcev1.GitRepositorySpec{URL: "https://git.example.com/x.git", Suspend: true, Interval: metav1.Duration{Duration: time.Hour}}})
	}
	for _, tc := range []struct {
		selector string
		want     []string
	}{
		{"!" + shardKey, []string{"gone", "main"}},
		{shardKey + "=shard1", []string{"gone", "shard1"}},
		{shardKey + " in (shard1, shard2)", []string{"gone", "shard1", "shard2"}},
		{"", []string{"gone", "main", "shard1", "shard2"}},
	} {
		g, err := newGate(cc, tc.selector)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		inner := reconcile.Func(func(_ context.Context, req reconcile.Request) (reconcile.Result, error) {
			got = append(got, req.Name)
			return reconcile.Result{}, nil
		})
		r := reconcile.Reconciler(inner)
		if g.active() {
			r = g.wrap(&sourcev1.GitRepository{}, inner)
		}
		for _, name := range []string{"gone", "main", "shard1", "shard2"} {
			// Eventually: the cache fills after Start.
			err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
				return name == "gone" || cc.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &sourcev1.GitRepository{}) == nil, nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := r.Reconcile(ctx, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: name}}); err != nil {
				t.Fatal(err)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("selector %q let through %v, want %v", tc.selector, got, tc.want)
		}
	}
	if _, err := newGate(cc, "a in (b"); err == nil {
		t.Error("a malformed selector was accepted")
	}
}
