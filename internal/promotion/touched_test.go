package promotion_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"converge.dev/converge/internal/promotion"
)

// TestTouched: each testdata/touched case is a target's render on the
// base branch (before.yaml) and at the pull request head (after.yaml);
// want.txt lists the deletes and the sensitive objects risk: auto counts.
// A changed image alone touches nothing.
func TestTouched(t *testing.T) {
	dirs, err := filepath.Glob("testdata/touched/*")
	if err != nil || len(dirs) == 0 {
		t.Fatal("no cases", err)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			deletes, sensitive := promotion.Touched(objects(t, filepath.Join(dir, "before.yaml")), objects(t, filepath.Join(dir, "after.yaml")), "orders")
			var got strings.Builder
			for _, d := range deletes {
				got.WriteString("delete " + d + "\n")
			}
			for _, s := range sensitive {
				got.WriteString("sensitive " + s + "\n")
			}
			want, err := os.ReadFile(filepath.Join(dir, "want.txt"))
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != string(want) {
				t.Errorf("got:\n%swant:\n%s", got.String(), want)
			}
		})
	}
}
