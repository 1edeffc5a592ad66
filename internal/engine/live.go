package engine

import (
	"context"
	"sync"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"converge.dev/converge/internal/object"
)

// LiveIndex answers from a watch that the caller keeps (the controller's
// informers), so that a comparison reads from the API server only what
// changed since this engine last saw it. Every answer may lag the API
// server by the watch's delay; the engine uses it only where a late
// answer costs a later reconcile, never safety.
type LiveIndex interface {
	// Version returns an object's UID and resourceVersion; an empty
	// resourceVersion says the index holds no such object. ok is false
	// when the index cannot say: the kind is not watched yet, or its
	// watch has not synced. The engine does not trust a missing object
	// blindly: another client may have just created it, and taking it
	// over unseen would be a silent adoption. The dry run that follows
	// tells (only an object that exists has a resourceVersion there),
	// and the comparison is made again with a read of it.
	Version(ctx context.Context, ref object.Ref) (uid types.UID, resourceVersion string, ok bool)
	// Owned returns the objects of gvk in namespace ns ("" for all, or
	// for a cluster-scoped kind) whose owner annotation names unit; ok is
	// false when the index cannot say.
	Owned(ctx context.Context, gvk schema.GroupVersionKind, ns, unit string) (refs []object.Ref, ok bool)
}

// Wrote reports whether this engine's own apply left the object at ref
// at this version: a watch event for it is the echo of that write, not
// drift, and needs no comparison. An event that arrives before the
// apply's response was kept is not recognised, and costs a comparison.
func (e *Engine) Wrote(ref object.Ref, uid types.UID, resourceVersion string) bool {
	return e.seen.applied(ref.Key(), uid, resourceVersion)
}

// seenObjects keeps the last copy of each object this engine read or
// applied. Where the live index says an object is still at the version
// kept here, that copy is the live object, and it need not be read
// again: a steady-state resync then reads nothing.
type seenObjects struct {
	entries *generations[object.Key, seenCopy]
}

// seenCopy is a kept copy, and whether this engine's own apply returned
// it (rather than a read).
type seenCopy struct {
	packed
	applied bool
	// gone marks an object this engine saw live that is gone now: the
	// evidence that someone deleted it, rather than that a sync has not
	// created it yet.
	gone bool
}

// seenGeneration bounds one generation of seenObjects; past it, what
// no comparison used for a generation goes, which only costs reads.
const seenGeneration = 100000

func (s *seenObjects) get(key object.Key, uid types.UID, rv string) *unstructured.Unstructured {
	p, ok := s.entries.get(key)
	if !ok || p.gone || p.uid != uid || p.rv != rv {
		return nil
	}
	return p.unpack()
}

// appliedAny reports whether the copy kept of key is what this engine's
// own apply returned, at whatever version.
func (s *seenObjects) appliedAny(key object.Key) bool {
	p, ok := s.entries.get(key)
	return ok && p.applied
}

// applied reports whether this engine's own apply returned the object at
// exactly this version.
func (s *seenObjects) applied(key object.Key, uid types.UID, rv string) bool {
	p, ok := s.entries.get(key)
	return ok && p.applied && p.uid == uid && p.rv == rv
}

func (s *seenObjects) put(obj *unstructured.Unstructured) {
	if obj == nil || obj.GetResourceVersion() == "" {
		return
	}
	if p, ok := pack(obj); ok {
		s.entries.put(object.RefOf(obj).Key(), seenCopy{packed: p})
	}
}

// putApplied keeps what an apply returned.
func (s *seenObjects) putApplied(obj *unstructured.Unstructured, p packed) {
	if obj.GetResourceVersion() != "" {
		s.entries.put(object.RefOf(obj).Key(), seenCopy{packed: p, applied: true})
	}
}

// packed is an object kept as its JSON, with what a lookup compares
// outside it. Decoded, an object takes several times the memory of its
// JSON (a ConfigMap's nested maps, managedFields included, about five
// times), and a fleet's worth of decoded copies was most of the
// controller's heap. Each unpack is a fresh copy, so no caller changes
// what another reads.
type packed struct {
	uid  types.UID
	rv   string
	data []byte
}

func pack(obj *unstructured.Unstructured) (packed, bool) {
	data, err := obj.MarshalJSON()
	if err != nil {
		return packed{}, false
	}
	return packed{obj.GetUID(), obj.GetResourceVersion(), data}, true
}

