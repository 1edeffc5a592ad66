package controller

import (
	"context"
	"fmt"
	"hash/fnv"
	"os"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"converge.dev/converge/internal/shard"
)

// gate decides which units and sources this replica reconciles: those
// that the watch label selector lets through (Flux's
// --watch-label-selector, with which its sharding.fluxcd.io/key
// convention runs one controller per shard), and, with a shard ring,
// those whose shard this replica holds. Every replica still caches every
// object: a unit reads its source, its dependencies and its AppProject
// whichever replica reconciles them.
type gate struct {
	cache    cache.Cache
	selector labels.Selector // nil: every object
	ring     *shard.Ring     // nil: every object
	// refills enqueue, for each gated kind, the objects of a shard this
	// replica has just taken: their events went to another replica.
	refills []func(ctx context.Context, shard int)
}

// newGate parses the selector ("" lets everything through).
func newGate(c cache.Cache, selector string) (*gate, error) {
	g := &gate{cache: c}
	if selector != "" {
		s, err := labels.Parse(selector)
		if err != nil {
			return nil, fmt.Errorf("watch label selector %q: %w", selector, err)
		}
		g.selector = s
	}
	return g, nil
}

func (g *gate) active() bool { return g != nil && (g.selector != nil || g.ring != nil) }

// build builds b's controller with r behind the gate. obj and list are
// the kind b is For.
func (g *gate) build(b *builder.Builder, obj client.Object, list client.ObjectList, r reconcile.Reconciler) (controller.Controller, error) {
	if !g.active() {
		return b.Build(r)
	}
	if g.ring != nil {
		ch := make(chan event.GenericEvent)
		b = b.WatchesRawSource(source.Channel(ch, &handler.EnqueueRequestForObject{}))
		g.refills = append(g.refills, func(ctx context.Context, s int) {
			l := list.DeepCopyObject().(client.ObjectList)
			if err := g.cache.List(ctx, l); err != nil {
				return
			}
			_ = meta.EachListItem(l, func(o runtime.Object) error {
				item := o.(client.Object)
				if g.ring.Of(key(item.GetNamespace(), item.GetName())) != s {
					return nil
				}
				select {
				case ch <- event.GenericEvent{Object: item}:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			})
		})
	}
	return b.Build(g.wrap(obj, r))
}

// acquired enqueues the objects of shard s once the cache has synced.
func (g *gate) acquired(ctx context.Context, s int) {
	if !g.cache.WaitForCacheSync(ctx) {
		return
	}
	for _, refill := range g.refills {
		refill(ctx, s)
	}
}

func key(namespace, name string) string { return namespace + "/" + name }

// wrap reconciles through r only what passes the gate. A unit the gate
// holds back is left alone, without a requeue: its replica has it, and
// if this replica takes its shard, acquired enqueues it again.
func (g *gate) wrap(obj client.Object, r reconcile.Reconciler) reconcile.Reconciler {
	return reconcile.Func(func(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
		if g.selector != nil {
			o := obj.DeepCopyObject().(client.Object)
			// A deleted object is passed on: the reconciler sees it gone.
			if err := g.cache.Get(ctx, req.NamespacedName, o); err == nil && !g.selector.Matches(labels.Set(o.GetLabels())) {
				return reconcile.Result{}, nil
			}
		}
		if g.ring == nil {
			return r.Reconcile(ctx, req)
		}
		sctx, end, ok := g.ring.Enter(ctx, key(req.Namespace, req.Name))
		if !ok {
			return reconcile.Result{}, nil
		}
		defer end()
		return r.Reconcile(sctx, req)
	})
}

// electionID is the leader Lease's name. Replicas with different watch
// label selectors reconcile different objects, so each selector elects
// its own leader, as Flux's controllers do.
func electionID(selector string) string {
	if selector == "" {
		return "converge-controller"
	}
	h := fnv.New32a()
	h.Write([]byte(selector))
	return fmt.Sprintf("converge-controller-%08x", h.Sum32())
}

// newRing builds this replica's part of the shards from o.Sharding; the
// gate enqueues a shard's objects when the replica takes it.
func newRing(cfg *rest.Config, o Options, g *gate) (*shard.Ring, error) {
	so := o.Sharding
	if so.Namespace == "" {
		so.Namespace = orDefault(o.LeaderElectionNamespace, "default")
	}
	if so.Identity == "" {
		host, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("shard identity: %w", err)
		}
		so.Identity = host
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	so.Acquired = g.acquired
	return shard.New(cs.CoordinationV1(), so)
}

// ringRunnable runs the ring beside the controllers, on every replica.
type ringRunnable struct{ ring *shard.Ring }

func (r ringRunnable) Start(ctx context.Context) error { return r.ring.Run(ctx) }

// NeedLeaderElection is false: the ring is how replicas share the work.
func (ringRunnable) NeedLeaderElection() bool { return false }
