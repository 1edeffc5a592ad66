package diff

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/itchyny/gojq"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
)

// Ignore says which differences do not count for matching objects, as
// Argo CD's ignoreDifferences does: by JSON pointer, by jq path
// expression, or for every field that some field managers own.
type Ignore struct {
	// Group, Kind, Namespace and Name select objects; empty matches any.
	Group, Kind, Namespace, Name string
	// LabelSelector and AnnotationSelector (label selector syntax)
	// narrow the selection further, as Flux's drift ignore targets do.
	// Empty matches any; a selector that does not parse matches none.
	LabelSelector, AnnotationSelector string
	JSONPointers                      []string
	JQPathExpressions                 []string
	ManagedFieldsManagers             []string
}

// Matches reports whether the rule applies to obj.
func (ig Ignore) Matches(obj *unstructured.Unstructured) bool {
	gvk := obj.GroupVersionKind()
	return (ig.Group == "" || ig.Group == gvk.Group) && (ig.Kind == "" || ig.Kind == gvk.Kind) &&
		(ig.Namespace == "" || ig.Namespace == obj.GetNamespace()) && (ig.Name == "" || ig.Name == obj.GetName()) &&
		selects(ig.LabelSelector, obj.GetLabels()) && selects(ig.AnnotationSelector, obj.GetAnnotations())
}

func selects(selector string, set map[string]string) bool {
	if selector == "" {
		return true
	}
	sel, err := labels.Parse(selector)
	return err == nil && sel.Matches(labels.Set(set))
}

// path is a concrete location: string keys and int list indexes.
type path []any

// ignoredPaths lists the concrete paths the rules ignore in obj; owners
// is the live object whose managedFields say who owns what (it may be obj
// itself, or nil).
func ignoredPaths(obj, owners *unstructured.Unstructured, rules []Ignore) ([]path, error) {
	if obj == nil {
		return nil, nil
	}
	var out []path
	for _, ig := range rules {
		if !ig.Matches(obj) {
			continue
		}
		for _, p := range ig.JSONPointers {
			pp, err := pointerPath(obj.Object, p)
			if err != nil {
				return nil, fmt.Errorf("jsonPointers %q: %w", p, err)
			}
			if pp != nil {
				out = append(out, pp)
			}
		}
		for _, expr := range ig.JQPathExpressions {
			ps, err := jqPaths(obj.Object, expr)
			if err != nil {
				return nil, fmt.Errorf("jqPathExpressions %q: %w", expr, err)
			}
			out = append(out, ps...)
		}
		if owners != nil && len(ig.ManagedFieldsManagers) > 0 {
			out = append(out, managerPaths(obj.Object, owners, ig.ManagedFieldsManagers)...)
		}
	}
	return out, nil
}

// pointerPath resolves an RFC 6901 pointer; nil if it points nowhere.
func pointerPath(obj map[string]any, ptr string) (path, error) {
	if ptr == "" || ptr[0] != '/' {
		return nil, fmt.Errorf("must start with /")
	}
	var p path
	var cur any = obj
	for _, tok := range strings.Split(ptr[1:], "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[tok]
			if !ok {
				return nil, nil
			}
			p, cur = append(p, tok), v
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(c) {
				return nil, nil
			}
			p, cur = append(p, i), c[i]
		default:
			return nil, nil
		}
	}
	return p, nil
}

// jqPaths evaluates path(EXPR) with gojq; a path expression that matches
// nothing yields nothing.
func jqPaths(obj map[string]any, expr string) ([]path, error) {
	q, err := gojq.Parse("path(" + expr + ")")
	if err != nil {
		return nil, err
	}
	// gojq wants plain JSON values: round-trip to turn int64 into numbers.
	data, _ := json.Marshal(obj)
	var in any
	json.Unmarshal(data, &in)
	var out []path
	iter := q.Run(in)
	for {
		v, ok := iter.Next()
		if !ok {
			break
		}
		if err, isErr := v.(error); isErr {
			if strings.Contains(err.Error(), "cannot iterate") || strings.Contains(err.Error(), "expected an object") {
				continue
			}
			return nil, err
		}
		raw, _ := v.([]any)
		p := make(path, 0, len(raw))
		for _, e := range raw {
			if f, isNum := e.(float64); isNum {
				p = append(p, int(f))
			} else {
				p = append(p, e)
			}
		}
		if len(p) > 0 {
			out = append(out, p)
		}
	}
	return out, nil
}

// managerPaths lists the leaf fields that the named managers own in
// owners' managedFields, resolved against obj (list items by their keys).
func managerPaths(obj map[string]any, owners *unstructured.Unstructured, managers []string) []path {
	want := map[string]bool{}
	for _, m := range managers {
		want[m] = true
	}
	var out []path
	for _, mf := range owners.GetManagedFields() {
		if !want[mf.Manager] || mf.FieldsV1 == nil {
			continue
		}
		var tree map[string]any
		if json.Unmarshal(mf.FieldsV1.Raw, &tree) != nil {
			continue
		}
		walkFields(obj, tree, nil, &out)
	}
	return out
}

