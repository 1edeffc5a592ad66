package shard

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"converge.dev/converge/internal/clustertest"
)

func TestMain(m *testing.M) { clustertest.Main(m, clustertest.Options{}) }

// Short periods, so a takeover takes seconds; the renew deadline plus a
// retry period is 1.5 s short of the lease duration, the margin by which
// a cut-off replica stops before another may start.
var timing = Options{LeaseDuration: 4 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 500 * time.Millisecond}

// exclusive records work on keys across replicas and counts every time a
// key was entered while another replica was still in it. (Within one
// replica a controller's queue keeps a key to one worker; the test's
// workers do not, so only other replicas count.)
type exclusive struct {
	mu      sync.Mutex
	inside  map[string]map[string]int // key → replica → workers in it
	clashes []string
	last    map[string]map[string]time.Time // key → replica → last end
}

func (x *exclusive) observe(replica string) func(string) func() {
	return func(key string) func() {
		x.mu.Lock()
		for other, n := range x.inside[key] {
			if other != replica && n > 0 {
				x.clashes = append(x.clashes, fmt.Sprintf("%s entered %s while %s was in it", replica, key, other))
			}
		}
		if x.inside[key] == nil {
			x.inside[key] = map[string]int{}
		}
		x.inside[key][replica]++
		x.mu.Unlock()
		return func() {
			x.mu.Lock()
			defer x.mu.Unlock()
			x.inside[key][replica]--
			if x.last[key] == nil {
				x.last[key] = map[string]time.Time{}
			}
			x.last[key][replica] = time.Now()
		}
	}
}

// replica is one ring with its own connection to the cluster, and
// workers that keep entering random keys as a controller's would.
type replica struct {
	ring   *Ring
	cut    func()
	cancel context.CancelFunc
	done   chan struct{}
}

