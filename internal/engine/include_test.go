package engine

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"converge.dev/converge/internal/gittest"
	"converge.dev/converge/internal/source/git"
)

func TestCompose(t *testing.T) {
	main := gittest.NewRepo(t, t.TempDir()+"/main.git")
	main.Commit("main", map[string]string{"app/own.yaml": "own", "vendor/lib/kept.txt": "main's"})
	main.Publish()
	lib := gittest.NewRepo(t, t.TempDir()+"/lib.git")
	lib.Commit("lib", map[string]string{"src/a.txt": "a", "src/sub/b.txt": "b", "other.txt": "other"})
	lib.Publish()
	e := New(Options{Fetcher: git.New(git.Options{CacheDir: t.TempDir()}), ComposeDir: t.TempDir()})
	ctx := context.Background()

	cases := []struct {
		name     string
		inc      Include
		files    map[string]string // path in the composed source: content ("" absent)
		errorHas string
	}{
		{name: "folder into folder", inc: Include{FromPath: "src", ToPath: "vendor/lib"},
			files: map[string]string{"vendor/lib/a.txt": "a", "vendor/lib/sub/b.txt": "b", "vendor/lib/kept.txt": "main's",
				"app/own.yaml": "own", "vendor/lib/other.txt": ""}},
		{name: "whole repository", inc: Include{ToPath: "lib"},
			files: map[string]string{"lib/other.txt": "other", "lib/src/a.txt": "a", "lib/.git/HEAD": ""}},
		{name: "toPath leaves the repository", inc: Include{ToPath: "../up"}, errorHas: `toPath "../up" must be a folder inside`},
		{name: "toPath is the root", inc: Include{ToPath: "./"}, errorHas: "must be a folder inside"},
		{name: "fromPath leaves the repository", inc: Include{FromPath: "../../etc", ToPath: "x"}, errorHas: "fromPath"},
		{name: "fromPath is missing", inc: Include{FromPath: "nope", ToPath: "x"}, errorHas: "fromPath"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			inc := tc.inc
			inc.RepoURL = gittest.FileURL(lib.Bare)
			snap, err := e.Snapshot(ctx, Unit{RepoURL: gittest.FileURL(main.Bare), Includes: []Include{inc}})
			if tc.errorHas != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errorHas) {
					t.Fatalf("err %v, want one containing %q", err, tc.errorHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for path, want := range tc.files {
				data, err := os.ReadFile(filepath.Join(snap.Dir, path))
				if want == "" {
					if err == nil {
						t.Errorf("%s is in the composed source", path)
					}
					continue
				}
				if string(data) != want {
					t.Errorf("%s = %q (%v), want %q", path, data, err, want)
				}
			}
		})
	}

	// The composed folder is built once per set of revisions, and the
	// main snapshot is never written to.
	u := Unit{RepoURL: gittest.FileURL(main.Bare), Includes: []Include{{RepoURL: gittest.FileURL(lib.Bare), FromPath: "src", ToPath: "vendor/lib"}}}
	s1, err1 := e.Snapshot(ctx, u)
	s2, err2 := e.Snapshot(ctx, u)
	if err1 != nil || err2 != nil || s1.Dir != s2.Dir {
		t.Errorf("two composes of the same revisions: %s %s (%v %v)", s1.Dir, s2.Dir, err1, err2)
	}
	plain, err := e.Snapshot(ctx, Unit{RepoURL: gittest.FileURL(main.Bare)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(plain.Dir, "vendor/lib/a.txt")); err == nil {
		t.Error("the include was written into the shared main snapshot")
	}
	lib.Commit("lib v2", map[string]string{"src/a.txt": "a2"})
	lib.Publish()
	e.Forget(gittest.FileURL(lib.Bare))
	u.Includes[0].Revision = ""
	s3, err := e.Snapshot(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(filepath.Join(s3.Dir, "vendor/lib/a.txt")); s3.Dir == s1.Dir || string(data) != "a2" {
		t.Errorf("a new included revision: dir %s (was %s), a.txt %q", s3.Dir, s1.Dir, data)
	}
}
