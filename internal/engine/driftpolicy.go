package engine

import (
	"fmt"
	"sort"
	"strings"

	convergev1 "converge.dev/converge/internal/api/converge/v1alpha1"
	"converge.dev/converge/internal/drift"
)

// DriftPolicyOf merges the DriftPolicies that select one unit into the
// policy the engine applies: their allow and forbid rules add up, and of
// their defaults the strictest wins (revert, then report, then ignore),
// because two teams' policies should never loosen each other. No
// policies give the zero (built-in) policy. An invalid policy is an
// error naming it and its field.
func DriftPolicyOf(policies []convergev1.DriftPolicy) (drift.Policy, error) {
	if len(policies) == 0 {
		return drift.Policy{}, nil
	}
	sort.Slice(policies, func(i, j int) bool { return policies[i].Name < policies[j].Name })
	var out drift.Policy
	var names []string
	strictness := map[drift.Action]int{drift.Ignore: 1, drift.Report: 2, "": 2, drift.Revert: 3}
	for _, p := range policies {
		one := drift.Policy{Name: p.Name, Allow: rules(p.Name, "allow", p.Spec.Allow), Forbid: rules(p.Name, "forbid", p.Spec.Forbid), Default: drift.Action(p.Spec.Default),
			Managers: drift.Managers{Policy: p.Spec.Managers.Policy, Cloud: p.Spec.Managers.Cloud, Human: p.Spec.Managers.Human}}
		if err := one.Validate(); err != nil {
			return drift.Policy{}, fmt.Errorf("DriftPolicy %s/%s: spec.%w", p.Namespace, p.Name, err)
		}
		names = append(names, p.Name)
		out.Allow = append(out.Allow, one.Allow...)
		out.Forbid = append(out.Forbid, one.Forbid...)
		if out.Default == "" || strictness[one.Default] > strictness[out.Default] {
			out.Default = one.Default
		}
		out.Managers.Policy = append(out.Managers.Policy, one.Managers.Policy...)
		out.Managers.Cloud = append(out.Managers.Cloud, one.Managers.Cloud...)
		out.Managers.Human = append(out.Managers.Human, one.Managers.Human...)
		if f := p.Spec.Fight; f != nil {
			// The most sensitive limit wins: fewer reverts, a longer window.
			if f.Reverts > 0 && (out.Fight.Reverts == 0 || f.Reverts < out.Fight.Reverts) {
				out.Fight.Reverts = f.Reverts
			}
			if f.Window != nil && f.Window.Duration > out.Fight.Window {
				out.Fight.Window = f.Window.Duration
			}
		}
	}
	out.Name = strings.Join(names, "+")
	if out.Default == "" {
		out.Default = drift.Report
	}
	return out, nil
}

func rules(policy, list string, in []convergev1.DriftRule) []drift.Rule {
	out := make([]drift.Rule, len(in))
	for i, r := range in {
		out[i] = DriftRule(r, fmt.Sprintf("DriftPolicy %s: %s[%d]", policy, list, i))
	}
	return out
}

// DriftRule is r as the drift package matches it, named origin in the
// items it decides (a DriftPolicy's rule, an override's).
func DriftRule(r convergev1.DriftRule, origin string) drift.Rule {
	cats := make([]drift.Category, len(r.Categories))
	for i, c := range r.Categories {
		cats[i] = drift.Category(c)
	}
	return drift.Rule{Kinds: r.Kinds, Names: r.Names, Paths: r.Paths, Categories: cats, When: r.When, Deletion: r.Deletion, Origin: origin}
}

// DriftReportLimit bounds the items a unit's status lists.
const DriftReportLimit = 20

// DriftReport is items as a unit's status shows them; nil when there are
// none, so that a unit without drift carries no empty report.
func DriftReport(items []drift.Item) *convergev1.DriftReport {
	if len(items) == 0 {
		return nil
	}
	r := &convergev1.DriftReport{Summary: drift.Summary(items), Total: len(items)}
	for _, it := range items {
		if it.Unexplained() {
			r.Unexplained++
		}
		if len(r.Items) == DriftReportLimit {
			continue
		}
		r.Items = append(r.Items, convergev1.DriftItem{Object: it.Object.String(), Path: it.Path, Desired: cut(it.Desired), Live: cut(it.Live),
			Manager: it.Manager, Operation: it.Operation, Subresource: it.Subresource, Time: it.Time,
			Category: string(it.Category), Evidence: it.Evidence, Action: string(it.Action), Rule: it.Rule})
	}
	return r
}

func cut(s string) string {
	if len(s) <= 256 {
		return s
	}
	return s[:253] + "..."
}

// DriftCondition is a unit's Drifted condition message: a count by
// category of the drift no policy rule allows, and the first such field;
// empty when there is none. corrected says a sync took it back.
func DriftCondition(items []drift.Item, corrected bool) string {
	var unexplained []drift.Item
	for _, it := range items {
		if it.Unexplained() {
			unexplained = append(unexplained, it)
		}
	}
	if len(unexplained) == 0 {
		return ""
	}
	s := drift.Summary(unexplained)
	if corrected {
		s += ", taken back"
	}
	return s + "; first: " + unexplained[0].String()
}
