package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/rand"

	"converge.dev/converge/internal/apply"
	"converge.dev/converge/internal/cluster"
	"converge.dev/converge/internal/diff"
	"converge.dev/converge/internal/drift"
	"converge.dev/converge/internal/object"
	"converge.dev/converge/internal/plan"
)

// SyncOptions configure Diff and Sync.
type SyncOptions struct {
	// Prune deletes objects the unit applied before and Git no longer has.
	Prune bool
	// AllowEmpty lets a render with no objects prune everything the unit
	// owns. If false, such a sync is refused: an empty render is far more
	// often a mistake (a wrong path, a broken overlay) than a wish.
	AllowEmpty bool
	// DryRun plans and validates on the server but changes nothing.
	DryRun bool
	// Wait holds each wave until it is healthy, and the sync until all is.
	Wait bool
	// WaitMultiStepOnly waits only when the sync has several waves or
	// hooks, as Argo CD does; see apply.Options.
	WaitMultiStepOnly bool
	// Step applies waves until one is not healthy yet and returns an
	// error wrapping apply.ErrInProgress, instead of waiting; the next
	// Sync goes on from there. See apply.Options.Step.
	Step bool
	// Waiting, if set, is told what the sync waits for as that changes.
	Waiting func(what string) `json:"-"`
	// WaitThroughRetries keeps waiting on a Degraded object that its
	// controller is retrying (Reconciling=True), as Flux's wait does;
	// it fails only on the sync's deadline. If false, Degraded fails at
	// once, as in an Argo CD sync.
	WaitThroughRetries bool
	// RefuseConflicts makes a field another field manager holds an error
	// that stops the sync before anything is applied. If false, such a
	// field is drift: the unit's drift policy leaves it to that manager
	// or the sync takes it back (Git is the source of truth).
	RefuseConflicts bool
	// PruneApproved approves pruning objects marked Prune=confirm that
	// were created before it. Zero approves nothing.
	PruneApproved time.Time

	// Budget bounds how much one sync may prune (plan.Budget: the zero
	// value holds a prune of more than 25% or more than 50 objects).
	// Its HeldSince is filled in from the unit's inventory.
	Budget plan.Budget
	// Adopt lets the unit take over live objects that no unit created.
	// If false, such an object is a conflict unless it, or the object in
	// Git, carries plan.AdoptAnnotation.
	Adopt bool
	// PruneAdopted lets prune delete objects the unit adopted. If false,
	// they are left in place when they leave Git.
	PruneAdopted bool

	// reusePredictions lets a plan reuse a dry run of the same desired
	// object against the same live resourceVersion; see predictionTTL.
	reusePredictions bool
	// readAbsent reads objects the live index says do not exist: set
	// when a dry run found one that does.
	readAbsent bool
	// absentMissing skips the dry run of an object that is not live: a
	// comparison calls it Missing whatever the server would say of it.
	// A sync still sends it, fresh, before anything is applied: that dry
	// run validates it and finds an object the live index has not seen
	// yet, which a cached answer could not.
	absentMissing bool
}

// Report is a planned (and maybe executed) sync.
type Report struct {
	Unit     string
	Revision string
	Plan     plan.Plan
	// Events is what was done, in order; empty for diff and dry runs.
	Events []apply.Event
	// Hooks is how each hook that ran ended.
	Hooks []apply.HookResult
	// Drift lists the live fields that differ from what the unit applied,
	// each with who holds it, its category and what is done about it.
	// A sync takes back every field whose action is not Allow.
	Drift []drift.Item

	// owned is the inventory the plan started from.
	owned cluster.Inventory
	// heldSince is when the plan's held prune was first held, decided
	// once per plan so the write-ahead and the final inventory agree.
	heldSince *metav1.Time
}

// ErrEmptyRender refuses to prune everything because a render was empty.
var ErrEmptyRender = errors.New("render is empty; refusing to prune everything the unit owns (allow empty to do it)")

// ErrConflict means some desired objects belong to another unit.
var ErrConflict = errors.New("objects owned by another unit")

