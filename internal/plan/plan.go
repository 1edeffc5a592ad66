// Package plan decides what a sync will do, without doing it: from the
// desired objects, what the API server predicts they would become, the
// live objects and the unit's inventory, it returns ordered steps, each
// with an action and a diff. It is pure, so diff and `sync --dry-run`
// share it with sync, and "why this order?" has one answer.
package plan

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"converge.dev/converge/internal/diff"
	"converge.dev/converge/internal/object"
)

// OwnerAnnotation names the unit that applied an object. Pruning only
// ever considers objects that carry it with the unit's own id.
const OwnerAnnotation = "converge.dev/owner"

// SyncOptionsAnnotation carries Argo CD's per-object sync options.
const SyncOptionsAnnotation = "argocd.argoproj.io/sync-options"

// WaveAnnotation is Argo CD's sync wave, honoured as-is.
const WaveAnnotation = "argocd.argoproj.io/sync-wave"

// Action is what a step does.
type Action string

// The actions.
const (
	Create    Action = "create"
	Update    Action = "update"
	Unchanged Action = "unchanged"
	Prune     Action = "prune"
	// Conflict: the live object belongs to another unit; it is left alone.
	Conflict Action = "conflict"
	// Orphan: the unit owns it but no longer desires it, and pruning is
	// off or not allowed for it; it is reported, not deleted.
	Orphan Action = "orphan"
	// Hook: the object is a hook, run in its phase; it is not compared,
	// not recorded in the inventory and never pruned.
	Hook Action = "hook"
	// Untouched: a per-object annotation says the sync must leave the
	// object as it is (Flux's reconcile: disabled, ssa: IfNotPresent or
	// Ignore).
	Untouched Action = "untouched"
)

// Flux's per-object annotations, honoured for every unit: they are
// explicit opt-outs written by the object's author or operator.
const (
	FluxReconcileAnnotation = "kustomize.toolkit.fluxcd.io/reconcile"
	FluxSSAAnnotation       = "kustomize.toolkit.fluxcd.io/ssa"
	FluxPruneAnnotation     = "kustomize.toolkit.fluxcd.io/prune"
)

// skipReason says why an object is left alone, or "" if it is not.
// reconcile: disabled on the desired or the live object stops updates
// (a missing object is still created); ssa: IfNotPresent creates only;
// ssa: Ignore never touches it.
func skipReason(desired, live *unstructured.Unstructured) string {
	ann := func(o *unstructured.Unstructured, k string) string {
		if o == nil {
			return ""
		}
		return strings.ToLower(o.GetAnnotations()[k])
	}
	switch {
	case ann(desired, FluxSSAAnnotation) == "ignore":
		return "its annotation " + FluxSSAAnnotation + ": Ignore leaves it alone"
	case live == nil:
		return ""
	case ann(desired, FluxReconcileAnnotation) == "disabled" || ann(live, FluxReconcileAnnotation) == "disabled":
		return "reconciliation disabled by its annotation " + FluxReconcileAnnotation
	case ann(desired, FluxSSAAnnotation) == "ifnotpresent":
		return "exists; its annotation " + FluxSSAAnnotation + ": IfNotPresent creates only"
	}
	return ""
}

// Step is one object's part in the sync.
type Step struct {
	Ref    object.Ref
	Action Action
	Wave   int
	// Source is the file the object was rendered from (empty for prune).
	Source object.Source
	// Desired is the object to apply, with the owner annotation set.
	Desired *unstructured.Unstructured
	// Live is the object as the server holds it now, nil if absent.
	Live *unstructured.Unstructured
	// Diff is the unified diff of live against predicted.
	Diff string
	// Reason explains a Conflict or an Orphan.
	Reason string
	// Hook is the phase of a hook step, empty for every other step.
	Hook Phase
}

