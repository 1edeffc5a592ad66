// Package specfields finds the fields of an object that converge does
// not act on, so that a dialect can name them in a condition instead of
// ignoring them silently.
package specfields

import (
	"sort"
	"strings"
)

// Unknown walks v (an object's spec, as decoded from JSON) and returns
// every field path not covered by known, sorted and without repeats.
//
// Paths are dotted from prefix ("spec.install.remediation.retries");
// the items of a list are written "[]" ("spec.valuesFrom[].kind"). A
// known path covers every field below it; a known path ending in ".*"
// covers what is below its parent. A map or list is walked into only
// when some known path lies inside it, so an unknown field is reported
// at its highest level.
func Unknown(prefix string, v any, known []string) []string {
	w := walker{known: known, seen: map[string]bool{}}
	w.walk(prefix, v)
	sort.Strings(w.out)
	return w.out
}

type walker struct {
	known []string
	seen  map[string]bool
	out   []string
}

func (w *walker) report(p string) {
	if !w.seen[p] {
		w.seen[p] = true
		w.out = append(w.out, p)
	}
}

func (w *walker) walk(p string, v any) {
	if Covers(w.known, p) {
		return
	}
	switch x := v.(type) {
	case map[string]any:
		if !w.inside(p + ".") {
			w.report(p)
			return
		}
		for k, e := range x {
			w.walk(p+"."+k, e)
		}
	case []any:
		if !w.inside(p + "[].") {
			w.report(p)
			return
		}
		for _, e := range x {
			w.walk(p+"[]", e)
		}
	default:
		w.report(p)
	}
}

// inside reports whether a known path starts with p.
func (w *walker) inside(p string) bool {
	for _, k := range w.known {
		if strings.HasPrefix(k, p) {
			return true
		}
	}
	return false
}

// Covers reports whether one of paths is p or lies above it.
func Covers(paths []string, p string) bool {
	for _, k := range paths {
		k = strings.TrimSuffix(k, ".*")
		if k == p || strings.HasPrefix(p, k+".") || strings.HasPrefix(p, k+"[]") {
			return true
		}
	}
	return false
}
