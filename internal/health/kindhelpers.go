package health

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Helpers for per-kind rules: they read fields leniently, since custom
// resources are not validated the way core kinds are.

// str reads a field as a string; numbers and booleans are formatted.
func str(obj *unstructured.Unstructured, path ...string) string {
	v, ok, _ := unstructured.NestedFieldNoCopy(obj.Object, path...)
	if !ok || v == nil {
		return ""
	}
	if s, ok := v.(string); ok {
		return s
	}
	return fmt.Sprint(v)
}

// num reads a whole number written as an integer or a float.
func num(obj *unstructured.Unstructured, path ...string) (int64, bool) {
	v, ok, _ := unstructured.NestedFieldNoCopy(obj.Object, path...)
	if !ok {
		return 0, false
	}
	switch x := v.(type) {
	case int64:
		return x, true
	case int:
		return int64(x), true
	case float64:
		return int64(x), true
	}
	return 0, false
}

func isTrue(obj *unstructured.Unstructured, path ...string) bool {
	v, _, _ := unstructured.NestedFieldNoCopy(obj.Object, path...)
	b, _ := v.(bool)
	return b
}

func has(obj *unstructured.Unstructured, path ...string) bool {
	v, ok, _ := unstructured.NestedFieldNoCopy(obj.Object, path...)
	return ok && v != nil
}

func noStatus(obj *unstructured.Unstructured) bool {
	st, ok := obj.Object["status"].(map[string]any)
	return !ok || len(st) == 0
}

// conds indexes conditions by type.
type conds map[string]condition

func condsOf(obj *unstructured.Unstructured) conds {
	out := conds{}
	for _, c := range conditions(obj) {
		out[c.Type] = c
	}
	return out
}

func (c conds) is(typ, status string) bool { x, ok := c[typ]; return ok && x.Status == status }

func (c conds) msg(typ string) string { return message(c[typ]) }

// generationBehind reports a status.observedGeneration behind
// metadata.generation.
func generationBehind(obj *unstructured.Unstructured) bool {
	og, ok := num(obj, "status", "observedGeneration")
	gen, _ := num(obj, "metadata", "generation")
	return ok && og < gen
}

// word maps a status word (case-insensitive) with a table, or returns
// false.
func word(w string, table map[string]Status) (Status, bool) {
	st, ok := table[strings.ToLower(w)]
	return st, ok
}

func r(s Status, msg string) (Result, bool) { return Result{s, msg}, true }
