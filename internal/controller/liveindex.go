package controller

import (
	"context"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"converge.dev/converge/internal/object"
	"converge.dev/converge/internal/plan"
)

// liveIndex is the engine's view of the cluster from the manager's
// metadata-only informers (engine.LiveIndex): one per kind the units
// apply, started on first use, shared with the Applications' drift
// watches. It lets a resync read nothing from the API server when
// nothing changed, and find a unit's objects without LISTing namespaces
// that many units share.
type liveIndex struct {
	cache cache.Cache

	mu      sync.Mutex
	indexed map[schema.GroupVersionKind]bool
}

// ownerField indexes live objects by their owner annotation.
const ownerField = "converge.dev/owner"

func newLiveIndex(c cache.Cache) *liveIndex {
	return &liveIndex{cache: c, indexed: map[schema.GroupVersionKind]bool{}}
}

// synced starts gvk's informer if needed, without waiting for it, and
// reports whether it has synced: until then the engine reads.
func (x *liveIndex) synced(ctx context.Context, gvk schema.GroupVersionKind) bool {
	obj := &metav1.PartialObjectMetadata{}
	obj.SetGroupVersionKind(gvk)
	x.mu.Lock()
	if !x.indexed[gvk] {
		err := x.cache.IndexField(ctx, obj, ownerField, func(o client.Object) []string {
			if owner := o.GetAnnotations()[plan.OwnerAnnotation]; owner != "" {
				return []string{owner}
			}
			return nil
		})
		if err != nil {
			x.mu.Unlock()
			return false // not a kind the cache can watch: the engine reads
		}
		x.indexed[gvk] = true
	}
	x.mu.Unlock()
	inf, err := x.cache.GetInformer(ctx, obj, cache.BlockUntilSynced(false))
	return err == nil && inf.HasSynced()
}

func (x *liveIndex) Version(ctx context.Context, ref object.Ref) (types.UID, string, bool) {
	if !x.synced(ctx, ref.GVK()) {
		return "", "", false
	}
	obj := &metav1.PartialObjectMetadata{}
	obj.SetGroupVersionKind(ref.GVK())
	if err := x.cache.Get(ctx, client.ObjectKey{Namespace: ref.Namespace, Name: ref.Name}, obj); err != nil {
		return "", "", apierrors.IsNotFound(err)
	}
	return obj.UID, obj.ResourceVersion, true
}

func (x *liveIndex) Owned(ctx context.Context, gvk schema.GroupVersionKind, ns, unit string) ([]object.Ref, bool) {
	if !x.synced(ctx, gvk) {
		return nil, false
	}
	list := &metav1.PartialObjectMetadataList{}
	list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
	opts := []client.ListOption{client.MatchingFields{ownerField: unit}}
	if ns != "" {
		opts = append(opts, client.InNamespace(ns))
	}
	if err := x.cache.List(ctx, list, opts...); err != nil {
		return nil, false
	}
	out := make([]object.Ref, 0, len(list.Items))
	for _, o := range list.Items {
		out = append(out, object.Ref{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind, Namespace: o.Namespace, Name: o.Name})
	}
	return out, true
}
