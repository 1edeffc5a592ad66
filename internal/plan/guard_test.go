package plan

import (
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"converge.dev/converge/internal/object"
)

// shrink builds a unit that owned `owned` ConfigMaps and now renders the
// first `kept` of them.
func shrink(owned, kept int) (desired []object.Decoded, live map[object.Key]*unstructured.Unstructured, inv []object.Ref) {
	live = map[object.Key]*unstructured.Unstructured{}
	for i := 0; i < owned; i++ {
		c := owned2(cm(fmt.Sprintf("c%03d", i), "1"))
		live[object.RefOf(c).Key()] = c
		inv = append(inv, object.RefOf(c))
		if i < kept {
			desired = append(desired, object.Decoded{Object: owned2(cm(fmt.Sprintf("c%03d", i), "1"))})
		}
	}
	return desired, live, inv
}

func owned2(o *unstructured.Unstructured) *unstructured.Unstructured { return owned(o, "u") }

func count(p Plan, a Action) int {
	n := 0
	for _, s := range p.Steps {
		if s.Action == a {
			n++
		}
	}
	return n
}

func TestPruneBudget(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name          string
		owned, kept   int
		budget        Budget
		wantPruned    int
		wantHeldLimit string
	}{
		{"path restructuring: 199 of 200", 200, 1, Budget{}, 0, "more than 50 objects"},
		{"a quarter exactly is fine", 200, 150, Budget{}, 50, ""},
		{"over the share", 100, 70, Budget{}, 0, "more than 25% of 100"},
		{"small prunes are never held by the share", 4, 2, Budget{}, 2, ""},
		{"three of four is held", 4, 1, Budget{}, 0, "more than 25% of 4"},
		{"budget off", 200, 1, Budget{Off: true}, 199, ""},
		{"own limits", 10, 5, Budget{MaxPercent: 60, MaxObjects: 6}, 5, ""},
		{"approved after the hold began", 200, 1, Budget{HeldSince: t0, Approved: t0.Add(time.Minute)}, 199, ""},
		{"an approval older than the hold approves nothing", 200, 1, Budget{HeldSince: t0, Approved: t0.Add(-time.Minute)}, 0, "more than 50 objects"},
		{"a first hold cannot be approved in advance", 200, 1, Budget{Approved: t0}, 0, "more than 50 objects"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			desired, live, inv := shrink(tt.owned, tt.kept)
			p, err := Make(Input{Unit: "u", Desired: desired, Live: live, Inventory: inv, Prune: true, Budget: tt.budget})
			if err != nil {
				t.Fatal(err)
			}
			if got := count(p, Prune); got != tt.wantPruned {
				t.Errorf("pruned %d, want %d", got, tt.wantPruned)
			}
			switch {
			case tt.wantHeldLimit == "" && p.Held != nil:
				t.Errorf("held (%s), want not held", p.Held.Limit)
			case tt.wantHeldLimit != "" && p.Held == nil:
				t.Errorf("not held, want held for %s", tt.wantHeldLimit)
			case p.Held != nil:
				if p.Held.Limit != tt.wantHeldLimit || len(p.Held.Refs) != tt.owned-tt.kept {
					t.Errorf("held %d for %q, want %d for %q", len(p.Held.Refs), p.Held.Limit, tt.owned-tt.kept, tt.wantHeldLimit)
				}
				if got := count(p, Orphan); got != tt.owned-tt.kept {
					t.Errorf("%d orphans, want every held object kept as one (%d)", got, tt.owned-tt.kept)
				}
				msg := p.Held.Message("apps/orders")
				for _, want := range []string{`path "apps/orders" now renders 1 objects where the unit owns 200`, "ConfigMap/shop/c001", "and 189 more", PruneApprovedAnnotation} {
					if tt.owned == 200 && !strings.Contains(msg, want) {
						t.Errorf("message %q lacks %q", msg, want)
					}
				}
			}
		})
	}
}

