package controller

import (
	"context"
	"strings"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"converge.dev/converge/internal/object"
	"converge.dev/converge/internal/plan"
)

// liveWatches makes drift event-driven: for every kind an Application
// manages, it watches the live objects and wakes the Application that owns
// an object (by its owner annotation) when someone changes or deletes it.
// A selfHeal revert then follows within seconds instead of at the next
// poll.
type liveWatches struct {
	ctrl  controller.Controller
	cache cache.Cache
	// wrote, if set, tells the controller's own applies (see
	// engine.Engine.Wrote): their watch events are not drift.
	wrote func(ref object.Ref, uid types.UID, resourceVersion string) bool

	mu      sync.Mutex
	watched map[schema.GroupVersionKind]bool
}

// ensure starts watching gvk once. It returns when the informer has
// synced, so that no change made after the caller's comparison is missed.
func (w *liveWatches) ensure(ctx context.Context, gvk schema.GroupVersionKind) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.watched[gvk] {
		return nil
	}
	// Metadata is all drift detection needs (generation, resourceVersion,
	// labels, annotations), and a metadata-only informer keeps far less in
	// memory than full objects.
	obj := &metav1.PartialObjectMetadata{}
	obj.SetGroupVersionKind(gvk)
	if _, err := w.cache.GetInformer(ctx, obj); err != nil {
		return err
	}
	src := source.Kind(w.cache, client.Object(obj), handler.EnqueueRequestsFromMapFunc(ownerApplication), liveChange{gvk: gvk, wrote: w.wrote})
	if err := w.ctrl.Watch(src); err != nil {
		return err
	}
	w.watched[gvk] = true
	return nil
}

// ownerApplication maps a managed object to its Application, from the
// owner annotation "argocd.<namespace>.<name>". A namespace is a DNS
// label and has no dot; a name may have several ("example.guestbook",
// as app-of-apps charts name their children), so everything after the
// namespace is the name.
func ownerApplication(_ context.Context, obj client.Object) []reconcile.Request {
	owner := obj.GetAnnotations()[plan.OwnerAnnotation]
	parts := strings.SplitN(owner, ".", 3)
	if len(parts) != 3 || parts[0] != "argocd" || parts[1] == "" || parts[2] == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: parts[1], Name: parts[2]}}}
}

// liveChange lets through what can be drift: a spec change (generation),
// a change to an object without generation (ConfigMaps, Secrets...),
// label and annotation changes, and deletions; status churn is dropped,
// and so is the echo of the controller's own apply. Without that, a
// commit to a thousand Applications queued a thousand comparisons after
// it, for nothing, and a live edit made then waited behind them (44 s).
type liveChange struct {
	predicate.Funcs
	gvk   schema.GroupVersionKind
	wrote func(ref object.Ref, uid types.UID, resourceVersion string) bool
}

func (liveChange) Create(event.CreateEvent) bool   { return false }
func (liveChange) Delete(event.DeleteEvent) bool   { return true }
func (liveChange) Generic(event.GenericEvent) bool { return false }

func (l liveChange) Update(e event.UpdateEvent) bool {
	o, n := e.ObjectOld, e.ObjectNew
	if l.wrote != nil && l.wrote(object.Ref{Group: l.gvk.Group, Version: l.gvk.Version, Kind: l.gvk.Kind,
		Namespace: n.GetNamespace(), Name: n.GetName()}, n.GetUID(), n.GetResourceVersion()) {
		return false
	}
	switch {
	case o.GetGeneration() != n.GetGeneration():
		return true
	case n.GetGeneration() == 0 && o.GetResourceVersion() != n.GetResourceVersion():
		return true
	}
	return !mapsEqual(o.GetLabels(), n.GetLabels()) || !mapsEqual(o.GetAnnotations(), n.GetAnnotations())
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if bv, ok := b[k]; !ok || bv != v {
			return false
		}
	}
	return true
}

// annotationsChanged lets an Application's annotation change through,
// except the removal of the refresh annotation: that is the controller
// itself, done with the refresh it was asked for, and reconciling again
// for it doubled the work of every refresh (a webhook push, `argocd app
// get --refresh`).
type annotationsChanged struct {
	predicate.Funcs
}

func (annotationsChanged) Update(e event.UpdateEvent) bool {
	o, n := e.ObjectOld.GetAnnotations(), e.ObjectNew.GetAnnotations()
	if _, had := o[RefreshAnnotation]; had {
		if _, has := n[RefreshAnnotation]; !has {
			rest := make(map[string]string, len(o))
			for k, v := range o {
				if k != RefreshAnnotation {
					rest[k] = v
				}
			}
			o = rest
		}
	}
	return !mapsEqual(o, n)
}