// Diff plans the unit against the cluster with a server-side dry run of
// every object. It changes nothing.
func (e *Engine) Diff(ctx context.Context, u Unit, o SyncOptions) (Report, error) {
	o.DryRun = true
	return e.plan(ctx, u, o)
}

// Sync applies the unit: fetch, render, validate every object with a
// server-side dry run, plan, then apply wave by wave and prune. If any
// step before applying fails, nothing is applied and nothing is pruned.
func (e *Engine) Sync(ctx context.Context, u Unit, o SyncOptions) (Report, error) {
	o.reusePredictions = true
	rep, err := e.plan(ctx, u, o)
	if err != nil || o.DryRun {
		return rep, err
	}
	// Write-ahead: before anything is applied, the inventory holds all
	// the unit owned plus all it is about to apply. A sync that stops
	// anywhere (a Degraded wave, a lost connection, a killed process)
	// leaves nothing that a later prune or deletion cannot find.
	if err := e.saveInventory(ctx, inventoryBefore(u.Name, rep)); err != nil {
		return rep, fmt.Errorf("unit %s: write-ahead inventory, nothing applied: %w", u.Name, err)
	}
	res, err := apply.Run(ctx, e.target(!o.RefuseConflicts), rep.Plan, apply.Options{Wait: o.Wait, Health: e.o.Health.Assess, Retrying: retrying(o.WaitThroughRetries), WaitMultiStepOnly: o.WaitMultiStepOnly, Waiting: o.Waiting, Step: o.Step})
	rep.Events, rep.Hooks = res.Events, res.Hooks
	if err != nil {
		return rep, fmt.Errorf("unit %s: sync: %w", u.Name, err)
	}
	if err := e.saveInventory(ctx, inventoryAfter(u.Name, rep)); err != nil {
		return rep, err
	}
	return rep, nil
}

func (e *Engine) plan(ctx context.Context, u Unit, o SyncOptions) (Report, error) {
	if u.Name == "" {
		return Report{}, errors.New("unit name is required")
	}
	if e.o.Cluster == nil {
		return Report{}, errors.New("engine: no cluster")
	}
	r, err := e.Manifests(ctx, u)
	if err != nil {
		return Report{}, err
	}
	desired, err := e.prepare(u, r.Objects)
	if err != nil {
		return Report{}, fmt.Errorf("unit %s: %w", u.Name, err)
	}
	inv, err := e.loadInventory(ctx, u.Name)
	if err != nil {
		return Report{}, err
	}
	if o.Prune && !o.DryRun && len(inv.Objects) > 0 && inv.Revision != r.Revision {
		// On a sync of a new revision, look for what the unit applied but
		// the inventory lost (an older version, a failed inventory
		// write). Once per revision, not on every comparison: it LISTs
		// every kind the unit has in every namespace it uses. A unit with
		// no inventory yet has applied nothing, since the write-ahead
		// inventory comes before any apply.
		strays, err := e.strays(ctx, u.Name, desired, inv.Objects)
		if err != nil {
			return Report{}, fmt.Errorf("unit %s: %w", u.Name, err)
		}
		inv.Objects = append(append([]object.Ref(nil), inv.Objects...), strays...)
	}
	if len(desired) == 0 && len(inv.Objects) > 0 && o.Prune && !o.AllowEmpty {
		return Report{}, fmt.Errorf("unit %s: %w (%d objects owned)", u.Name, ErrEmptyRender, len(inv.Objects))
	}
	live, err := e.live(ctx, desired, inv.Objects, o.readAbsent)
	if err != nil {
		return Report{}, fmt.Errorf("unit %s: %w", u.Name, err)
	}
	plan.Adopt(u.Name, desired, live, plan.AdoptOptions{All: o.Adopt, FieldManager: cluster.FieldManager})
	if u.RespectIgnoreDifferences {
		for _, d := range desired {
			if err := diff.Respect(d.Object, live[object.RefOf(d.Object).Key()], u.Ignore); err != nil {
				return Report{}, fmt.Errorf("unit %s: %s: %w", u.Name, d.Source, err)
			}
		}
	}
	predicted, x, err := e.validate(ctx, u, desired, live, o)
	if e.o.Live != nil && !o.readAbsent && (err != nil || existing(predicted, live)) {
		// An object the live index said was missing exists after all (its
		// dry run has a resourceVersion, or ran into another manager's
		// fields): the index had not seen it yet. Compare again, with
		// what is there read this time; a real validation error comes
		// back from that comparison.
		o.readAbsent = true
		return e.plan(ctx, u, o)
	}
	if err != nil {
		return Report{}, fmt.Errorf("unit %s: %w", u.Name, err)
	}
	budget := o.Budget
	if len(desired) == 0 && o.AllowEmpty {
		budget.Off = true // pruning everything was asked for explicitly
	}
	if inv.PruneHeldSince != nil {
		budget.HeldSince = inv.PruneHeldSince.Time
	}
	p, err := plan.Make(plan.Input{Unit: u.Name, Desired: desired, Predicted: predicted, Live: live, Inventory: inv.Objects,
		Prune: o.Prune, Ignore: u.Ignore, PruneApproved: o.PruneApproved, Budget: budget, PruneAdopted: o.PruneAdopted})
	if err != nil {
		return Report{}, fmt.Errorf("unit %s: %w", u.Name, err)
	}
	if err := e.keepCRDsInUse(ctx, &p); err != nil {
		return Report{}, fmt.Errorf("unit %s: %w", u.Name, err)
	}
	items, err := e.explain(u, p, predicted, x, inv.Objects, inv.Revision == r.Revision)
	if err != nil {
		return Report{}, fmt.Errorf("unit %s: drift: %w", u.Name, err)
	}
	e.claims.record(u.Name, p)
	return Report{Unit: u.Name, Revision: r.Revision, Plan: p, Drift: items, owned: inv, heldSince: heldSince(p, inv, time.Now())}, nil
}

