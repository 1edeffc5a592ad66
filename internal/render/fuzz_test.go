package render

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzJoin: whatever path a unit names, Join either refuses it or returns
// a path that, with every link resolved, stays inside the root.
func FuzzJoin(f *testing.F) {
	root := f.TempDir()
	outside := f.TempDir()
	for _, d := range []string{"apps/orders", "apps/web"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			f.Fatal(err)
		}
	}
	// Links of every kind: out of the root, inside it, and dangling.
	os.Symlink(outside, filepath.Join(root, "apps", "out"))
	os.Symlink("../web", filepath.Join(root, "apps", "orders", "sibling"))
	os.Symlink("/", filepath.Join(root, "slash"))
	os.Symlink("nowhere", filepath.Join(root, "dangling"))
	for _, s := range []string{"apps/orders", "../x", "/etc", "apps/out", "apps/out/..", "apps/orders/sibling",
		"slash/etc", "./apps//web/", "apps/../../" + filepath.Base(outside), "dangling", ""} {
		f.Add(s)
	}
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, path string) {
		got, err := Join(root, path)
		if err != nil {
			return
		}
		real, err := filepath.EvalSymlinks(got)
		if err != nil {
			return // does not exist: nothing can be read through it
		}
		if real != realRoot && !strings.HasPrefix(real, realRoot+string(filepath.Separator)) {
			t.Errorf("Join(%q) = %s, which resolves to %s outside the root", path, got, real)
		}
	})
}