// Input is everything Make looks at.
type Input struct {
	// Unit is the owner id written on every applied object.
	Unit string
	// Desired are the rendered objects, owner annotation already set.
	Desired []object.Decoded
	// Predicted holds the server's dry-run result per desired object; an
	// object missing from it is compared with its desired form.
	Predicted map[object.Key]*unstructured.Unstructured
	// Live holds the live object for every desired and inventory key that
	// exists.
	Live map[object.Key]*unstructured.Unstructured
	// Inventory is what the unit applied last time.
	Inventory []object.Ref
	// Prune deletes owned objects that are no longer desired.
	Prune bool
	// Ignore lists differences that do not count (ignoreDifferences).
	Ignore []diff.Ignore
	// PruneNamespaces lets Prune delete Namespaces. If false, a Namespace
	// is never deleted by a sync: deleting one deletes everything in it,
	// including objects no unit owns.
	PruneNamespaces bool
	// Budget bounds how much this sync may prune; see Budget.
	Budget Budget
	// PruneAdopted lets Prune delete objects the unit adopted rather
	// than created. If false, they are left in place.
	PruneAdopted bool
	// PruneApproved is when a person approved pruning objects marked
	// Prune=confirm (Argo CD's deletion-approved annotation); such an
	// object is pruned only if this is later than its creation. Zero
	// means not approved.
	PruneApproved time.Time
}

// Plan is the ordered steps of one sync.
type Plan struct {
	Steps []Step
	// Held, if not nil, is a prune over the budget: its steps are
	// orphans, and nothing is deleted until it is approved.
	Held *Held
}

// Make returns the plan. PreSync hooks come first, by wave. Apply steps
// follow, ordered foundations first (Namespaces and CRDs), then by wave
// (Sync hooks inside their wave), then by kind (Helm's order), then
// namespace and name; prune steps follow in the reverse order; then
// PostSync and SyncFail hooks, each by wave.
func Make(in Input) (Plan, error) {
	var apply, prune []Step
	hooks := map[Phase][]Step{}
	desired := map[object.Key]bool{}
	for _, d := range in.Desired {
		ref := object.RefOf(d.Object)
		desired[ref.Key()] = true
		if IsHook(d.Object) {
			steps, err := hookSteps(d, in.Live[ref.Key()], in.Unit)
			if err != nil {
				return Plan{}, err
			}
			for _, s := range steps {
				if s.Hook == PreDelete || s.Hook == PostDelete {
					continue // they run when the unit is deleted
				}
				if s.Hook == Sync {
					apply = append(apply, s)
				} else {
					hooks[s.Hook] = append(hooks[s.Hook], s)
				}
			}
			continue
		}
		wave, err := waveOf(d)
		if err != nil {
			return Plan{}, err
		}
		s := Step{Ref: ref, Wave: wave, Source: d.Source, Desired: d.Object, Live: in.Live[ref.Key()]}
		switch owner := ownerOf(s.Live); {
		case s.Live == nil:
			s.Action = Create
		case owner != "" && owner != in.Unit:
			s.Action, s.Reason = Conflict, fmt.Sprintf("owned by unit %q", owner)
		case owner == "" && skipReason(d.Object, s.Live) == "" && d.Object.GetAnnotations()[AdoptedAnnotation] == "":
			// Taking over what a person or another tool made must be
			// asked for: once taken, a later prune would delete it.
			s.Action, s.Reason = Conflict, fmt.Sprintf("exists, created by %s and not by a unit; to take it over, annotate it (or the object in Git) %s: \"true\"", creator(s.Live), AdoptAnnotation)
		default:
			s.Action = Unchanged
		}
		if s.Action != Conflict {
			if why := skipReason(d.Object, s.Live); why != "" {
				s.Action, s.Reason = Untouched, why
				apply = append(apply, s)
				continue
			}
			pred := in.Predicted[ref.Key()]
			if pred == nil {
				pred = d.Object
			}
			r, err := diff.Compare(ref.String(), s.Live, pred, in.Ignore)
			if err != nil {
				return Plan{}, err
			}
			if r.Changed && s.Action == Unchanged {
				s.Action = Update
			}
			s.Diff = r.Unified
		}
		apply = append(apply, s)
	}
	for _, ref := range in.Inventory {
		if desired[ref.Key()] {
			continue
		}
		live := in.Live[ref.Key()]
		if live == nil || ownerOf(live) != in.Unit {
			continue // gone already, or no longer ours: never touched
		}
		s := Step{Ref: ref, Live: live, Action: Prune}
		switch {
		case !in.Prune:
			s.Action, s.Reason = Orphan, "no longer in Git; pruning is off"
		case ref.Group == "" && ref.Kind == "Namespace" && !in.PruneNamespaces && !allowsPrune(live):
			s.Action, s.Reason = Orphan, "no longer in Git; namespaces are not pruned (it would delete everything inside)"
		case protected(ref) && ref.Kind != "Namespace" && !allowsPrune(live):
			s.Action, s.Reason = Orphan, "no longer in Git; a "+ref.Kind+" is pruned only with its annotation "+AllowPruneAnnotation+": \"true\""
		case live.GetAnnotations()[AdoptedAnnotation] != "" && !in.PruneAdopted:
			s.Action, s.Reason = Orphan, "no longer in Git; adopted, not created by this unit, so it is left in place"
		case strings.EqualFold(live.GetAnnotations()[FluxPruneAnnotation], "disabled"):
			s.Action, s.Reason = Orphan, "no longer in Git; kept by its annotation "+FluxPruneAnnotation+": disabled"
		case strings.EqualFold(live.GetAnnotations()[FluxReconcileAnnotation], "disabled"):
			s.Action, s.Reason = Orphan, "no longer in Git; reconciliation disabled by its annotation "+FluxReconcileAnnotation
		case hasSyncOption(live, "Prune=false"):
			s.Action, s.Reason = Orphan, "no longer in Git; kept by its sync option Prune=false"
		case hasSyncOption(live, "Prune=confirm") && !in.PruneApproved.After(live.GetCreationTimestamp().Time):
			s.Action, s.Reason = Orphan, "no longer in Git; its sync option Prune=confirm asks a person to delete it"
		}
		if s.Action == Prune {
			r, _ := diff.Compare(ref.String(), live, nil, nil)
			s.Diff = r.Unified
		}
		prune = append(prune, s)
	}
	held := in.Budget.hold(prune, len(in.Inventory), len(in.Desired))
	sort.SliceStable(apply, func(i, j int) bool { return less(apply[i], apply[j]) })
	sort.SliceStable(prune, func(i, j int) bool { return less(prune[j], prune[i]) })
	for _, ph := range []Phase{PreSync, PostSync, SyncFail} {
		sort.SliceStable(hooks[ph], func(i, j int) bool { return less(hooks[ph][i], hooks[ph][j]) })
	}
	steps := append(hooks[PreSync], apply...)
	steps = append(steps, prune...)
	steps = append(steps, hooks[PostSync]...)
	steps = append(steps, hooks[SyncFail]...)
	return Plan{Steps: steps, Held: held}, nil
}

