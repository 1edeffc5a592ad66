package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"converge.dev/converge/internal/apply"
	"converge.dev/converge/internal/object"
	"converge.dev/converge/internal/plan"
)

// DeleteOptions configure Delete.
type DeleteOptions struct {
	// Approved is when a person approved deleting objects marked
	// Delete=confirm (Argo CD's deletion-approved annotation). Zero means
	// not approved: such objects hold the deletion.
	Approved time.Time
	// Poll is the interval between checks that deleted objects are gone.
	// If zero, 500ms.
	Poll time.Duration
}

// Kept is an object a unit deletion leaves in place, and why.
type Kept struct {
	Ref    object.Ref
	Reason string
}

// DeleteReport is what Delete did.
type DeleteReport struct {
	Deleted []object.Ref
	Kept    []Kept
	// Awaiting are Delete=confirm objects waiting for approval.
	Awaiting []object.Ref
}

// ErrAwaitingApproval means objects marked Delete=confirm hold a unit's
// deletion until a person approves it.
var ErrAwaitingApproval = errors.New("objects marked Delete=confirm wait for approval")

// Delete removes everything the unit applied, as recorded in its
// inventory, and then the inventory itself: Argo CD's cascading deletion
// of an Application. Only objects that still carry the unit's owner
// annotation are touched. Namespaces are kept, as pruning keeps them,
// and so are objects marked Delete=false. Objects marked Delete=confirm
// hold the whole deletion, and nothing is deleted, until Approved is
// later than their creation. Delete returns once the deleted objects are
// gone, so the caller can release its finalizer.
func (e *Engine) Delete(ctx context.Context, unit string, o DeleteOptions) (DeleteReport, error) {
	if o.Poll == 0 {
		o.Poll = 500 * time.Millisecond
	}
	inv, err := e.loadInventory(ctx, unit)
	if err != nil {
		return DeleteReport{}, err
	}
	var rep DeleteReport
	type victim struct {
		ref object.Ref
		uid string
	}
	var victims []victim
	for _, ref := range inv.Objects {
		live, err := e.o.Cluster.Get(ctx, ref)
		if err != nil {
			return rep, fmt.Errorf("unit %s: delete: %w", unit, err)
		}
		if live == nil || live.GetAnnotations()[plan.OwnerAnnotation] != unit {
			continue // gone, or no longer ours
		}
		opts := live.GetAnnotations()[plan.SyncOptionsAnnotation]
		switch {
		case ref.Group == "" && ref.Kind == "Namespace":
			rep.Kept = append(rep.Kept, Kept{ref, "namespaces are not deleted (it would delete everything inside)"})
		case live.GetAnnotations()[plan.AdoptedAnnotation] != "":
			rep.Kept = append(rep.Kept, Kept{ref, "adopted, not created by this unit"})
		case ref.Group == "" && ref.Kind == "PersistentVolumeClaim" && !strings.EqualFold(live.GetAnnotations()[plan.AllowPruneAnnotation], "true"):
			rep.Kept = append(rep.Kept, Kept{ref, "a PersistentVolumeClaim is deleted only with its annotation " + plan.AllowPruneAnnotation + ": \"true\""})
		case hasOption(opts, "Delete=false") || strings.EqualFold(live.GetAnnotations()[plan.FluxPruneAnnotation], "disabled"):
			rep.Kept = append(rep.Kept, Kept{ref, "kept by its sync option Delete=false or its annotation " + plan.FluxPruneAnnotation + ": disabled"})
		case hasOption(opts, "Delete=confirm") && !o.Approved.After(live.GetCreationTimestamp().Time):
			rep.Awaiting = append(rep.Awaiting, ref)
		default:
			victims = append(victims, victim{ref, string(live.GetUID())})
		}
	}
	if len(rep.Awaiting) > 0 {
		names := make([]string, len(rep.Awaiting))
		for i, r := range rep.Awaiting {
			names[i] = r.String()
		}
		return rep, fmt.Errorf("unit %s: %w: %s", unit, ErrAwaitingApproval, strings.Join(names, ", "))
	}
	// Dependents first: the reverse of the apply order.
	sort.SliceStable(victims, func(i, j int) bool {
		return object.KindOrder(victims[i].ref.Kind) > object.KindOrder(victims[j].ref.Kind)
	})
	for _, v := range victims {
		if err := e.o.Cluster.Delete(ctx, v.ref, types.UID(v.uid)); err != nil {
			return rep, fmt.Errorf("unit %s: delete: %w", unit, err)
		}
		rep.Deleted = append(rep.Deleted, v.ref)
	}
	for _, v := range victims {
		for {
			live, err := e.o.Cluster.Get(ctx, v.ref)
			if err != nil {
				return rep, fmt.Errorf("unit %s: delete: %w", unit, err)
			}
			if live == nil || string(live.GetUID()) != v.uid {
				break
			}
			select {
			case <-ctx.Done():
				return rep, fmt.Errorf("unit %s: waiting for %s to be deleted: %w", unit, v.ref, ctx.Err())
			case <-time.After(o.Poll):
			}
		}
	}
	e.inventories.forget(unit)
	return rep, e.inventoryClient().DeleteInventory(ctx, unit)
}

