package engine

import "testing"

func TestExcluder(t *testing.T) {
	if excluder(nil) != nil || excluder([]string{"", "# comment"}) != nil {
		t.Error("no patterns must mean no excluder")
	}
	ex := excluder([]string{"# Flux-style ignore", "/docs/", "*.draft.yaml", "!keep.draft.yaml"})
	for _, tc := range []struct {
		path  string
		isDir bool
		want  bool
	}{
		{"docs", true, true},
		{"apps/docs", true, false},
		{"apps/web.yaml", false, false},
		{"apps/web.draft.yaml", false, true},
		{"apps/keep.draft.yaml", false, false},
	} {
		if got := ex(tc.path, tc.isDir); got != tc.want {
			t.Errorf("%s (dir %v): excluded %v, want %v", tc.path, tc.isDir, got, tc.want)
		}
	}
}
