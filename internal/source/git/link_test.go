package git

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"converge.dev/converge/internal/source"
)

// TestCheckoutLinksUnchangedFiles: the checkout of a new revision links
// the files the last one holds alike and writes the rest; a changed
// file, a mode change and a new file are written, a removed file is not
// there, and the old tree is left exactly as it was. When the base is
// gone, or a file in it is, the checkout is written all the same.
func TestCheckoutLinksUnchangedFiles(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("checkouts link files on Linux only")
	}
	work := t.TempDir()
	bare := filepath.Join(t.TempDir(), "mono.git")
	gitCmd(t, work, nil, "init", "-q", "-b", "main")
	write := func(name, content string, mode os.FileMode) {
		t.Helper()
		p := filepath.Join(work, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	commit := func(msg string) string {
		t.Helper()
		gitCmd(t, work, nil, "add", "-A")
		gitCmd(t, work, nil, "commit", "-q", "-m", msg)
		return gitCmd(t, work, nil, "rev-parse", "HEAD")
	}
	write("a/same.yaml", "same: 1\n", 0o644)
	write("a/changed.yaml", "v: 1\n", 0o644)
	write("b/gone.yaml", "gone: 1\n", 0o644)
	write("run.sh", "echo hi\n", 0o644)
	write("c/deep/x.yaml", "x: 1\n", 0o644)
	first := commit("one")
	write("a/changed.yaml", "v: 2\n", 0o644)
	os.RemoveAll(filepath.Join(work, "b"))
	write("run.sh", "echo hi\n", 0o755) // same blob, new mode
	write("new.yaml", "new: 1\n", 0o644)
	second := commit("two")
	write("a/changed.yaml", "v: 3\n", 0o644)
	third := commit("three")
	gitCmd(t, work, nil, "clone", "-q", "--bare", work, bare)

	f := New(Options{CacheDir: t.TempDir(), MaxTrees: -1})
	fetch := func(sha string) string {
		t.Helper()
		snap, err := f.Fetch(context.Background(), "file://"+bare, source.Ref{Commit: sha}, Auth{})
		if err != nil {
			t.Fatal(err)
		}
		return snap.Dir
	}
	same := func(a, b string) bool {
		t.Helper()
		x, err := os.Lstat(a)
		if err != nil {
			t.Fatal(err)
		}
		y, err := os.Lstat(b)
		if err != nil {
			t.Fatal(err)
		}
		return os.SameFile(x, y)
	}
	content := func(dir, name string) string {
		t.Helper()
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}

	one := fetch(first)
	before := snapshotDirTree(t, one)
	two := fetch(second)
	for _, name := range []string{"a/same.yaml", "c/deep/x.yaml"} {
		if !same(filepath.Join(one, name), filepath.Join(two, name)) {
			t.Errorf("%s is the same blob in both revisions but was written again", name)
		}
	}
	for _, name := range []string{"a/changed.yaml", "run.sh"} {
		if same(filepath.Join(one, name), filepath.Join(two, name)) {
			t.Errorf("%s changed (content or mode) but was linked", name)
		}
	}
	if got := content(two, "a/changed.yaml"); got != "v: 2\n" {
		t.Errorf("a/changed.yaml = %q", got)
	}
	if got := content(two, "new.yaml"); got != "new: 1\n" {
		t.Errorf("new.yaml = %q", got)
	}
	if fi, err := os.Stat(filepath.Join(two, "run.sh")); err != nil || fi.Mode().Perm()&0o100 == 0 {
		t.Errorf("run.sh should be executable in the second revision: %v %v", fi.Mode(), err)
	}
	if _, err := os.Lstat(filepath.Join(two, "b")); !os.IsNotExist(err) {
		t.Errorf("b/ was removed in Git but is in the checkout: %v", err)
	}
	if after := snapshotDirTree(t, one); after != before {
		t.Errorf("the base tree changed:\n%s\nwas:\n%s", after, before)
	}

	// A file of the base gone: that one is written, the rest linked.
	if err := os.Remove(filepath.Join(two, "a/same.yaml")); err != nil {
		t.Fatal(err)
	}
	three := fetch(third)
	if got := content(three, "a/same.yaml"); got != "same: 1\n" {
		t.Errorf("a/same.yaml = %q after its base file went", got)
	}
	if !same(filepath.Join(two, "new.yaml"), filepath.Join(three, "new.yaml")) {
		t.Error("new.yaml was not linked from the second revision")
	}
	if got := content(three, "a/changed.yaml"); got != "v: 3\n" {
		t.Errorf("a/changed.yaml = %q", got)
	}

	// The base collected: the next checkout is written whole.
	if err := os.RemoveAll(three); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(one); err != nil {
		t.Fatal(err)
	}
	again := fetch(first)
	if got := content(again, "a/same.yaml"); got != "same: 1\n" {
		t.Errorf("a/same.yaml = %q with no base", got)
	}
	if got := content(again, "b/gone.yaml"); got != "gone: 1\n" {
		t.Errorf("b/gone.yaml = %q with no base", got)
	}
}
