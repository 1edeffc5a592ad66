package controlplane

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLocateFindsNestedModule(t *testing.T) {
	t.Setenv(SourceEnv, "")
	dir, err := Locate()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "kubelet.go")); err != nil {
		t.Errorf("Locate() = %s, which has no kubelet.go: %v", dir, err)
	}
}

func TestLocateRejectsForeignModule(t *testing.T) {
	dir := t.TempDir()
	writeModule(t, dir, "module example.com/other\n", "package main\nfunc main() {}\n")
	t.Setenv(SourceEnv, dir)
	if _, err := Locate(); err == nil || !strings.Contains(err.Error(), "is not module "+ModulePath) {
		t.Errorf("Locate() with a foreign go.mod: got %v, want an error naming %s", err, ModulePath)
	}
}

func TestSourceHashFollowsSources(t *testing.T) {
	dir := t.TempDir()
	writeModule(t, dir, "module "+ModulePath+"\n", "package main\nfunc main() {}\n")
	h1, err := sourceHash(dir)
	if err != nil {
		t.Fatal(err)
	}
	// A test file does not change the binary, so not the hash either.
	os.WriteFile(filepath.Join(dir, "main_test.go"), []byte("package main\n"), 0o644)
	if h2, _ := sourceHash(dir); h2 != h1 {
		t.Errorf("hash changed after adding a _test.go file: %s -> %s", h1, h2)
	}
	os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\nfunc main() { println() }\n"), 0o644)
	if h3, _ := sourceHash(dir); h3 == h1 {
		t.Errorf("hash unchanged after editing main.go: %s", h3)
	}
}

// TestEnsureBuildsOnceThenCaches builds a tiny module through the same path
// the real control plane takes: a first call builds and reports progress,
// a second finds the cached binary without building.
func TestEnsureBuildsOnceThenCaches(t *testing.T) {
	src, cache := t.TempDir(), t.TempDir()
	writeModule(t, src, "module "+ModulePath+"\n\ngo 1.26\n", "package main\nfunc main() {}\n")
	var out bytes.Buffer
	o := Options{SourceDir: src, CacheDir: cache, Progress: &out, ProgressEvery: 10 * time.Millisecond}
	bin, err := Ensure(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(bin); err != nil || fi.Mode()&0o111 == 0 {
		t.Fatalf("Ensure() = %s, not an executable: %v", bin, err)
	}
	if !strings.Contains(out.String(), "building the Kubernetes control plane") || !strings.Contains(out.String(), "built the control plane in") {
		t.Errorf("first Ensure progress: got %q, want start and end lines", out.String())
	}
	out.Reset()
	again, err := Ensure(context.Background(), o)
	if err != nil || again != bin {
		t.Fatalf("second Ensure: got %s, %v; want %s", again, err, bin)
	}
	if out.Len() != 0 {
		t.Errorf("second Ensure built again: %q", out.String())
	}
}

func TestEnsureReportsBuildFailureWithLogTail(t *testing.T) {
	src, cache := t.TempDir(), t.TempDir()
	writeModule(t, src, "module "+ModulePath+"\n\ngo 1.26\n", "package main\nfunc main() { undefinedThing() }\n")
	_, err := Ensure(context.Background(), Options{SourceDir: src, CacheDir: cache})
	var be *BuildError
	if !errors.As(err, &be) {
		t.Fatalf("Ensure() on broken source: got %v, want a *BuildError", err)
	}
	if !strings.Contains(be.Tail, "undefinedThing") || !strings.Contains(err.Error(), be.Log) {
		t.Errorf("build error: got %q, want the compiler's message and the log path", err)
	}
	matches, _ := filepath.Glob(filepath.Join(cache, "*", BinaryName))
	if len(matches) != 0 {
		t.Errorf("a failed build left a binary: %v", matches)
	}
}

func writeModule(t *testing.T, dir, gomod, main string) {
	t.Helper()
	for name, data := range map[string]string{"go.mod": gomod, "go.sum": "", "main.go": main} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
