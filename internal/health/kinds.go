package health

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// kindRule assesses one custom resource kind; false means it has nothing
// to say and the generic rule decides.
type kindRule func(obj *unstructured.Unstructured) (Result, bool)

// byKind holds rules for custom resources whose status the generic
// conditions rule reads wrongly or not at all.
var byKind = map[schema.GroupKind]kindRule{
	{Group: "argoproj.io", Kind: "Application"}: application,
}

func kind(obj *unstructured.Unstructured) (Result, bool) {
	r, ok := byKind[obj.GroupVersionKind().GroupKind()]
	if !ok {
		return Result{}, false
	}
	return r(obj)
}

// application is an Argo CD Application's own health, as its controller
// reports it, so that in an app-of-apps the parent's wave waits for its
// children. A child nobody has reconciled yet is Progressing, never
// Healthy: an empty status is not a verdict.
func application(obj *unstructured.Unstructured) (Result, bool) {
	st, _, _ := unstructured.NestedString(obj.Object, "status", "health", "status")
	msg, _, _ := unstructured.NestedString(obj.Object, "status", "health", "message")
	if st == "" || Status(st) == Unknown {
		// A child that cannot be compared or whose spec is invalid will
		// not get better by waiting: say why, instead of "waiting".
		conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
		for _, c := range conds {
			m, _ := c.(map[string]any)
			typ, _ := m["type"].(string)
			if typ == "ComparisonError" || typ == "InvalidSpecError" {
				text, _ := m["message"].(string)
				return Result{Degraded, typ + ": " + text}, true
			}
		}
	}
	switch Status(st) {
	case "":
		return Result{Progressing, "Waiting for the Application to be reconciled"}, true
	case Missing:
		return Result{Progressing, "Resources not created yet"}, true
	case Healthy, Suspended, Progressing, Degraded, Unknown:
		return Result{Status(st), msg}, true
	}
	return Result{Unknown, "unknown health status " + st}, true
}