// HasHooks reports whether the plan runs hooks of phase ph.
func (p Plan) HasHooks(ph Phase) bool {
	for _, s := range p.Steps {
		if s.Action == Hook && s.Hook == ph {
			return true
		}
	}
	return false
}

func less(a, b Step) bool {
	fa, fb := object.IsFoundation(a.Ref), object.IsFoundation(b.Ref)
	switch {
	case fa != fb:
		return fa
	case a.Wave != b.Wave:
		return a.Wave < b.Wave
	case object.KindOrder(a.Ref.Kind) != object.KindOrder(b.Ref.Kind):
		return object.KindOrder(a.Ref.Kind) < object.KindOrder(b.Ref.Kind)
	case a.Ref.Kind != b.Ref.Kind:
		return a.Ref.Kind < b.Ref.Kind
	case a.Ref.Namespace != b.Ref.Namespace:
		return a.Ref.Namespace < b.Ref.Namespace
	}
	return a.Ref.Name < b.Ref.Name
}

func waveOf(d object.Decoded) (int, error) {
	s, ok := d.Object.GetAnnotations()[WaveAnnotation]
	if !ok || s == "" {
		return 0, nil
	}
	w, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%s: %s: annotation %s: %q is not an integer", d.Source, object.RefOf(d.Object), WaveAnnotation, s)
	}
	return w, nil
}

// hasSyncOption reports whether obj's sync-options annotation, a comma
// separated list, holds opt.
func hasSyncOption(obj *unstructured.Unstructured, opt string) bool {
	for _, o := range strings.Split(obj.GetAnnotations()[SyncOptionsAnnotation], ",") {
		if strings.TrimSpace(o) == opt {
			return true
		}
	}
	return false
}

func allowsPrune(live *unstructured.Unstructured) bool {
	return strings.EqualFold(live.GetAnnotations()[AllowPruneAnnotation], "true")
}

func ownerOf(live *unstructured.Unstructured) string {
	if live == nil {
		return ""
	}
	return live.GetAnnotations()[OwnerAnnotation]
}

// Changes counts the steps that would write: creates, updates and prunes.
func (p Plan) Changes() int {
	n := 0
	for _, s := range p.Steps {
		if s.Action == Create || s.Action == Update || s.Action == Prune {
			n++
		}
	}
	return n
}
