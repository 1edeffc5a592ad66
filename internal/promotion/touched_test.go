package promotion_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"converge.dev/converge/internal/promotion"
	"converge.dev/converge/internal/render"
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
	read := func(t *testing.T, file string) []*unstructured.Unstructured {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		ds, err := render.DecodeManifests(data, file)
		if err != nil {
			t.Fatal(err)
		}
		var out []*unstructured.Unstructured
		for _, d := range ds {
			out = append(out, d.Object)
		}
		return out
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			deletes, sensitive := promotion.Touched(read(t, filepath.Join(dir, "before.yaml")), read(t, filepath.Join(dir, "after.yaml")), "orders")
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