// unpack decodes the copy; nil if it does not decode, which a caller
// takes as a miss.
func (p packed) unpack() *unstructured.Unstructured {
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(p.data); err != nil {
		return nil
	}
	return obj
}

func (s *seenObjects) forget(key object.Key) { s.entries.delete(key) }

// markGone records that an object this engine saw live is gone. One
// never seen stays unknown.
func (s *seenObjects) markGone(key object.Key) {
	if p, ok := s.entries.get(key); ok && !p.gone {
		s.entries.put(key, seenCopy{gone: true})
	}
}

// wasGone reports whether the object was seen live and then found gone
// (until it is seen or applied again).
func (s *seenObjects) wasGone(key object.Key) bool {
	p, ok := s.entries.get(key)
	return ok && p.gone
}

// listThreshold is the number of objects of one kind in one namespace
// from which a LIST is cheaper than a GET each, for an engine without a
// live index.
const listThreshold = 4

// live reads every desired and inventory object. With a live index, an
// object still at the version this engine last saw is not read at all,
// nor one the index says does not exist (unless readAbsent), and the
// rest are read one GET each, a few at a time: a LIST would read the
// whole namespace, which many units may share (N units in one namespace
// each LISTing it is N² work). Without an index (the CLI, a unit on its
// own), objects sharing a kind and namespace are LISTed.
func (e *Engine) live(ctx context.Context, desired []object.Decoded, inv []object.Ref, readAbsent bool) (map[object.Key]*unstructured.Unstructured, error) {
	type group struct {
		gvk schema.GroupVersionKind
		ns  string
	}
	groups := map[group][]object.Ref{}
	seen := map[object.Key]bool{}
	out := map[object.Key]*unstructured.Unstructured{}
	var toGet []object.Ref
	add := func(ref object.Ref) {
		key := ref.Key()
		if seen[key] {
			return
		}
		seen[key] = true
		if e.o.Live != nil {
			if uid, rv, ok := e.o.Live.Version(ctx, ref); ok {
				// An object this engine applied and the index has not seen
				// yet is read: the comparison right after a sync would
				// otherwise call what it just made Missing.
				if rv == "" && !readAbsent && !e.seen.appliedAny(key) {
					e.seen.markGone(key)
					return
				}
				if obj := e.seen.get(key, uid, rv); rv != "" && obj != nil {
					out[key] = obj
					return
				}
			}
			toGet = append(toGet, ref)
			return
		}
		g := group{ref.GVK(), ref.Namespace}
		groups[g] = append(groups[g], ref)
	}
	for _, d := range desired {
		add(object.RefOf(d.Object))
	}
	for _, ref := range inv {
		add(ref)
	}
	for g, refs := range groups {
		if len(refs) < listThreshold {
			toGet = append(toGet, refs...)
			continue
		}
		items, err := e.o.Cluster.List(ctx, g.gvk, g.ns)
		if err != nil {
			return nil, err
		}
		for i := range items {
			if key := object.RefOf(&items[i]).Key(); seen[key] {
				out[key] = &items[i]
				e.seen.put(&items[i])
			}
		}
	}
	objs := make([]*unstructured.Unstructured, len(toGet))
	errs := make([]error, len(toGet))
	sem := make(chan struct{}, validateConcurrency)
	var wg sync.WaitGroup
	for i, ref := range toGet {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			objs[i], errs[i] = e.o.Cluster.Get(ctx, ref)
		}()
	}
	wg.Wait()
	for i, ref := range toGet {
		if errs[i] != nil {
			return nil, errs[i]
		}
		if objs[i] != nil {
			out[ref.Key()] = objs[i]
			e.seen.put(objs[i])
		} else {
			e.seen.markGone(ref.Key()) // no copy to trust
		}
	}
	return out, nil
}

// existing reports whether a dry run found an object that live has not:
// only an object that exists has a resourceVersion in its dry run.
func existing(predicted, live map[object.Key]*unstructured.Unstructured) bool {
	for key, p := range predicted {
		if live[key] == nil && p.GetResourceVersion() != "" {
			return true
		}
	}
	return false
}

// exists reports whether an object exists, from the live index when it
// knows (no request), else by reading it.
func (e *Engine) exists(ctx context.Context, ref object.Ref) (bool, error) {
	if e.o.Live != nil {
		if _, rv, ok := e.o.Live.Version(ctx, ref); ok && rv != "" {
			return true, nil
		}
	}
	obj, err := e.o.Cluster.Get(ctx, ref)
	return obj != nil, err
}
