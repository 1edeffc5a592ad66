package engine

import (
	"fmt"
	"sort"
	"sync"

	"converge.dev/converge/internal/object"
	"converge.dev/converge/internal/plan"
)

// claims remembers, per owning unit, the objects other units rendered
// and were refused: the owner's status can then say that someone else
// wants them (Argo CD's SharedResourceWarning), not only the refused
// unit's. It is in memory: one controller process sees both sides.
type claims struct {
	mu sync.Mutex
	// byOwner[owner][key] = claimant unit
	byOwner map[string]map[object.Key]claim
	// notify, if set, is told of an owner with a new claim on it.
	notify func(owner string)
}

type claim struct {
	ref      object.Ref
	claimant string
}

// record replaces what unit claims from others with the conflicts of its
// latest plan.
func (c *claims) record(unit string, p plan.Plan) {
	var woken []string
	var notify func(string)
	defer func() {
		// Outside the lock: the callback may ask for ClaimsOn.
		for _, owner := range woken {
			notify(owner)
		}
	}()
	c.mu.Lock()
	defer c.mu.Unlock()
	notify = c.notify
	for owner, m := range c.byOwner {
		for k, cl := range m {
			if cl.claimant == unit {
				delete(m, k)
			}
		}
		if len(m) == 0 {
			delete(c.byOwner, owner)
		}
	}
	for _, s := range p.Steps {
		if s.Action != plan.Conflict || s.Live == nil {
			continue
		}
		owner := s.Live.GetAnnotations()[plan.OwnerAnnotation]
		if c.byOwner == nil {
			c.byOwner = map[string]map[object.Key]claim{}
		}
		if c.byOwner[owner] == nil {
			c.byOwner[owner] = map[object.Key]claim{}
		}
		if _, known := c.byOwner[owner][s.Ref.Key()]; !known && notify != nil {
			woken = append(woken, owner)
		}
		c.byOwner[owner][s.Ref.Key()] = claim{s.Ref, unit}
	}
}

// NotifyClaims has notify called, outside any lock, with the owning
// unit each time another unit is refused an object that unit owns, so
// that the owner's status can say so at once rather than at its next
// resync.
func (e *Engine) NotifyClaims(notify func(owner string)) {
	e.claims.mu.Lock()
	defer e.claims.mu.Unlock()
	e.claims.notify = notify
}

// ClaimsOn lists the objects unit owns that other units also render, as
// "<object> is also rendered by unit <claimant>", sorted.
func (e *Engine) ClaimsOn(unit string) []string {
	e.claims.mu.Lock()
	defer e.claims.mu.Unlock()
	var out []string
	for _, cl := range e.claims.byOwner[unit] {
		out = append(out, fmt.Sprintf("%s is also rendered by unit %q, which was refused", cl.ref, cl.claimant))
	}
	sort.Strings(out)
	return out
}
