package controller

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestChangedFiles: files added, removed or changed between two
// checkouts, .git left out, a link compared by its target and never
// followed.
func TestChangedFiles(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	write := func(root, name, data string) {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, root := range []string{a, b} {
		write(root, "same.yaml", "x: 1\n")
		write(root, ".git/HEAD", root)
	}
	write(a, "apps/changed.yaml", "image: a\n")
	write(b, "apps/changed.yaml", "image: b\n")
	write(a, "removed.yaml", "x\n")
	write(b, "apps/added/role.yaml", "kind: Role\n")
	if err := os.Symlink("/etc/hostname", filepath.Join(a, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/zero", filepath.Join(b, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("same.yaml", filepath.Join(a, "same-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("same.yaml", filepath.Join(b, "same-link")); err != nil {
		t.Fatal(err)
	}
	got, err := changedFiles(a, b)
	if err != nil {
		t.Fatal(err)
	}
	if want := "apps/added/role.yaml apps/changed.yaml link removed.yaml"; strings.Join(got, " ") != want {
		t.Errorf("got %v, want %s", got, want)
	}
}
