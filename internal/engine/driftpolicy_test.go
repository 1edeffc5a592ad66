package engine

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	convergev1 "converge.dev/converge/internal/api/converge/v1alpha1"
	"converge.dev/converge/internal/drift"
)

// TestDriftPolicyOfMerges: policies that select one unit add up, the
// strictest default wins, the most sensitive fight limit wins, every
// rule names its policy, and an invalid one is an error naming it.
func TestDriftPolicyOfMerges(t *testing.T) {
	p := func(name, def string, reverts int, allow ...string) convergev1.DriftPolicy {
		var rules []convergev1.DriftRule
		for _, a := range allow {
			rules = append(rules, convergev1.DriftRule{Paths: []string{a}})
		}
		var f *convergev1.DriftFight
		if reverts > 0 {
			f = &convergev1.DriftFight{Reverts: reverts}
		}
		return convergev1.DriftPolicy{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"},
			Spec: convergev1.DriftPolicySpec{Default: def, Allow: rules, Fight: f}}
	}
	got, err := DriftPolicyOf([]convergev1.DriftPolicy{p("b", "revert", 4, "/spec/replicas"), p("a", "ignore", 7, "/status")})
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "a+b" || got.Default != drift.Revert || got.Fight.Reverts != 4 || len(got.Allow) != 2 ||
		got.Allow[0].Origin != "DriftPolicy a: allow[0]" || got.Allow[1].Origin != "DriftPolicy b: allow[0]" {
		t.Errorf("merged: %+v", got)
	}
	if got, _ := DriftPolicyOf([]convergev1.DriftPolicy{p("a", "ignore", 0), p("b", "", 0)}); got.Default != drift.Report {
		t.Errorf("ignore and unset (report): default %q, want report", got.Default)
	}
	if got, _ := DriftPolicyOf(nil); got.Name != "" || got.Default != "" {
		t.Errorf("no policy: %+v, want the built-in zero policy", got)
	}
	_, err = DriftPolicyOf([]convergev1.DriftPolicy{p("broken", "", 0, "spec/replicas")})
	if err == nil || !strings.Contains(err.Error(), "DriftPolicy ns/broken: spec.allow[0].paths") {
		t.Errorf("invalid policy: %v", err)
	}
}
