package drift

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
)

// Policy says which drift is expected and which is not (seed §8.1). The
// zero Policy is the built-in default: every drifted field is reported
// and a sync takes it back. Under every policy, the replicas of a
// workload an HPA scales are allowed unless a forbid rule names them
// (seed §8.2: a field should have one owner).
type Policy struct {
	// Name names the policy in items and events ("" for the default).
	Name string `json:"name,omitempty"`
	// Allow is expected drift: never reverted, never alerted.
	Allow []Rule `json:"allow,omitempty"`
	// Forbid is unauthorized drift: reverted at once and alerted, even
	// when the unit does not heal itself. Forbid wins over Allow.
	Forbid []Rule `json:"forbid,omitempty"`
	// Default is the action for drift in neither list: Report, Revert or
	// Ignore. Empty is Report.
	Default Action `json:"default,omitempty"`
	// Managers extends the built-in lists Classify uses.
	Managers Managers `json:"managers,omitempty"`
	// Fight says when taking a field back has become a fight.
	Fight FightLimit `json:"fight,omitempty"`
	// Stopped are fields converge stopped taking back because of a
	// fight; they win over every other rule. See Fights.
	Stopped []Rule `json:"-"`
	// Overrides are active emergency overrides: their fields are left as
	// they are live, over forbid rules too. A human's edit under one is
	// emergency-manual drift rather than unauthorized.
	Overrides []Rule `json:"-"`
	// Expired are overrides whose expiry action is revert and not done
	// yet: their fields are reverted at once.
	Expired []Rule `json:"-"`
}

// Rule matches drifted fields.
type Rule struct {
	// Kinds are "group/Kind" patterns ("apps/Deployment", "apps/*"); a
	// pattern without "/" matches the kind in any group. Empty matches
	// every kind.
	Kinds []string `json:"kinds,omitempty"`
	// Paths are JSON-pointer-like paths ("/spec/template/spec/containers/*/image")
	// where "*" matches any one segment and a list item is named by its
	// key value ("app"), its value, or its index; "/" inside a segment
	// (an annotation's key) is written "~1", as in a JSON pointer. A path
	// matches the fields under it too. Empty matches every field.
	Paths []string `json:"paths,omitempty"`
	// Names are object name patterns (path.Match syntax). Empty matches
	// every object.
	Names []string `json:"names,omitempty"`
	// Categories match the drift's category, so a rule can take all
	// that cloud integrations or controllers change. Empty matches every
	// category.
	Categories []Category `json:"categories,omitempty"`
	// When narrows the rule: "HPATargets" matches only objects a
	// HorizontalPodAutoscaler scales. Empty always holds.
	When string `json:"when,omitempty"`
	// Deletion makes the rule about the object being deleted rather than
	// about its fields.
	Deletion bool `json:"deletion,omitempty"`
	// Origin names the rule in items ("production: forbid[0]"). If
	// empty, the policy's name and the rule's place are used.
	Origin string `json:"-"`
}

func (r Rule) origin(policy, list string, i int) string {
	if r.Origin != "" {
		return r.Origin
	}
	return fmt.Sprintf("%s: %s[%d]", policy, list, i)
}

// WhenHPATargets is Rule.When for objects an HPA scales.
const WhenHPATargets = "HPATargets"

// Facts are what the caller knows about the object beyond the item.
type Facts struct {
	// HPA is true when a HorizontalPodAutoscaler targets the object.
	HPA bool
}

// Validate names the first thing wrong with the policy.
func (p Policy) Validate() error {
	switch p.Default {
	case "", Report, Revert, Ignore:
	default:
		return fmt.Errorf("default %q: want report, revert or ignore", p.Default)
	}
	for name, rules := range map[string][]Rule{"allow": p.Allow, "forbid": p.Forbid} {
		for i, r := range rules {
			if r.When != "" && r.When != WhenHPATargets {
				return fmt.Errorf("%s[%d].when %q: want %s", name, i, r.When, WhenHPATargets)
			}
			for _, k := range append(append([]string(nil), r.Kinds...), r.Names...) {
				if _, err := path.Match(k, ""); err != nil {
					return fmt.Errorf("%s[%d]: pattern %q: %w", name, i, k, err)
				}
			}
			for _, c := range r.Categories {
				if !slices.Contains(categories, c) {
					return fmt.Errorf("%s[%d].categories %q: want one of %v", name, i, c, categories)
				}
			}
			for _, pth := range r.Paths {
				if !strings.HasPrefix(pth, "/") {
					return fmt.Errorf("%s[%d].paths %q: must start with /", name, i, pth)
				}
			}
		}
	}
	for _, l := range [][]string{p.Managers.Policy, p.Managers.Cloud, p.Managers.Human} {
		for _, m := range l {
			if _, err := path.Match(m, ""); err != nil {
				return fmt.Errorf("managers %q: %w", m, err)
			}
		}
	}
	return nil
}