func hasOption(list, opt string) bool {
	for _, o := range strings.Split(list, ",") {
		if strings.TrimSpace(o) == opt {
			return true
		}
	}
	return false
}

// RunDeletionHooks renders the unit and runs its hooks of phase ph
// (plan.PreDelete or plan.PostDelete), waiting until each completes, as
// Argo CD does around an Application's deletion. A failed hook is an
// error: a PreDelete hook that fails holds the deletion. It returns the
// hooks' results; none when the unit has no such hooks.
func (e *Engine) RunDeletionHooks(ctx context.Context, u Unit, ph plan.Phase) ([]apply.HookResult, error) {
	// A unit that never applied anything has no hooks to run on its
	// deletion; one whose source no longer renders must not hang
	// forever for that.
	if inv, err := e.loadInventory(ctx, u.Name); err != nil {
		return nil, err
	} else if len(inv.Objects) == 0 && ph == plan.PreDelete {
		return nil, nil
	}
	r, err := e.Render(ctx, u)
	if err != nil {
		return nil, fmt.Errorf("unit %s: %s hooks: %w", u.Name, ph, err)
	}
	objs, err := decryptObjects(r.Objects, u.Decryption)
	if err != nil {
		return nil, fmt.Errorf("unit %s: %s hooks: %w", u.Name, ph, err)
	}
	var hooks []object.Decoded
	for _, d := range objs {
		phases, err := plan.HookPhases(d.Object)
		if err != nil {
			return nil, fmt.Errorf("unit %s: %s: %w", u.Name, d.Source, err)
		}
		if slices.Contains(phases, ph) {
			hooks = append(hooks, d)
		}
	}
	if len(hooks) == 0 {
		return nil, nil
	}
	desired, err := e.prepare(u, hooks)
	if err != nil {
		return nil, fmt.Errorf("unit %s: %w", u.Name, err)
	}
	live, err := e.live(ctx, desired, nil, true)
	if err != nil {
		return nil, fmt.Errorf("unit %s: %w", u.Name, err)
	}
	steps, err := plan.DeletionHooks(plan.Input{Unit: u.Name, Desired: desired, Live: live}, ph)
	if err != nil {
		return nil, fmt.Errorf("unit %s: %w", u.Name, err)
	}
	res, err := apply.Run(ctx, e.target(true), plan.Plan{Steps: steps}, apply.Options{Wait: true, Health: e.o.Health.Assess})
	if err != nil {
		return res.Hooks, fmt.Errorf("unit %s: %s hooks: %w", u.Name, ph, err)
	}
	return res.Hooks, nil
}
