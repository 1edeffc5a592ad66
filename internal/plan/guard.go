package plan

import (
	"fmt"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"converge.dev/converge/internal/object"
)

// AllowPruneAnnotation, set to "true" on a live object of a protected
// kind, lets a sync prune it.
const AllowPruneAnnotation = "converge.dev/allow-prune"

// AdoptAnnotation, set to "true" on an object in Git or on the live
// object, lets a unit take over a live object that no unit created.
const AdoptAnnotation = "converge.dev/adopt"

// AdoptedAnnotation marks an object a unit took over rather than
// created; its value is the unit. Prune leaves such an object in place
// unless the unit allows it (Input.PruneAdopted).
const AdoptedAnnotation = "converge.dev/adopted"

// protected reports whether ref is of a kind whose deletion takes more
// with it than the object: a Namespace deletes everything inside, a CRD
// every custom resource of its kind, a PersistentVolumeClaim (usually)
// its volume's data.
func protected(ref object.Ref) bool {
	switch {
	case ref.Group == "" && (ref.Kind == "Namespace" || ref.Kind == "PersistentVolumeClaim"):
		return true
	case ref.Group == "apiextensions.k8s.io" && ref.Kind == "CustomResourceDefinition":
		return true
	}
	return false
}

// Budget bounds how much one sync may prune. A prune over the budget is
// held: nothing is deleted, everything else is applied, and the plan
// says what would have gone (Plan.Held). The zero Budget holds a prune
// of more than 25% or more than 50 of the unit's objects.
type Budget struct {
	// Off turns the budget off.
	Off bool
	// MaxPercent is the largest share of the unit's objects (its
	// inventory) one sync may prune. Zero means 25.
	MaxPercent int
	// MaxObjects is the most objects one sync may prune. Zero means 50.
	MaxObjects int
	// HeldSince is when the unit's prune was first held, zero if it was
	// not held before this plan.
	HeldSince time.Time
	// Approved is when a person approved the held prune. It lets the
	// prune go ahead only if later than HeldSince: an approval given
	// before the hold cannot approve what nobody has seen yet.
	Approved time.Time
}

// minHeldShare is the smallest prune the share limit holds: removing a
// Deployment and its Service from a four-object unit is routine, and a
// shrink that small is seen in the diff.
const minHeldShare = 3

// Held is a prune over the budget, held back.
type Held struct {
	// Refs are the objects the prune would delete.
	Refs []object.Ref
	// Owned is how many objects the unit owned before this sync.
	Owned int
	// Desired is how many objects the render has now.
	Desired int
	// Limit says which limit the prune is over.
	Limit string
}

// Message says what is held and how to let it go, naming at most ten
// objects.
func (h *Held) Message(path string) string {
	var names []string
	for i, r := range h.Refs {
		if i == 10 {
			names = append(names, fmt.Sprintf("and %d more", len(h.Refs)-10))
			break
		}
		names = append(names, r.String())
	}
	where := "the source"
	if path != "" {
		where = fmt.Sprintf("path %q", path)
	}
	return fmt.Sprintf("prune held: %s now renders %d objects where the unit owns %d; deleting %d is over the prune budget (%s): %s. "+
		"Approve with `converge approve-prune`, or the annotation %s set to the current time, or fix the source",
		where, h.Desired, h.Owned, len(h.Refs), h.Limit, strings.Join(names, ", "), PruneApprovedAnnotation)
}

// PruneApprovedAnnotation, on the object that defines a unit (an
// Application, a Kustomization), holds the RFC 3339 time a person
// approved a held prune.
const PruneApprovedAnnotation = "converge.dev/prune-approved"

// hold turns the plan's prune steps into orphans when they are over the
// budget, and says so.
func (b Budget) hold(steps []Step, owned, desired int) *Held {
	if b.Off || owned == 0 {
		return nil
	}
	var refs []object.Ref
	for _, s := range steps {
		if s.Action == Prune {
			refs = append(refs, s.Ref)
		}
	}
	pct, max := b.MaxPercent, b.MaxObjects
	if pct == 0 {
		pct = 25
	}
	if max == 0 {
		max = 50
	}
	n := len(refs)
	limit := ""
	switch {
	case n > max:
		limit = fmt.Sprintf("more than %d objects", max)
	case n >= minHeldShare && n*100 > pct*owned:
		limit = fmt.Sprintf("more than %d%% of %d", pct, owned)
	default:
		return nil
	}
	if !b.HeldSince.IsZero() && b.Approved.After(b.HeldSince) {
		return nil
	}
	for i := range steps {
		if steps[i].Action == Prune {
			steps[i].Action, steps[i].Reason = Orphan, "no longer in Git; prune held by the prune budget ("+limit+")"
			steps[i].Diff = ""
		}
	}
	return &Held{Refs: refs, Owned: owned, Desired: desired, Limit: limit}
}

// adoptable says whether a unit may take over a live object that carries
// no owner: the object in Git or the live object opts in, the unit does,
// or converge applied it before (its field manager owns fields of it, as
// after an older version or a lost annotation).
func adoptable(desired, live *unstructured.Unstructured, unitAdopts bool, fieldManager string) bool {
	if unitAdopts || strings.EqualFold(desired.GetAnnotations()[AdoptAnnotation], "true") ||
		strings.EqualFold(live.GetAnnotations()[AdoptAnnotation], "true") {
		return true
	}
	if live.GetAnnotations()[AdoptedAnnotation] != "" {
		return true
	}
	for _, mf := range live.GetManagedFields() {
		if mf.Manager == fieldManager && fieldManager != "" {
			return true
		}
	}
	return false
}

// creator names who made a live object, for a conflict message: the
// earliest field manager of the object itself (a controller writing its
// status is not who made it).
func creator(live *unstructured.Unstructured) string {
	var first *metav1.ManagedFieldsEntry
	mfs := live.GetManagedFields()
	for i, mf := range mfs {
		if mf.Subresource != "" {
			continue
		}
		if first == nil || (mf.Time != nil && first.Time != nil && mf.Time.Before(first.Time)) {
			first = &mfs[i]
		}
	}
	if first == nil {
		return "an unknown client"
	}
	return fmt.Sprintf("%q", first.Manager)
}

// AdoptOptions say which unowned live objects a unit may take over.
type AdoptOptions struct {
	// All adopts every unowned live object the unit renders (the unit's
	// own opt-in). If false, only objects that opt in are adopted.
	All bool
	// FieldManager is converge's server-side apply field manager: a live
	// object it manages fields of was applied by converge (an older
	// version, or its owner annotation was lost), and is not taken for a
	// hand-made one. Empty: no such object is adopted on that ground.
	FieldManager string
}

// Adopt marks, on the desired objects, the live objects the unit takes
// over: unowned ones it may adopt, and ones it adopted before (so the
// mark stays). Call it before the desired objects are dry-run, so the
// server's prediction carries the mark. Desired objects are changed in
// place: they must be the unit's own copies.
func Adopt(unit string, desired []object.Decoded, live map[object.Key]*unstructured.Unstructured, o AdoptOptions) {
	for _, d := range desired {
		l := live[object.RefOf(d.Object).Key()]
		if l == nil || IsHook(d.Object) {
			continue
		}
		owner := ownerOf(l)
		switch {
		case owner == unit && l.GetAnnotations()[AdoptedAnnotation] == unit:
		case owner == "" && adoptable(d.Object, l, o.All, o.FieldManager):
		default:
			continue
		}
		ann := d.Object.GetAnnotations()
		ann[AdoptedAnnotation] = unit
		d.Object.SetAnnotations(ann)
	}
}
