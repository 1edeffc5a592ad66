// Package drift explains, field by field, how a live object differs from
// what Git says: who holds each drifted field (from managedFields), which
// of the seed's drift categories it falls in and on what evidence, and
// what a DriftPolicy does about it. It is pure: the live object, the
// server's conflict list and the dry-run prediction come from the caller.
//
// What it rests on is measured in design/MANAGEDFIELDS.md: manager names
// are what clients say about themselves, removals and admission
// mutations name nobody, and an HPA writes as kube-controller-manager on
// the scale subresource. An item says which evidence it used and never
// names a writer the evidence does not.
package drift

import (
	"fmt"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"

	"converge.dev/converge/internal/object"
)

// Category is one of the seed's drift types (§8), plus unattributed for
// changes no evidence ties to anybody.
type Category string

// The categories.
const (
	ControllerManaged Category = "controller-managed"
	PolicyMutation    Category = "policy-mutation"
	CloudProvider     Category = "cloud-provider"
	EmergencyManual   Category = "emergency-manual"
	Unauthorized      Category = "unauthorized"
	Unattributed      Category = "unattributed"
)

var categories = []Category{ControllerManaged, PolicyMutation, CloudProvider, EmergencyManual, Unauthorized, Unattributed}

// Action is what is done about a drifted field.
type Action string

// The actions.
const (
	// Revert: Git's value is applied again at once, even when the unit
	// does not heal itself (a forbid rule, or default: revert).
	Revert Action = "revert"
	// Report: the drift is shown and counts as unexplained; a sync of the
	// unit takes the field back, but the drift alone does not start one.
	Report Action = "report"
	// Allow: expected drift, left as it is live, never reverted or
	// alerted. The field is not sent, so it is never a conflict either.
	Allow Action = "allow"
	// Ignore: like Allow, and not listed at all.
	Ignore Action = "ignore"
	// Override: an emergency override holds the field until it expires.
	Override Action = "override"
)

// Item is one drifted field of one object.
type Item struct {
	Object object.Ref `json:"object"`
	// Path is the field in server-side apply's notation
	// (.spec.template.spec.containers[name="app"].image); empty when the
	// whole object is missing.
	Path string `json:"path"`
	// Desired and Live are the values as JSON; empty when absent. A
	// Secret's data is masked.
	Desired string `json:"desired,omitempty"`
	Live    string `json:"live,omitempty"`
	// Manager, Operation and Subresource name the managedFields entry
	// that holds the field live; empty when none does.
	Manager     string `json:"manager,omitempty"`
	Operation   string `json:"operation,omitempty"`
	Subresource string `json:"subresource,omitempty"`
	// Time is when that manager last changed anything on the object (a
	// managedFields entry has one time, not one per field); nil when the
	// entry records none, as scale entries do.
	Time     *metav1.Time `json:"time,omitempty"`
	Category Category     `json:"category"`
	// Evidence says what the category rests on.
	Evidence string `json:"evidence"`
	Action   Action `json:"action"`
	// Rule names the policy rule that chose the action, or "default".
	Rule string `json:"rule,omitempty"`

	fp fieldpath.Path
}

// FieldPath is the item's field as a structured path; nil for a deleted
// object.
func (it Item) FieldPath() fieldpath.Path { return it.fp }

// Under reports whether the item's field is at or under one of the JSON
// pointers (list items by their index in obj).
func (it Item) Under(obj map[string]any, pointers []string) bool {
	if it.fp == nil || len(pointers) == 0 {
		return false
	}
	ptr, ok := Pointer(obj, it.fp)
	if !ok {
		return false
	}
	for _, p := range pointers {
		if ptr == p || strings.HasPrefix(ptr, p+"/") {
			return true
		}
	}
	return false
}

// String is a one-line account of the item.
func (it Item) String() string {
	who := "nobody recorded"
	if it.Manager != "" {
		who = fmt.Sprintf("%q", it.Manager)
		if it.Subresource != "" {
			who += " on /" + it.Subresource
		}
	}
	path := it.Path
	if path == "" {
		path = "(object)"
	}
	return fmt.Sprintf("%s %s: %s by %s, %s", it.Object, path, it.Category, who, it.Action)
}

// Unexplained reports whether the item is drift that no policy rule or
// override accounts for: what `converge drift` exits 1 on.
func (it Item) Unexplained() bool {
	return it.Action == Revert || it.Action == Report
}

// Sort orders items by object, then path, for stable output.
func Sort(items []Item) {
	sort.SliceStable(items, func(i, j int) bool {
		a, b := items[i], items[j]
		if ka, kb := a.Object.String(), b.Object.String(); ka != kb {
			return ka < kb
		}
		return a.Path < b.Path
	})
}

// Summary is a one-line count of items by category, for a condition.
func Summary(items []Item) string {
	if len(items) == 0 {
		return "no drift"
	}
	counts := map[Category]int{}
	var order []Category
	for _, it := range items {
		if counts[it.Category] == 0 {
			order = append(order, it.Category)
		}
		counts[it.Category]++
	}
	sort.Slice(order, func(i, j int) bool { return order[i] < order[j] })
	s := fmt.Sprintf("%d drifted field(s):", len(items))
	for i, c := range order {
		if i > 0 {
			s += ","
		}
		s += fmt.Sprintf(" %d %s", counts[c], c)
	}
	return s
}