// prepare gives namespaced objects the destination namespace and stamps
// the owner annotation, on copies: rendered objects are cached and shared.
// Manifests are the unit's objects as a sync would apply them, before
// namespaces and owners are given: its render, decrypted, with Flux's
// overlay (namePrefix, images, patches) and postBuild substitutions.
// Nothing is sent to the cluster.
func (e *Engine) Manifests(ctx context.Context, u Unit) (Rendered, error) {
	r, err := e.Render(ctx, u)
	if err != nil {
		return Rendered{}, fmt.Errorf("unit %s: %w", u.Name, err)
	}
	objs, err := decryptObjects(r.Objects, u.Decryption)
	if err != nil {
		return Rendered{}, fmt.Errorf("unit %s: %w", u.Name, err)
	}
	if objs, err = u.Overlay.Apply(objs); err != nil {
		return Rendered{}, fmt.Errorf("unit %s: %w", u.Name, err)
	}
	if u.Substitute != nil {
		if objs, err = substitute(objs, u.Substitute); err != nil {
			return Rendered{}, fmt.Errorf("unit %s: %w", u.Name, err)
		}
	}
	return Rendered{Revision: r.Revision, Objects: objs}, nil
}

func (e *Engine) prepare(u Unit, objs []object.Decoded) ([]object.Decoded, error) {
	ns := u.DestNamespace
	if ns == "" {
		ns = "default"
	}
	crdScopes := definedKinds(objs)
	seen := map[object.Key]object.Source{}
	out := make([]object.Decoded, 0, len(objs))
	for _, d := range objs {
		obj := d.Object.DeepCopy()
		gvk := obj.GroupVersionKind()
		namespaced, known := crdScopes[gvk.GroupKind()]
		if !known {
			var err error
			namespaced, err = e.o.Cluster.IsNamespaced(gvk)
			if errors.Is(err, cluster.ErrUnknownKind) {
				return nil, fmt.Errorf("%s: %s: %w", d.Source, object.RefOf(obj), err)
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %s: %w", d.Source, object.RefOf(obj), err)
			}
		}
		if namespaced && obj.GetNamespace() == "" {
			obj.SetNamespace(ns)
		}
		if !namespaced {
			obj.SetNamespace("")
		}
		if obj.GetName() == "" && obj.GetGenerateName() != "" && plan.IsHook(obj) {
			// A hook with generateName is a new object every sync; the
			// name is chosen here because server-side apply needs one.
			obj.SetName(obj.GetGenerateName() + rand.String(5))
		}
		ann := obj.GetAnnotations()
		if ann == nil {
			ann = map[string]string{}
		}
		ann[plan.OwnerAnnotation] = u.Name
		obj.SetAnnotations(ann)
		key := object.RefOf(obj).Key()
		if prev, dup := seen[key]; dup {
			return nil, fmt.Errorf("%s: %s is also rendered by %s", d.Source, object.RefOf(obj), prev)
		}
		seen[key] = d.Source
		out = append(out, object.Decoded{Object: obj, Source: d.Source})
	}
	return out, nil
}