func TestProtectedKindsAreNotPruned(t *testing.T) {
	mk := func(apiVersion, kind, ns, name string, ann map[string]string) *unstructured.Unstructured {
		o := &unstructured.Unstructured{Object: map[string]any{"apiVersion": apiVersion, "kind": kind,
			"metadata": map[string]any{"name": name}}}
		if ns != "" {
			o.SetNamespace(ns)
		}
		o = owned(o, "u")
		a := o.GetAnnotations()
		for k, v := range ann {
			a[k] = v
		}
		o.SetAnnotations(a)
		return o
	}
	allow := map[string]string{AllowPruneAnnotation: "true"}
	objs := []*unstructured.Unstructured{
		mk("apiextensions.k8s.io/v1", "CustomResourceDefinition", "", "widgets.example.com", nil),
		mk("v1", "PersistentVolumeClaim", "shop", "data", nil),
		mk("v1", "Namespace", "", "shop", nil),
		mk("apiextensions.k8s.io/v1", "CustomResourceDefinition", "", "gadgets.example.com", allow),
		mk("v1", "PersistentVolumeClaim", "shop", "scratch", allow),
		mk("v1", "Namespace", "", "temp", allow),
		mk("v1", "ConfigMap", "shop", "adopted", map[string]string{AdoptedAnnotation: "u"}),
	}
	live := map[object.Key]*unstructured.Unstructured{}
	var inv []object.Ref
	for _, o := range objs {
		live[object.RefOf(o).Key()] = o
		inv = append(inv, object.RefOf(o))
	}
	p, err := Make(Input{Unit: "u", Live: live, Inventory: inv, Prune: true, Budget: Budget{Off: true}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Action{
		"widgets.example.com": Orphan, "data": Orphan, "shop": Orphan, "adopted": Orphan,
		"gadgets.example.com": Prune, "scratch": Prune, "temp": Prune,
	}
	for _, s := range p.Steps {
		if s.Action != want[s.Ref.Name] {
			t.Errorf("%s: %s (%s), want %s", s.Ref, s.Action, s.Reason, want[s.Ref.Name])
		}
	}
	p, _ = Make(Input{Unit: "u", Live: live, Inventory: inv, Prune: true, Budget: Budget{Off: true}, PruneAdopted: true})
	for _, s := range p.Steps {
		if s.Ref.Name == "adopted" && s.Action != Prune {
			t.Errorf("with PruneAdopted the adopted object is %s", s.Action)
		}
	}
}

func TestNoSilentAdoption(t *testing.T) {
	handMade := cm("settings", "by-hand")
	handMade.SetManagedFields([]metav1.ManagedFieldsEntry{{Manager: "kubectl-create", Operation: metav1.ManagedFieldsOperationUpdate}})
	byConverge := cm("older", "1")
	byConverge.SetManagedFields([]metav1.ManagedFieldsEntry{{Manager: "converge", Operation: metav1.ManagedFieldsOperationApply}})
	optIn := cm("opt-in", "x")
	optIn.SetAnnotations(map[string]string{AdoptAnnotation: "true"})
	live := map[object.Key]*unstructured.Unstructured{}
	for _, o := range []*unstructured.Unstructured{handMade, byConverge, optIn} {
		live[object.RefOf(o).Key()] = o
	}
	var desired []object.Decoded
	for _, n := range []string{"settings", "older", "opt-in"} {
		desired = append(desired, object.Decoded{Object: owned(cm(n, "git"), "u")})
	}
	Adopt("u", desired, live, AdoptOptions{FieldManager: "converge"})
	p, err := Make(Input{Unit: "u", Desired: desired, Live: live})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range p.Steps {
		switch s.Ref.Name {
		case "settings":
			if s.Action != Conflict || !strings.Contains(s.Reason, `created by "kubectl-create"`) {
				t.Errorf("hand-made object: %s %q, want a conflict naming kubectl-create", s.Action, s.Reason)
			}
		case "older", "opt-in":
			if s.Action != Update || s.Desired.GetAnnotations()[AdoptedAnnotation] != "u" {
				t.Errorf("%s: %s, adopted=%q; want an update recorded as adopted", s.Ref.Name, s.Action, s.Desired.GetAnnotations()[AdoptedAnnotation])
			}
		}
	}
	// The unit opting in adopts the hand-made object too.
	desired[0] = object.Decoded{Object: owned(cm("settings", "git"), "u")}
	Adopt("u", desired, live, AdoptOptions{FieldManager: "converge", All: true})
	p, _ = Make(Input{Unit: "u", Desired: desired, Live: live})
	if s := p.Steps[len(p.Steps)-1]; count(p, Conflict) != 0 {
		t.Errorf("with the unit's opt-in: %d conflicts (%s)", count(p, Conflict), s.Reason)
	}
}
