package engine

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"converge.dev/converge/internal/cluster"
	"converge.dev/converge/internal/object"
	"converge.dev/converge/internal/plan"
)

// inventoryBefore is what the unit may own once the sync has run
// partly: the stored inventory (at its revision, since the new one is
// not applied yet) and every object the plan creates, updates, leaves
// unchanged or prunes.
func inventoryBefore(unit string, rep Report) cluster.Inventory {
	inv := cluster.Inventory{Unit: unit, Revision: rep.owned.Revision, PruneHeldSince: rep.heldSince}
	seen := map[object.Key]bool{}
	add := func(r object.Ref) {
		if !seen[r.Key()] {
			seen[r.Key()] = true
			inv.Objects = append(inv.Objects, r)
		}
	}
	for _, r := range rep.owned.Objects {
		add(r)
	}
	after := inventoryAfter(unit, rep)
	for _, r := range after.Objects {
		add(r)
	}
	for _, s := range rep.Plan.Steps {
		if s.Action == plan.Prune {
			add(s.Ref)
		}
	}
	if sameRefs(inv.Objects, after.Objects) {
		// Nothing to prune and nothing owned that the sync does not
		// apply: this is already the inventory after the sync, revision
		// included, and the write after it is skipped. The revision only
		// says whether strays were looked for, and they were, by the
		// plan this inventory comes from.
		inv.Revision = after.Revision
	}
	return inv // SaveInventory sorts it
}

// inventoryAfter is what the unit owns after a sync: everything applied
// or unchanged, plus orphans it still owns (so a later prune finds them).
func inventoryAfter(unit string, rep Report) cluster.Inventory {
	inv := cluster.Inventory{Unit: unit, Revision: rep.Revision, PruneHeldSince: rep.heldSince}
	for _, s := range rep.Plan.Steps {
		switch s.Action {
		case plan.Create, plan.Update, plan.Unchanged, plan.Orphan:
			inv.Objects = append(inv.Objects, s.Ref)
		case plan.Untouched:
			if s.Live != nil && s.Live.GetAnnotations()[plan.OwnerAnnotation] == unit {
				inv.Objects = append(inv.Objects, s.Ref) // still ours; its annotations guard it
			}
		}
	}
	return inv
}

// heldSince is when the plan's held prune was first held: kept from the
// inventory while the hold lasts, now for a new one, nil for none.
func heldSince(p plan.Plan, owned cluster.Inventory, now time.Time) *metav1.Time {
	switch {
	case p.Held == nil:
		return nil
	case owned.PruneHeldSince != nil:
		return owned.PruneHeldSince
	}
	t := metav1.NewTime(now.Truncate(time.Second))
	return &t
}
