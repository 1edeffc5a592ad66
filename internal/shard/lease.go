package shard

import (
	"context"
	"sort"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The Lease writes. Every one is a compare-and-swap: an Update carries
// the resourceVersion this replica read, and the API server refuses it if
// anyone wrote the Lease since.

// claimed is l (or a new Lease) held by this replica from now.
func (r *Ring) claimed(l *coordinationv1.Lease, name, role string) *coordinationv1.Lease {
	now := metav1.NowMicro()
	if l == nil {
		l = &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: r.o.Namespace,
			Labels: map[string]string{ringLabel: r.o.Name, roleLabel: role}}}
	} else {
		l = l.DeepCopy()
	}
	if holder(l) != r.o.Identity {
		id := r.o.Identity
		l.Spec.HolderIdentity = &id
		l.Spec.AcquireTime = &now
		if l.ResourceVersion != "" {
			n := int32(1)
			if l.Spec.LeaseTransitions != nil {
				n += *l.Spec.LeaseTransitions
			}
			l.Spec.LeaseTransitions = &n
		}
	}
	secs := int32((r.o.LeaseDuration + time.Second - 1) / time.Second)
	l.Spec.LeaseDurationSeconds = &secs
	l.Spec.RenewTime = &now
	return l
}

// write creates or updates l, within one retry period.
func (r *Ring) write(ctx context.Context, l *coordinationv1.Lease) (*coordinationv1.Lease, error) {
	ctx, cancel := context.WithTimeout(ctx, r.o.RetryPeriod)
	defer cancel()
	if l.ResourceVersion == "" {
		return r.leases.Create(ctx, l, metav1.CreateOptions{})
	}
	return r.leases.Update(ctx, l, metav1.UpdateOptions{})
}

// heartbeat renews this replica's member Lease. A failure is left to the
// next tick: the others only count this replica out after a lease
// duration without one.
func (r *Ring) heartbeat(ctx context.Context, l *coordinationv1.Lease) {
	_, _ = r.write(ctx, r.claimed(l, r.memberName(), "member"))
}

// renew renews every shard Lease this replica holds, and gives up those
// it is leaving whose work has ended.
func (r *Ring) renew(ctx context.Context, leases map[string]*coordinationv1.Lease) {
	for s, h := range r.holdings() {
		l := leases[r.shardName(s)]
		if l == nil || holder(l) != r.o.Identity {
			// Deleted, or taken: another replica judged it expired, so this
			// one must already have stopped; make sure it has.
			r.lose(s, h)
			continue
		}
		r.mu.Lock()
		idle := h.leaving && h.busy == 0
		r.mu.Unlock()
		if idle {
			r.release(ctx, s, h, l)
			continue
		}
		sent := time.Now()
		out, err := r.write(ctx, r.claimed(l, "", ""))
		switch {
		case err == nil:
			r.mu.Lock()
			h.lease = out
			h.deadline.Reset(r.o.RenewDeadline - time.Since(sent))
			r.mu.Unlock()
		case apierrors.IsConflict(err):
			r.lose(s, h)
		}
	}
}

// take acquires up to n of the free shards, in this replica's order of
// preference.
func (r *Ring) take(ctx context.Context, leases map[string]*coordinationv1.Lease, free []int, n int) {
	sort.Slice(free, func(i, j int) bool { return r.preference(free[i]) > r.preference(free[j]) })
	for _, s := range free {
		if n == 0 {
			return
		}
		name := r.shardName(s)
		sent := time.Now()
		out, err := r.write(ctx, r.claimed(leases[name], name, "shard"))
		if err != nil {
			// Another replica was first, or the API server is away.
			continue
		}
		n--
		r.mu.Lock()
		hctx, cancel := context.WithCancel(r.ctx)
		h := &holding{ctx: hctx, cancel: cancel, lease: out}
		h.deadline = time.AfterFunc(r.o.RenewDeadline-time.Since(sent), func() { r.lose(s, h) })
		r.held[s] = h
		r.mu.Unlock()
		if r.o.Acquired != nil {
			go r.o.Acquired(hctx, s)
		}
	}
}

// giveUp starts leaving n shards, those this replica prefers least: no
// new work starts on them, the work in progress is cancelled, and their
// Leases are released once it has ended.
func (r *Ring) giveUp(n int) {
	held := r.Held()
	sort.Slice(held, func(i, j int) bool { return r.preference(held[i]) < r.preference(held[j]) })
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range held[:min(n, len(held))] {
		h := r.held[s]
		h.leaving = true
		h.cancel()
	}
}

// release writes l as held by no one, so another replica takes it at its
// next tick instead of after a lease duration.
func (r *Ring) release(ctx context.Context, s int, h *holding, l *coordinationv1.Lease) {
	l = l.DeepCopy()
	l.Spec.HolderIdentity = nil
	_, _ = r.write(ctx, l)
	// Whether or not that worked, the work has ended: if the write
	// failed, the Lease simply expires.
	r.lose(s, h)
}

// lose drops a shard: its work is cancelled, and no new work starts.
func (r *Ring) lose(s int, h *holding) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.held[s] != h {
		return
	}
	delete(r.held, s)
	h.cancel()
	h.deadline.Stop()
}

// leave gives up every shard and the membership when Run ends. The work
// in progress is cancelled with Run's context; it is waited for (up to
// the renew deadline) before the Leases are released.
func (r *Ring) leave() {
	r.giveUp(r.o.Shards)
	stop := time.Now().Add(r.o.RenewDeadline)
	for time.Now().Before(stop) {
		r.mu.Lock()
		busy := 0
		for _, h := range r.held {
			busy += h.busy
		}
		r.mu.Unlock()
		if busy == 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	ctx := context.Background()
	for s, h := range r.holdings() {
		r.mu.Lock()
		busy := h.busy
		r.mu.Unlock()
		if busy > 0 {
			// Still working after the deadline: let the Lease expire
			// rather than let another replica start beside it.
			r.lose(s, h)
			continue
		}
		r.release(ctx, s, h, h.lease)
	}
	dctx, cancel := context.WithTimeout(ctx, r.o.RetryPeriod)
	defer cancel()
	_ = r.leases.Delete(dctx, r.memberName(), metav1.DeleteOptions{})
}

// holdings is a copy of the shards held, to write their Leases without
// holding the lock.
func (r *Ring) holdings() map[int]*holding {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[int]*holding, len(r.held))
	for s, h := range r.held {
		out[s] = h
	}
	return out
}
