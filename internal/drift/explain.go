package drift

import (
	"fmt"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
	"sigs.k8s.io/structured-merge-diff/v6/value"

	"converge.dev/converge/internal/object"
)

// Input is the evidence about one live object.
type Input struct {
	// Desired is what the unit sends, all its fields.
	Desired *unstructured.Unstructured
	// Live is the object as the server holds it. Required.
	Live *unstructured.Unstructured
	// Predicted is the server's dry run of Desired, nil if there is none.
	Predicted *unstructured.Unstructured
	// Conflicts are the fields a dry run without force named as held by
	// other managers, in server-side apply notation.
	Conflicts []string
	// SameRevision says Desired is what the unit last applied, so that a
	// difference no conflict explains is drift, not a change in Git. If
	// false, or without a prediction, only conflicts and admission are
	// reported.
	SameRevision bool
	// Self is the unit's field manager.
	Self   string
	Policy Policy
	Facts  Facts
}

// Explain returns the object's drifted fields, each decided by the
// policy, and the paths the unit must leave out of its apply because the
// policy gives them to someone else.
func Explain(in Input) ([]Item, []fieldpath.Path, error) {
	entries, err := Entries(in.Live)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", object.RefOf(in.Live), err)
	}
	ref := object.RefOf(in.Live)
	x := explainer{in: in, ref: ref, entries: entries, conflicted: map[string]bool{}}
	for _, field := range in.Conflicts {
		x.conflict(field)
	}
	if in.SameRevision && in.Desired != nil && in.Predicted != nil {
		for _, p := range Leaves(in.Desired.Object) {
			x.unrecorded(p)
		}
	}
	x.admitted("labels")
	x.admitted("annotations")
	return x.items, x.leave, nil
}

type explainer struct {
	in         Input
	ref        object.Ref
	entries    []Entry
	conflicted map[string]bool
	items      []Item
	leave      []fieldpath.Path
}

// conflict explains a field another manager holds with a value other
// than the unit's.
func (x *explainer) conflict(field string) {
	x.conflicted[field] = true
	p, e, ok := Holder(x.entries, x.in.Self, field)
	if !ok {
		x.add(Item{Path: field, Category: Unattributed, Evidence: "the server named a conflict that managedFields do not show"}, nil)
		return
	}
	cat, ev := Classify(e, p, x.in.Policy.Managers)
	x.add(Item{Path: field, Manager: e.Manager, Operation: e.Operation, Subresource: e.Subresource, Time: e.Time,
		Category: cat, Evidence: ev}, p)
}

// unrecorded explains a field of the last apply whose live value differs
// without anyone taking it: removals and admission name nobody.
func (x *explainer) unrecorded(p fieldpath.Path) {
	field := p.String()
	if x.conflicted[field] {
		return
	}
	want, _ := Get(x.in.Desired.Object, p)
	if want == nil {
		return // a null in a manifest asks for nothing
	}
	got, ok := Get(x.in.Live.Object, p)
	_, predicted := Get(x.in.Predicted.Object, p)
	switch {
	case !ok && !predicted:
		// The server drops it on every apply (a Secret's stringData, a
		// field a CRD's schema prunes): nothing drifted.
	case !ok:
		x.add(Item{Path: field, Category: Unattributed, Evidence: "removed from the live object; a removal records no manager"}, p)
	case equal(want, got):
	case x.predictedKeeps(p, got):
		x.add(Item{Path: field, Category: PolicyMutation,
			Evidence: "the server rewrites the applied value and no manager is recorded: mutating admission (or the server's normalization)"}, p)
	default:
		x.add(Item{Path: field, Category: Unattributed, Evidence: "changed live with no managedFields record of the writer"}, p)
	}
}

func (x *explainer) predictedKeeps(p fieldpath.Path, live any) bool {
	v, ok := Get(x.in.Predicted.Object, p)
	return ok && equal(v, live)
}

// serverSet are labels the API server itself writes, with no manager.
var serverSet = map[string]bool{
	"kubernetes.io/metadata.name": true, // every Namespace's own name
}

// admitted explains labels or annotations that are live, not desired, and
// held by nobody: metadata has no defaults, so admission added them.
func (x *explainer) admitted(field string) {
	live, _ := Get(x.in.Live.Object, fieldpath.MakePathOrDie("metadata", field))
	m, _ := live.(map[string]any)
	for k := range m {
		if serverSet[k] {
			continue
		}
		p := fieldpath.MakePathOrDie("metadata", field, k)
		if x.in.Desired != nil {
			if _, ok := Get(x.in.Desired.Object, p); ok {
				continue
			}
		}
		held := false
		for _, e := range x.entries {
			held = held || e.Fields.Has(p)
		}
		if !held {
			x.add(Item{Path: p.String(), Category: PolicyMutation,
				Evidence: "present live with no manager recorded: added by mutating admission"}, p)
		}
	}
}

func (x *explainer) add(it Item, p fieldpath.Path) {
	it.Object, it.fp = x.ref, p
	if p != nil {
		if v, ok := Get(x.in.Live.Object, p); ok {
			it.Live = x.show(p, v)
		}
		if x.in.Desired != nil {
			if v, ok := Get(x.in.Desired.Object, p); ok {
				it.Desired = x.show(p, v)
			}
		}
	}
	x.in.Policy.Decide(&it, p, x.in.Facts)
	if it.Action == Ignore {
		if p != nil {
			x.leave = append(x.leave, p)
		}
		return
	}
	if (it.Action == Allow || it.Action == Override) && p != nil {
		x.leave = append(x.leave, p)
	}
	x.items = append(x.items, it)
}

// show renders a value, masking a Secret's data.
func (x *explainer) show(p fieldpath.Path, v any) string {
	if x.ref.Group == "" && x.ref.Kind == "Secret" && len(p) > 0 && p[0].FieldName != nil &&
		(*p[0].FieldName == "data" || *p[0].FieldName == "stringData") {
		return `"(masked)"`
	}
	return jsonOf(v)
}

// Deleted explains an object the unit applied that is gone at the same
// revision: who deleted it is not recorded anywhere the unit can read.
func Deleted(ref object.Ref, pol Policy) Item {
	it := Item{Object: ref, Category: Unattributed, Evidence: "the object is gone; a deletion records no manager"}
	pol.Decide(&it, nil, Facts{})
	return it
}

// equal compares two JSON values, quantities by amount ("0.5" is "500m").
func equal(a, b any) bool {
	if value.Equals(value.NewValueInterface(a), value.NewValueInterface(b)) {
		return true
	}
	sa, okA := a.(string)
	sb, okB := b.(string)
	if okA && okB {
		qa, errA := resource.ParseQuantity(sa)
		qb, errB := resource.ParseQuantity(sb)
		return errA == nil && errB == nil && qa.Cmp(qb) == 0
	}
	return false
}
