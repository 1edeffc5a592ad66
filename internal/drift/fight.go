package drift

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"converge.dev/converge/internal/object"
)

// FightLimit says when taking a field back has become a fight (seed
// §17.5): Reverts takes from the same manager within Window. Zero values
// are 5 and 10 minutes.
type FightLimit struct {
	Reverts int           `json:"reverts,omitempty"`
	Window  time.Duration `json:"window,omitempty"`
}

func (l FightLimit) orDefault() FightLimit {
	if l.Reverts <= 0 {
		l.Reverts = 5
	}
	if l.Window <= 0 {
		l.Window = 10 * time.Minute
	}
	return l
}

// Fight is a field converge stopped taking back.
type Fight struct {
	Item Item
	// Count is how many times converge took it back within the window.
	Count int
	// Until is when converge tries taking it back again.
	Until  time.Time
	Window time.Duration
}

// String names both managers, the field and the count, and the rule
// that would end the fight.
func (f Fight) String() string {
	return fmt.Sprintf("converge and %q took turns on %s %s %d times within %s; converge stops reverting it until %s. To end the fight, allow it in a DriftPolicy: %s",
		f.Item.Manager, f.Item.Object, f.Item.Path, f.Count, f.Window, f.Until.UTC().Format(time.RFC3339), f.Item.Suggest())
}

// Fights remembers, per unit and field, when a sync took the field back
// from another manager. It is safe for concurrent use; the zero value is
// ready.
type Fights struct {
	mu sync.Mutex
	m  map[fightKey]*fightState
}

type fightKey struct {
	unit string
	obj  object.Key
	path string
}

type fightState struct {
	manager string
	takes   []time.Time
	until   time.Time
	fight   Fight
}

// Took records that a sync of unit took back the items held by another
// manager (reverted or reported, with a manager named) and returns the
// fights that start now.
func (f *Fights) Took(unit string, items []Item, lim FightLimit, now time.Time) []Fight {
	lim = lim.orDefault()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil {
		f.m = map[fightKey]*fightState{}
	}
	var started []Fight
	for _, it := range items {
		if it.Manager == "" || !it.Unexplained() || it.Path == "" {
			continue
		}
		k := fightKey{unit, it.Object.Key(), it.Path}
		s := f.m[k]
		if s == nil || s.manager != it.Manager {
			s = &fightState{manager: it.Manager}
			f.m[k] = s
		}
		kept := s.takes[:0]
		for _, t := range s.takes {
			if now.Sub(t) < lim.Window {
				kept = append(kept, t)
			}
		}
		s.takes = append(kept, now)
		if len(s.takes) >= lim.Reverts && !now.Before(s.until) {
			s.until = now.Add(lim.Window)
			s.fight = Fight{Item: it, Count: len(s.takes), Until: s.until, Window: lim.Window}
			s.takes = nil
			started = append(started, s.fight)
		}
	}
	return started
}

// Active returns the unit's fights still on at now.
func (f *Fights) Active(unit string, now time.Time) []Fight {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Fight
	for k, s := range f.m {
		if k.unit == unit && now.Before(s.until) {
			out = append(out, s.fight)
		}
	}
	sortFights(out)
	return out
}

// Forget drops a deleted unit's record.
func (f *Fights) Forget(unit string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k := range f.m {
		if k.unit == unit {
			delete(f.m, k)
		}
	}
}

// Stop returns p with the fights' fields left to their holders.
func (p Policy) Stop(fights []Fight) Policy {
	p.Stopped = append([]Rule(nil), p.Stopped...)
	for _, f := range fights {
		r := f.Item.exactRule()
		r.Origin = fmt.Sprintf("FieldFight with %q until %s", f.Item.Manager, f.Until.UTC().Format(time.RFC3339))
		p.Stopped = append(p.Stopped, r)
	}
	return p
}

// exactRule matches the item's field of its object and nothing else.
func (it Item) exactRule() Rule {
	kind := it.Object.Kind
	if it.Object.Group != "" {
		kind = it.Object.Group + "/" + kind
	}
	return Rule{Kinds: []string{kind}, Names: []string{it.Object.Name}, Paths: []string{it.PolicyPath()}}
}

// PolicyPath spells the item's field as a DriftPolicy path: segments
// escaped as in a JSON pointer ("~1" for "/").
func (it Item) PolicyPath() string {
	segs := Segments(it.fp)
	for i, s := range segs {
		segs[i] = strings.NewReplacer("~", "~0", "/", "~1").Replace(s)
	}
	return "/" + strings.Join(segs, "/")
}

// Suggest is the allow rule, in a DriftPolicy's YAML, that would leave
// the item's field to its holder.
func (it Item) Suggest() string {
	r := it.exactRule()
	return fmt.Sprintf("{kinds: [%s], names: [%s], paths: [%s]}", r.Kinds[0], r.Names[0], r.Paths[0])
}

func sortFights(fs []Fight) {
	sort.Slice(fs, func(i, j int) bool {
		a, b := fs[i].Item, fs[j].Item
		if a.Object.String() != b.Object.String() {
			return a.Object.String() < b.Object.String()
		}
		return a.Path < b.Path
	})
}