// walkFields follows a FieldsV1 tree ("f:name", "k:{keys}", "v:value")
// through obj and collects the leaves that exist in obj.
func walkFields(cur any, tree map[string]any, prefix path, out *[]path) {
	for key, sub := range tree {
		if key == "." {
			continue
		}
		child, ok := sub.(map[string]any)
		if !ok {
			continue
		}
		var next any
		var p path
		switch {
		case strings.HasPrefix(key, "f:"):
			m, isMap := cur.(map[string]any)
			if !isMap {
				continue
			}
			v, exists := m[key[2:]]
			if !exists {
				continue
			}
			next, p = v, append(append(path{}, prefix...), key[2:])
		case strings.HasPrefix(key, "k:"):
			var keys map[string]any
			list, isList := cur.([]any)
			if !isList || json.Unmarshal([]byte(key[2:]), &keys) != nil {
				continue
			}
			i := indexByKeys(list, keys)
			if i < 0 {
				continue
			}
			next, p = list[i], append(append(path{}, prefix...), i)
		default:
			continue // v: set members are not followed
		}
		if len(child) == 0 || (len(child) == 1 && child["."] != nil) {
			*out = append(*out, p)
			continue
		}
		walkFields(next, child, p, out)
	}
}

func indexByKeys(list []any, keys map[string]any) int {
	for i, item := range list {
		m, ok := item.(map[string]any)
		if !ok {
			continue
		}
		match := true
		for k, v := range keys {
			if fmt.Sprint(m[k]) != fmt.Sprint(v) {
				match = false
				break
			}
		}
		if match {
			return i
		}
	}
	return -1
}

// get returns the value at p, and whether it exists.
func get(obj any, p path) (any, bool) {
	cur := obj
	for _, e := range p {
		switch k := e.(type) {
		case string:
			m, ok := cur.(map[string]any)
			if !ok {
				return nil, false
			}
			if cur, ok = m[k]; !ok {
				return nil, false
			}
		case int:
			l, ok := cur.([]any)
			if !ok || k >= len(l) {
				return nil, false
			}
			cur = l[k]
		}
	}
	return cur, true
}

// remove deletes the value at p. A list item is blanked rather than
// removed, so that the other paths into the same list stay valid.
func remove(obj any, p path) { write(obj, p, nil, true) }

// set writes v at p, which must exist up to its parent.
func set(obj any, p path, v any) { write(obj, p, v, false) }

func write(obj any, p path, v any, del bool) {
	if len(p) == 0 {
		return
	}
	parent, ok := get(obj, p[:len(p)-1])
	if !ok {
		return
	}
	switch k := p[len(p)-1].(type) {
	case string:
		if m, ok := parent.(map[string]any); ok {
			if del {
				delete(m, k)
			} else {
				m[k] = v
			}
		}
	case int:
		if l, ok := parent.([]any); ok && k < len(l) {
			l[k] = v
		}
	}
}

// Strip removes from obj the fields the rules ignore; owners supplies the
// managedFields for manager rules. obj is modified.
func Strip(obj, owners *unstructured.Unstructured, rules []Ignore) error {
	ps, err := ignoredPaths(obj, owners, rules)
	if err != nil {
		return err
	}
	for _, p := range ps {
		remove(obj.Object, p)
	}
	return nil
}

// Respect makes desired carry live's values wherever the rules ignore a
// difference, so that applying desired never changes an ignored field (as
// Argo CD's RespectIgnoreDifferences sync option does). desired is
// modified; without a live object there is nothing to respect.
func Respect(desired, live *unstructured.Unstructured, rules []Ignore) error {
	if live == nil {
		return nil
	}
	ps, err := ignoredPaths(live, live, rules)
	if err != nil {
		return err
	}
	for _, p := range ps {
		if v, ok := get(live.Object, p); ok {
			if _, parent := get(desired.Object, p[:len(p)-1]); parent {
				set(desired.Object, p, runtime.DeepCopyJSONValue(v))
			}
		}
	}
	return nil
}

// IgnoredPointers lists, as JSON pointers with list indexes, the fields
// of obj that the rules ignore; owners supplies managedFields for
// manager rules. Drift explanation uses it to drop what the unit's
// ignoreDifferences already says does not count.
func IgnoredPointers(obj, owners *unstructured.Unstructured, rules []Ignore) ([]string, error) {
	ps, err := ignoredPaths(obj, owners, rules)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		var b strings.Builder
		for _, e := range p {
			b.WriteByte('/')
			switch k := e.(type) {
			case string:
				b.WriteString(strings.NewReplacer("~", "~0", "/", "~1").Replace(k))
			case int:
				b.WriteString(strconv.Itoa(k))
			}
		}
		out = append(out, b.String())
	}
	return out, nil
}
