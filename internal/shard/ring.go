// Package shard splits units among controller replicas.
//
// There is a fixed number of shards, and a unit belongs to the shard its
// key hashes to. Each shard is a coordination.k8s.io Lease that one
// replica holds at a time. The Leases are the only coordination: every
// acquisition and renewal is a compare-and-swap on the Lease's
// resourceVersion, decided by the API server, as in client-go's leader
// election. A Lease that is not renewed within its duration is free, and
// each replica judges that by its own clock from when it saw the Lease
// change, never from the time written in it, so clock skew between
// replicas does not matter.
//
// Each replica also renews a member Lease of its own, so that the others
// know how many replicas share the shards and each holds about its part.
package shard

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sort"
	"strconv"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coordinationclient "k8s.io/client-go/kubernetes/typed/coordination/v1"
)

// Options configure a Ring.
type Options struct {
	// Namespace holds the Leases. Required.
	Namespace string
	// Name prefixes the Leases: NAME-shard-I for shard I and NAME-member-H
	// for each replica. If empty, "converge-controller".
	Name string
	// Identity names this replica, e.g. its Pod's name. Every replica
	// needs its own. Required.
	Identity string
	// Shards is the number of shards, the same on every replica. Required,
	// at least 1. More shards than replicas spread the units of a replica
	// that dies over all the others.
	Shards int
	// LeaseDuration is how long a Lease holds without renewal: a replica
	// that dies has its shards taken over after it. If zero, 15 s.
	LeaseDuration time.Duration
	// RenewDeadline is how long a replica keeps working on a shard whose
	// Lease it cannot renew. It must be shorter than LeaseDuration minus
	// RetryPeriod, so that a cut-off replica stops before another may
	// start. If zero, 10 s.
	RenewDeadline time.Duration
	// RetryPeriod is the pace of renewals and of the look at the other
	// replicas. If zero, 2 s.
	RetryPeriod time.Duration
	// Acquired, if set, is called in its own goroutine with each shard
	// this replica gains, so that the units it now owns are looked at: the
	// events about them went to another replica. Its context ends when
	// the shard is lost or given up.
	Acquired func(ctx context.Context, shard int)
	// Observe, if set, is called when work on a key begins, and the func
	// it returns when that work ends. Tests use it to check that no key is
	// worked on by two replicas at once.
	Observe func(key string) (end func())
}

// Ring is one replica's part of the shards.
type Ring struct {
	o      Options
	leases coordinationclient.LeaseInterface

	mu   sync.Mutex
	ctx  context.Context // Run's: shards' work ends with it
	held map[int]*holding
	seen map[string]sighting
}

// holding is a shard this replica holds.
type holding struct {
	ctx    context.Context
	cancel context.CancelFunc
	// busy counts work in progress; leaving refuses new work, and the
	// Lease is given up when busy reaches zero.
	busy    int
	leaving bool
	// lease is the Lease as this replica last wrote it.
	lease *coordinationv1.Lease
	// deadline drops the shard when no renewal succeeded for
	// RenewDeadline.
	deadline *time.Timer
}

// sighting is when this replica last saw a Lease change.
type sighting struct {
	version string
	at      time.Time
}

// ringLabel marks a ring's Leases, so one LIST reads them all.
const ringLabel = "converge.dev/shard-ring"

// New returns a ring; Run makes it take part.
func New(leases coordinationclient.LeasesGetter, o Options) (*Ring, error) {
	if o.Namespace == "" || o.Identity == "" {
		return nil, errors.New("shard ring: namespace and identity are required")
	}
	if o.Shards < 1 {
		return nil, fmt.Errorf("shard ring: %d shards: want at least 1", o.Shards)
	}
	if o.Name == "" {
		o.Name = "converge-controller"
	}
	if o.LeaseDuration == 0 {
		o.LeaseDuration = 15 * time.Second
	}
	if o.RenewDeadline == 0 {
		o.RenewDeadline = 10 * time.Second
	}
	if o.RetryPeriod == 0 {
		o.RetryPeriod = 2 * time.Second
	}
	if o.RenewDeadline+o.RetryPeriod >= o.LeaseDuration {
		return nil, fmt.Errorf("shard ring: renew deadline %s plus retry period %s must be shorter than the lease duration %s",
			o.RenewDeadline, o.RetryPeriod, o.LeaseDuration)
	}
	return &Ring{o: o, leases: leases.Leases(o.Namespace), held: map[int]*holding{}, seen: map[string]sighting{}}, nil
}

// Of is the shard of a key: the same on every replica.
func (r *Ring) Of(key string) int {
	h := fnv.New32a()
	h.Write([]byte(key))
	return int(h.Sum32() % uint32(r.o.Shards))
}

// Enter starts work on key if this replica holds its shard. The context
// it returns ends when the shard is lost or given up; end must be called
// when the work is done. If ok is false, another replica does the work.
func (r *Ring) Enter(ctx context.Context, key string) (_ context.Context, end func(), ok bool) {
	s := r.Of(key)
	r.mu.Lock()
	h := r.held[s]
	if h == nil || h.leaving {
		r.mu.Unlock()
		return nil, nil, false
	}
	h.busy++
	r.mu.Unlock()
	c, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(h.ctx, cancel)
	var observed func()
	if r.o.Observe != nil {
		observed = r.o.Observe(key)
	}
	return c, func() {
		if observed != nil {
			observed()
		}
		stop()
		cancel()
		r.mu.Lock()
		h.busy--
		r.mu.Unlock()
	}, true
}