// Decide sets it.Action and it.Rule. fp is the item's field path (nil for
// a deleted object).
func (p Policy) Decide(it *Item, fp fieldpath.Path, f Facts) {
	name := p.Name
	if name == "" {
		name = "default"
	}
	if i := p.match(p.Stopped, it, fp, f); i >= 0 {
		it.Action, it.Rule = Allow, p.Stopped[i].origin(name, "fight", i)
		return
	}
	if i := p.match(p.Overrides, it, fp, f); i >= 0 {
		it.Action, it.Rule = Override, p.Overrides[i].origin(name, "override", i)
		if it.Category == Unauthorized {
			it.Category = EmergencyManual
		}
		return
	}
	if i := p.match(p.Expired, it, fp, f); i >= 0 {
		it.Action, it.Rule = Revert, p.Expired[i].origin(name, "expired override", i)
		return
	}
	if i := p.match(p.Forbid, it, fp, f); i >= 0 {
		it.Action, it.Rule = Revert, p.Forbid[i].origin(name, "forbid", i)
		if it.Category == ControllerManaged || it.Category == Unattributed {
			// A forbidden change is unauthorized whoever made it; the
			// evidence still says who that was.
			it.Category = Unauthorized
		}
		return
	}
	if i := p.match(p.Allow, it, fp, f); i >= 0 {
		it.Action, it.Rule = Allow, p.Allow[i].origin(name, "allow", i)
		return
	}
	if isReplicas(fp) && (f.HPA || isHPA(it)) {
		// Seed §8.2: a field should have one owner. Only a forbid rule
		// makes converge fight an autoscaler.
		it.Action, it.Rule = Allow, name+": an HPA owns replicas"
		return
	}
	it.Action, it.Rule = p.Default, name+": default"
	if it.Action == "" {
		it.Action = Report
	}
}

func (p Policy) match(rules []Rule, it *Item, fp fieldpath.Path, f Facts) int {
	for i, r := range rules {
		if r.matches(it, fp, f) {
			return i
		}
	}
	return -1
}

func (r Rule) matches(it *Item, fp fieldpath.Path, f Facts) bool {
	if r.Deletion != (it.Path == "") {
		return false
	}
	if r.When == WhenHPATargets && !f.HPA && !isHPA(it) {
		return false
	}
	if !r.kindMatches(it.Object.Group, it.Object.Kind) || !r.nameMatches(it.Object.Name) {
		return false
	}
	if len(r.Categories) > 0 && !slices.Contains(r.Categories, it.Category) {
		return false
	}
	if len(r.Paths) == 0 || r.Deletion {
		return true
	}
	segs := Segments(fp)
	for _, pth := range r.Paths {
		if pathMatches(strings.Split(strings.TrimPrefix(pth, "/"), "/"), segs) {
			return true
		}
	}
	return false
}

func (r Rule) kindMatches(group, kind string) bool {
	if len(r.Kinds) == 0 {
		return true
	}
	for _, k := range r.Kinds {
		g, kd, grouped := strings.Cut(k, "/")
		if !grouped {
			kd = g
		}
		if ok, _ := path.Match(kd, kind); !ok {
			continue
		}
		if !grouped {
			return true
		}
		if ok, _ := path.Match(g, group); ok {
			return true
		}
	}
	return false
}

func (r Rule) nameMatches(name string) bool {
	if len(r.Names) == 0 {
		return true
	}
	for _, n := range r.Names {
		if ok, _ := path.Match(n, name); ok {
			return true
		}
	}
	return false
}

// pathMatches: pattern is a prefix of segs, "*" matching any segment.
func pathMatches(pattern, segs []string) bool {
	if len(pattern) == 1 && pattern[0] == "" {
		return true // "/"
	}
	if len(pattern) > len(segs) {
		return false
	}
	for i, p := range pattern {
		if p != "*" && unescape(p) != segs[i] {
			return false
		}
	}
	return true
}

// unescape reads a JSON pointer segment: "~1" is "/", "~0" is "~".
func unescape(seg string) string {
	return strings.NewReplacer("~1", "/", "~0", "~").Replace(seg)
}

func isReplicas(fp fieldpath.Path) bool {
	return len(fp) == 2 && fp[0].FieldName != nil && *fp[0].FieldName == "spec" &&
		fp[1].FieldName != nil && *fp[1].FieldName == "replicas"
}

// isHPA: only the HPA writes to /scale as kube-controller-manager.
func isHPA(it *Item) bool {
	return it.Subresource == "scale" && it.Manager == kubeControllerManager
}
