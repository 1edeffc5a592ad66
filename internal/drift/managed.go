package drift

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
	"sigs.k8s.io/structured-merge-diff/v6/value"
)

// Entry is one managedFields entry with its field set parsed.
type Entry struct {
	Manager     string
	Operation   string
	Subresource string
	APIVersion  string
	Time        *metav1.Time
	Fields      *fieldpath.Set
}

// Entries parses obj's managedFields. An entry whose field set does not
// parse is an error naming the manager: a corrupt set would otherwise
// hide who holds what.
func Entries(obj *unstructured.Unstructured) ([]Entry, error) {
	var out []Entry
	for _, mf := range obj.GetManagedFields() {
		s := fieldpath.NewSet()
		if mf.FieldsV1 != nil {
			if err := s.FromJSON(bytes.NewReader(mf.FieldsV1.Raw)); err != nil {
				return nil, fmt.Errorf("managedFields of %q: %w", mf.Manager, err)
			}
		}
		out = append(out, Entry{Manager: mf.Manager, Operation: string(mf.Operation), Subresource: mf.Subresource,
			APIVersion: mf.APIVersion, Time: mf.Time, Fields: s})
	}
	return out, nil
}

// Holder returns the entry, other than self's Apply entry, that holds the
// field whose server-side apply notation is field (as a conflict names
// it), and the field's parsed path.
func Holder(entries []Entry, self, field string) (fieldpath.Path, Entry, bool) {
	for _, e := range entries {
		if e.Manager == self && e.Operation == string(metav1.ManagedFieldsOperationApply) && e.Subresource == "" {
			continue
		}
		var found fieldpath.Path
		e.Fields.Leaves().Iterate(func(p fieldpath.Path) {
			if found == nil && p.String() == field {
				found = p.Copy()
			}
		})
		if found != nil {
			return found, e, true
		}
	}
	return nil, Entry{}, false
}

// Get returns the value at p in obj.
func Get(obj map[string]any, p fieldpath.Path) (any, bool) {
	var cur any = obj
	for _, pe := range p {
		next, ok := step(cur, pe)
		if !ok {
			return nil, false
		}
		cur = next
	}
	return cur, true
}

// Remove deletes the value at p from obj, and maps or list items that
// only held it, so that an apply without the field keeps no empty shell
// of it. A path that is not there changes nothing.
func Remove(obj map[string]any, p fieldpath.Path) {
	parent, last, ok := parentOf(obj, p)
	if !ok {
		return
	}
	switch c := parent.(type) {
	case map[string]any:
		if last.FieldName == nil {
			return
		}
		delete(c, *last.FieldName)
		if len(c) == 0 && len(p) > 1 {
			Remove(obj, p[:len(p)-1])
		}
	case []any:
		i := index(c, last)
		if i < 0 {
			return
		}
		rest := append(append([]any(nil), c[:i]...), c[i+1:]...)
		setAt(obj, p[:len(p)-1], rest)
	}
}

// Leaves lists every leaf path of obj, with list items keyed as
// server-side apply guesses without a schema (by name, or by value).
func Leaves(obj map[string]any) []fieldpath.Path {
	var out []fieldpath.Path
	fieldpath.SetFromValue(value.NewValueInterface(obj)).Leaves().Iterate(func(p fieldpath.Path) {
		out = append(out, p.Copy())
	})
	return out
}

// jsonOf renders a value for an item.
func jsonOf(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

func step(cur any, pe fieldpath.PathElement) (any, bool) {
	switch c := cur.(type) {
	case map[string]any:
		if pe.FieldName == nil {
			return nil, false
		}
		v, ok := c[*pe.FieldName]
		return v, ok
	case []any:
		i := index(c, pe)
		if i < 0 {
			return nil, false
		}
		return c[i], true
	}
	return nil, false
}

// index finds the list item pe names: by position, by key fields or by
// value.
func index(list []any, pe fieldpath.PathElement) int {
	switch {
	case pe.Index != nil:
		if *pe.Index < len(list) {
			return *pe.Index
		}
	case pe.Key != nil:
		for i, item := range list {
			m, ok := item.(map[string]any)
			if ok && keyMatches(m, *pe.Key) {
				return i
			}
		}
	case pe.Value != nil:
		want := (*pe.Value).Unstructured()
		for i, item := range list {
			if value.Equals(value.NewValueInterface(item), value.NewValueInterface(want)) {
				return i
			}
		}
	}
	return -1
}

func keyMatches(m map[string]any, key value.FieldList) bool {
	for _, f := range key {
		v, ok := m[f.Name]
		if !ok || !value.Equals(value.NewValueInterface(v), f.Value) {
			return false
		}
	}
	return true
}

func setAt(obj map[string]any, p fieldpath.Path, v any) {
	parent, last, ok := parentOf(obj, p)
	if !ok {
		return
	}
	switch c := parent.(type) {
	case map[string]any:
		if last.FieldName != nil {
			c[*last.FieldName] = v
		}
	case []any:
		if i := index(c, last); i >= 0 {
			c[i] = v
		}
	}
}

// Pointer spells p as a JSON pointer into obj, list items by their index
// there; false when obj lacks the path.
func Pointer(obj map[string]any, p fieldpath.Path) (string, bool) {
	var b strings.Builder
	var cur any = obj
	for _, pe := range p {
		b.WriteByte('/')
		switch c := cur.(type) {
		case map[string]any:
			if pe.FieldName == nil {
				return "", false
			}
			b.WriteString(strings.NewReplacer("~", "~0", "/", "~1").Replace(*pe.FieldName))
			cur = c[*pe.FieldName]
		case []any:
			i := index(c, pe)
			if i < 0 {
				return "", false
			}
			b.WriteString(strconv.Itoa(i))
			cur = c[i]
		default:
			return "", false
		}
	}
	return b.String(), true
}

// parentOf returns the value holding p's last element, and that element.
func parentOf(obj map[string]any, p fieldpath.Path) (any, fieldpath.PathElement, bool) {
	if len(p) == 0 {
		return nil, fieldpath.PathElement{}, false
	}
	parent, ok := Get(obj, p[:len(p)-1])
	return parent, p[len(p)-1], ok
}
