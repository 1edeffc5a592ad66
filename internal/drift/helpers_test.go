package drift

import (
	"sort"

	"converge.dev/converge/internal/object"
)

func sorted(s []string) []string {
	s = append([]string(nil), s...)
	sort.Strings(s)
	return s
}

func refOf(group, kind string) object.Ref {
	return object.Ref{Group: group, Version: "v1", Kind: kind, Namespace: "n", Name: "x"}
}

func findItem(items []Item, path string) (Item, bool) {
	for _, it := range items {
		if it.Path == path {
			return it, true
		}
	}
	return Item{}, false
}
