package health

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestChildApplication: in an app-of-apps, a child Application that has
// no health yet is Progressing, but one that cannot be compared, or whose
// spec is invalid, is Degraded naming the condition; before, it showed as
// "Progressing: Waiting for the Application to be reconciled".
func TestChildApplication(t *testing.T) {
	app := func(status map[string]any) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
			"metadata": map[string]any{"name": "child"}, "status": status}}
	}
	cond := func(typ, msg string) []any { return []any{map[string]any{"type": typ, "message": msg}} }
	for _, tc := range []struct {
		name   string
		status map[string]any
		want   Result
	}{
		{"not reconciled yet", map[string]any{}, Result{Progressing, "Waiting for the Application to be reconciled"}},
		{"comparison error", map[string]any{"conditions": cond("ComparisonError", "render apps/x: not a folder")},
			Result{Degraded, "ComparisonError: render apps/x: not a folder"}},
		{"invalid spec, health Unknown", map[string]any{"health": map[string]any{"status": "Unknown"},
			"conditions": cond("InvalidSpecError", "application references project p which does not exist")},
			Result{Degraded, "InvalidSpecError: application references project p which does not exist"}},
		{"healthy with a stale warning", map[string]any{"health": map[string]any{"status": "Healthy"},
			"conditions": cond("ComparisonError", "old")}, Result{Healthy, ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := Assess(app(tc.status))
			if !ok || got != tc.want {
				t.Errorf("got %v %+v, want %+v", ok, got, tc.want)
			}
		})
	}
}
