package git

import (
	"context"
	"testing"

	"converge.dev/converge/internal/gittest"
	"converge.dev/converge/internal/source"
)

// TestPinnedCommitAfterShallowFetch: a commit that is on no branch tip
// is found after the branch was fetched shallowly, over HTTP (a real
// git server) and file://. Rollback to a commit depends on it. Before,
// the full fetch found the tips already here and fetched nothing, and the
// commit was "not on any branch or tag" until the cache was dropped.
func TestPinnedCommitAfterShallowFetch(t *testing.T) {
	srv := gittest.NewServer(t, "alice", "s3cret-pass")
	repo, httpURL := srv.NewRepo(t, "org/pinned.git")
	first := repo.Commit("one", map[string]string{"app/config.yaml": "version: 1\n"})
	repo.Commit("two", map[string]string{"app/config.yaml": "version: 2\n"})
	repo.Commit("three", map[string]string{"app/config.yaml": "version: 3\n"})
	repo.Publish()
	for name, tc := range map[string]struct {
		url  string
		auth Auth
	}{
		"http": {httpURL, Auth{Username: "alice", Password: "s3cret-pass"}},
		"file": {gittest.FileURL(repo.Bare), Auth{}},
	} {
		t.Run(name, func(t *testing.T) {
			f := New(Options{CacheDir: t.TempDir()})
			ctx := context.Background()
			tip, err := f.Fetch(ctx, tc.url, source.Ref{Branch: "main"}, tc.auth)
			if err != nil {
				t.Fatal(err)
			}
			if got := read(t, tip, "app/config.yaml"); got != "version: 3\n" {
				t.Fatalf("tip: %q", got)
			}
			old, err := f.Fetch(ctx, tc.url, source.Ref{Commit: first.String()}, tc.auth)
			if err != nil {
				t.Fatalf("pinned commit after a shallow fetch: %v", err)
			}
			if old.Revision != first.String() || read(t, old, "app/config.yaml") != "version: 1\n" {
				t.Errorf("got %s %q, want %s version 1", old.Revision, read(t, old, "app/config.yaml"), first)
			}
		})
	}
}