// Held lists the shards this replica holds, in order.
func (r *Ring) Held() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []int
	for s, h := range r.held {
		if !h.leaving {
			out = append(out, s)
		}
	}
	sort.Ints(out)
	return out
}

// Run takes part in the ring until ctx is done, then gives up its shards
// and its membership, so that the others take over at once rather than
// after a lease duration.
func (r *Ring) Run(ctx context.Context) error {
	r.mu.Lock()
	r.ctx = ctx
	r.mu.Unlock()
	t := time.NewTicker(r.o.RetryPeriod)
	defer t.Stop()
	for {
		r.tick(ctx)
		select {
		case <-ctx.Done():
			r.leave()
			return nil
		case <-t.C:
		}
	}
}

func (r *Ring) shardName(s int) string { return r.o.Name + "-shard-" + strconv.Itoa(s) }

func (r *Ring) memberName() string {
	h := fnv.New32a()
	h.Write([]byte(r.o.Identity))
	return fmt.Sprintf("%s-member-%08x", r.o.Name, h.Sum32())
}

// tick reads the ring's Leases once, renews what this replica holds, and
// takes or gives up shards toward its part.
func (r *Ring) tick(ctx context.Context) {
	lctx, cancel := context.WithTimeout(ctx, r.o.RetryPeriod)
	list, err := r.leases.List(lctx, metav1.ListOptions{LabelSelector: ringLabel + "=" + r.o.Name})
	cancel()
	if err != nil {
		// Nothing is known this round; a shard that cannot be renewed
		// is dropped by its deadline.
		return
	}
	now := time.Now()
	leases := map[string]*coordinationv1.Lease{}
	for i := range list.Items {
		l := &list.Items[i]
		leases[l.Name] = l
		if s, ok := r.seen[l.Name]; !ok || s.version != l.ResourceVersion {
			r.seen[l.Name] = sighting{version: l.ResourceVersion, at: now}
		}
	}
	r.heartbeat(ctx, leases[r.memberName()])

	// Who is alive, and how many shards each holds.
	count := map[string]int{r.o.Identity: 0}
	for i := range list.Items {
		l := &list.Items[i]
		if l.Labels[roleLabel] == "member" && r.live(l, now) {
			count[holder(l)] += 0
		}
	}
	free := []int{}
	for s := 0; s < r.o.Shards; s++ {
		l := leases[r.shardName(s)]
		switch {
		case r.holds(s):
		case l == nil || holder(l) == "" || holder(l) == r.o.Identity || !r.live(l, now):
			free = append(free, s)
		default:
			if _, alive := count[holder(l)]; alive {
				count[holder(l)]++
			}
		}
	}

	r.renew(ctx, leases)
	mine := len(r.Held())
	count[r.o.Identity] = mine
	// Each replica's part is lo or hi shards. While another replica has
	// fewer than lo, none takes more than lo, and the one with the most
	// gives one up: the free shard then goes to the starved one rather
	// than back to where it came from.
	lo, hi := r.o.Shards/len(count), (r.o.Shards+len(count)-1)/len(count)
	others := starved(count, lo, r.o.Identity)
	limit := hi
	if others {
		limit = lo
	}
	switch {
	case mine > hi:
		r.giveUp(mine - hi)
	case mine > lo && others && richest(count) == r.o.Identity:
		r.giveUp(1)
	case mine < limit:
		r.take(ctx, leases, free, limit-mine)
	}
}

// roleLabel tells member Leases from shard Leases.
const roleLabel = "converge.dev/shard-role"

func holder(l *coordinationv1.Lease) string {
	if l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// live reports whether a Lease changed within its duration, by this
// replica's clock.
func (r *Ring) live(l *coordinationv1.Lease, now time.Time) bool {
	d := r.o.LeaseDuration
	if l.Spec.LeaseDurationSeconds != nil {
		d = time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second
	}
	return now.Sub(r.seen[l.Name].at) < d
}

func (r *Ring) holds(s int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.held[s] != nil
}

// starved reports whether an alive replica other than self holds fewer
// than lo shards.
func starved(count map[string]int, lo int, self string) bool {
	for id, n := range count {
		if id != self && n < lo {
			return true
		}
	}
	return false
}

// richest is the replica that gives a shard to a starved one: the one
// with the most, the least identity among equals, so that every replica
// picks the same one from the same view.
func richest(count map[string]int) string {
	best, most := "", -1
	for id, n := range count {
		if n > most || (n == most && id < best) {
			best, most = id, n
		}
	}
	return best
}

// preference orders shards for this replica, the same way on every
// tick (rendezvous hashing), so that replicas starting together reach
// for different shards.
func (r *Ring) preference(s int) uint64 {
	h := fnv.New64a()
	h.Write([]byte(r.o.Identity + "/" + strconv.Itoa(s)))
	return h.Sum64()
}