// validate dry-runs every desired object on the server: admission,
// schema and field-ownership errors surface here, before anything is
// applied. Objects the server cannot check yet, because their CRD or
// their Namespace arrives in the same sync, are compared as rendered and
// checked when applied. An object whose namespace does not exist at all
// is compared as rendered for a diff, and refused by a sync, before
// anything is applied. Objects owned by another unit are not sent.
//
// A field another manager holds is drift, not an error (see dryRun):
// where the unit's drift policy leaves it to that manager, desired is
// changed in place to leave it out.
func (e *Engine) validate(ctx context.Context, u Unit, desired []object.Decoded, live map[object.Key]*unstructured.Unstructured, o SyncOptions) (map[object.Key]*unstructured.Unstructured, explanation, error) {
	unit := u.Name
	x := explanation{original: map[object.Key]*unstructured.Unstructured{}, conflicts: map[object.Key][]string{}, hpa: hpaTargets(desired)}
	force := !o.RefuseConflicts
	newNamespaces := map[string]bool{}
	for _, d := range desired {
		ref := object.RefOf(d.Object)
		if ref.Group == "" && ref.Kind == "Namespace" && live[ref.Key()] == nil {
			newNamespaces[ref.Name] = true
		}
	}
	missing, err := e.missingNamespaces(ctx, desired, live, newNamespaces)
	if err != nil {
		return nil, x, err
	}
	var errs0 []error
	for _, d := range desired {
		ns := d.Object.GetNamespace()
		if missing[ns] {
			if !o.DryRun {
				errs0 = append(errs0, fmt.Errorf("%s: %s: namespace %q does not exist (add it to the source, or create it)", d.Source, object.RefOf(d.Object), ns))
			}
			newNamespaces[ns] = true // compared as rendered
		}
	}
	if len(errs0) > 0 {
		return nil, x, fmt.Errorf("validation failed, nothing applied: %w", errors.Join(errs0...))
	}
	// Dry runs are independent and each costs a round trip: send them a
	// few at a time, and keep results in render order.
	preds := make([]*unstructured.Unstructured, len(desired))
	sent := make([]*unstructured.Unstructured, len(desired))
	conflicts := make([][]string, len(desired))
	hpaLive := make([]bool, len(desired))
	errs := make([]error, len(desired))
	sem := make(chan struct{}, validateConcurrency)
	var wg sync.WaitGroup
	for i, d := range desired {
		ref := object.RefOf(d.Object)
		if newNamespaces[ref.Namespace] {
			continue
		}
		l := live[ref.Key()]
		if l == nil && o.absentMissing {
			continue
		}
		if l != nil {
			if plan.IsHook(d.Object) {
				continue // recreated when it runs; an update may not even be legal
			}
			if owner := l.GetAnnotations()[plan.OwnerAnnotation]; owner != "" && owner != unit {
				continue
			} else if owner == "" && d.Object.GetAnnotations()[plan.AdoptedAnnotation] == "" {
				continue // a conflict: not ours to take over
			}
		}
		key, dkey := "", ""
		if o.reusePredictions {
			key = predictionKey(d.Object, l, force)
			if pred := e.predictions.get(key); pred != nil {
				preds[i] = pred
				continue
			}
			if l != nil && !o.RefuseConflicts {
				// An object with drift was dry-run against this very live
				// version under this policy: what to leave out is decided
				// again from the conflicts kept, with no request.
				dkey = key + "/drift/" + policyKey(u.Drift)
				if pred, fields, hpa, ok := e.predictions.getExplained(dkey); ok {
					obj, _, err := leaveOut(u, d.Object, l, fields, drift.Facts{HPA: hpa || x.hpa[ref.Key()]})
					if err != nil {
						errs[i] = fmt.Errorf("%s: %w", d.Source, err)
						continue
					}
					preds[i], sent[i], conflicts[i], hpaLive[i] = pred, obj, fields, hpa
					continue
				}
			}
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			facts := drift.Facts{HPA: x.hpa[ref.Key()]}
			obj, pred, fields, err := e.dryRun(ctx, u, d.Object, l, &facts, o.RefuseConflicts)
			hpaLive[i] = facts.HPA
			switch {
			case errors.Is(err, cluster.ErrUnknownKind):
			case err != nil:
				errs[i] = fmt.Errorf("%s: %w", d.Source, err)
			default:
				preds[i], sent[i], conflicts[i] = pred, obj, fields
				switch {
				case key != "" && fields == nil:
					e.predictions.put(key, pred)
				case dkey != "":
					e.predictions.putExplained(dkey, pred, fields, facts.HPA)
				}
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, x, fmt.Errorf("validation failed, nothing applied: %w", err)
	}
	out := map[object.Key]*unstructured.Unstructured{}
	for i, p := range preds {
		if p == nil {
			continue
		}
		key := object.RefOf(desired[i].Object).Key()
		out[key] = p
		if conflicts[i] != nil {
			x.conflicts[key] = conflicts[i]
		}
		if hpaLive[i] {
			x.hpa[key] = true
		}
		if sent[i] != nil && sent[i] != desired[i].Object {
			x.original[key] = desired[i].Object
			desired[i].Object = sent[i]
		}
	}
	return out, x, nil
}

// missingNamespaces returns the namespaces desired objects use that
// neither exist nor arrive in this sync.
func (e *Engine) missingNamespaces(ctx context.Context, desired []object.Decoded, live map[object.Key]*unstructured.Unstructured, arriving map[string]bool) (map[string]bool, error) {
	out := map[string]bool{}
	checked := map[string]bool{}
	for _, d := range desired {
		ns := d.Object.GetNamespace()
		if ns == "" || arriving[ns] || checked[ns] {
			continue
		}
		if live[object.RefOf(d.Object).Key()] != nil {
			continue // an object that exists proves its namespace does
		}
		checked[ns] = true
		ok, err := e.exists(ctx, object.Ref{Version: "v1", Kind: "Namespace", Name: ns})
		if err != nil {
			return nil, err
		}
		if !ok {
			out[ns] = true
		}
	}
	return out, nil
}

// validateConcurrency bounds the dry runs in flight for one unit.
const validateConcurrency = 8

// target adapts cluster.Client to apply.Target.
type target struct {
	c     *cluster.Client
	force bool
	// predictions learns from every apply: what the server returned is
	// what a dry run of the same object against it would predict, so the
	// next comparison of an unchanged unit sends no dry run at all.
	predictions *predictionCache
	// seen keeps what the server returned as the live object at its
	// new version, so the next comparison need not read it.
	seen *seenObjects
}

func (e *Engine) target(force bool) target {
	return target{e.o.Cluster, force, &e.predictions, &e.seen}
}

func (t target) Apply(ctx context.Context, obj *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	out, err := t.c.Apply(ctx, obj, cluster.ApplyOptions{Force: t.force})
	if err == nil && out != nil {
		// One packed copy serves both: the prediction and the live object
		// are the same answer.
		if p, ok := pack(out); ok {
			t.predictions.putPacked(predictionKey(obj, out, t.force), p)
			t.seen.putApplied(out, p)
		}
	}
	return out, err
}

func (t target) Delete(ctx context.Context, ref object.Ref, uid types.UID) error {
	t.seen.forget(ref.Key())
	return t.c.Delete(ctx, ref, uid)
}

func (t target) Get(ctx context.Context, ref object.Ref) (*unstructured.Unstructured, error) {
	obj, err := t.c.Get(ctx, ref)
	if err == nil {
		t.seen.put(obj)
	}
	return obj, err
}

func (t target) WaitEstablished(ctx context.Context, name string) error {
	return t.c.WaitEstablished(ctx, name)
}

func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}