func startReplica(t *testing.T, ns, id string, x *exclusive, keys []string) *replica {
	t.Helper()
	cfg := clustertest.RESTConfig(t)
	cut := clustertest.Partition(cfg)
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	o := timing
	o.Namespace, o.Identity, o.Shards, o.Observe = ns, id, 6, x.observe(id)
	ring, err := New(cs.CoordinationV1(), o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &replica{ring: ring, cut: cut, cancel: cancel, done: make(chan struct{})}
	go func() { ring.Run(ctx); close(r.done) }()
	for range 4 {
		go func() {
			for ctx.Err() == nil {
				key := keys[rand.IntN(len(keys))]
				wctx, end, ok := ring.Enter(ctx, key)
				if !ok {
					time.Sleep(time.Millisecond)
					continue
				}
				select { // work that stops when its shard is lost
				case <-wctx.Done():
				case <-time.After(5 * time.Millisecond):
				}
				end()
			}
		}()
	}
	t.Cleanup(func() { cancel(); <-r.done })
	return r
}

// holders maps each shard to the replicas that say they hold it.
func holders(rs map[string]*replica) map[int][]string {
	out := map[int][]string{}
	for id, r := range rs {
		for _, s := range r.ring.Held() {
			out[s] = append(out[s], id)
		}
	}
	return out
}

// waitSpread waits until each of rs holds want shards and every shard has
// one holder, and says how long that took.
func waitSpread(t *testing.T, rs map[string]*replica, want int, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, within, true, func(context.Context) (bool, error) {
		for _, r := range rs {
			if len(r.ring.Held()) != want {
				return false, nil
			}
		}
		h := holders(rs)
		for s := range 6 {
			if len(h[s]) != 1 {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("shards never spread %d per replica within %s: %v", want, within, holders(rs))
	}
	return time.Since(start)
}

// TestRingKill: three replicas split six shards two each. One is cut off
// from the API server while its workers keep trying: it stops working on
// its shards at its renew deadline, the two others take them over after
// the lease duration, every key is worked on again, and no key is ever
// worked on by two replicas at once. A replica that stops cleanly hands
// its shards over at once.
func TestRingKill(t *testing.T) {
	ns := clustertest.Namespace(t)
	keys := make([]string, 60)
	for i := range keys {
		keys[i] = fmt.Sprintf("ns/unit-%d", i)
	}
	x := &exclusive{inside: map[string]map[string]int{}, last: map[string]map[string]time.Time{}}
	rs := map[string]*replica{}
	for _, id := range []string{"a", "b", "c"} {
		rs[id] = startReplica(t, ns, id, x, keys)
	}
	t.Logf("three replicas spread in %s", waitSpread(t, rs, 2, 30*time.Second).Round(time.Millisecond))

	killed := time.Now()
	rs["b"].cut()
	survivors := map[string]*replica{"a": rs["a"], "c": rs["c"]}
	// Taken over after the lease duration, seen at a tick or two later.
	took := waitSpread(t, survivors, 3, 3*timing.LeaseDuration)
	t.Logf("b's shards taken over %s after it was cut off (lease duration %s)", took.Round(time.Millisecond), timing.LeaseDuration)
	if took < timing.LeaseDuration-timing.RetryPeriod {
		t.Errorf("taken over after %s, before b's lease could have expired (%s)", took, timing.LeaseDuration)
	}
	if held := rs["b"].ring.Held(); len(held) != 0 {
		t.Errorf("b, cut off %s ago, still works on shards %v", took, held)
	}
	// Every key is worked on again, by a survivor.
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		x.mu.Lock()
		defer x.mu.Unlock()
		for _, k := range keys {
			if !x.last[k]["a"].After(killed.Add(took)) && !x.last[k]["c"].After(killed.Add(took)) {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Errorf("some keys were never worked on after the takeover: %v", err)
	}

	// A clean stop releases at once: no lease duration to wait.
	rs["c"].cancel()
	<-rs["c"].done
	handed := waitSpread(t, map[string]*replica{"a": rs["a"]}, 6, 3*timing.LeaseDuration)
	t.Logf("c's shards handed over %s after it stopped", handed.Round(time.Millisecond))
	if handed >= timing.LeaseDuration {
		t.Errorf("c's shards took %s to hand over after a clean stop: they were not released", handed)
	}
	cs := clustertest.Clientset(t)
	if _, err := cs.CoordinationV1().Leases(ns).Get(context.Background(), rs["c"].ring.memberName(), metav1.GetOptions{}); err == nil {
		t.Errorf("c's member Lease is still there after a clean stop")
	}

	x.mu.Lock()
	defer x.mu.Unlock()
	for _, c := range x.clashes {
		t.Error(c)
	}
}

// TestRingOptions: settings that would let two replicas work on one shard
// are refused.
func TestRingOptions(t *testing.T) {
	cs := clustertest.Clientset(t)
	for _, o := range []Options{
		{Identity: "a", Shards: 3},
		{Namespace: "n", Shards: 3},
		{Namespace: "n", Identity: "a"},
		{Namespace: "n", Identity: "a", Shards: 3, LeaseDuration: 10 * time.Second, RenewDeadline: 9 * time.Second, RetryPeriod: time.Second},
	} {
		if _, err := New(cs.CoordinationV1(), o); err == nil {
			t.Errorf("%+v: accepted", o)
		}
	}
}

// TestOf: a key's shard is the same on every replica and the keys spread
// over all shards.
func TestOf(t *testing.T) {
	cs := clustertest.Clientset(t)
	a, _ := New(cs.CoordinationV1(), Options{Namespace: "n", Identity: "a", Shards: 6})
	b, _ := New(cs.CoordinationV1(), Options{Namespace: "n", Identity: "b", Shards: 6})
	seen := map[int]int{}
	for i := range 600 {
		k := fmt.Sprintf("flux-system/app-%d", i)
		if a.Of(k) != b.Of(k) {
			t.Fatalf("%s: shard %d on a, %d on b", k, a.Of(k), b.Of(k))
		}
		seen[a.Of(k)]++
	}
	for s := range 6 {
		if seen[s] < 60 {
			t.Errorf("shard %d has %d of 600 keys: %v", s, seen[s], seen)
		}
	}
}
