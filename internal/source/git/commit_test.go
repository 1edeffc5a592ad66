package git_test

import (
	"context"
	"errors"
	"testing"

	"converge.dev/converge/internal/gittest"
	"converge.dev/converge/internal/source"
	"converge.dev/converge/internal/source/git"
)

func TestCommitFromCache(t *testing.T) {
	repo := gittest.NewRepo(t, t.TempDir()+"/apps.git")
	sha := repo.Commit("Scale web to 3\n\nFor the sale.", map[string]string{"web.yaml": "kind: ConfigMap\n"})
	repo.Publish()
	url := gittest.FileURL(repo.Bare)
	f := git.New(git.Options{CacheDir: t.TempDir()})
	if _, err := f.Commit(url, sha.String()); !errors.Is(err, git.ErrNotCached) {
		t.Errorf("before any fetch: %v, want ErrNotCached", err)
	}
	if _, err := f.Fetch(context.Background(), url, source.Ref{Branch: "main"}, git.Auth{}); err != nil {
		t.Fatal(err)
	}
	c, err := f.Commit(url, sha.String())
	if err != nil {
		t.Fatal(err)
	}
	if c.Author != "test" || c.Message != "Scale web to 3\n\nFor the sale." || c.When.IsZero() {
		t.Errorf("commit %+v", c)
	}
	if _, err := f.Commit(url, "0123456789012345678901234567890123456789"); !errors.Is(err, git.ErrNotCached) {
		t.Errorf("an unknown commit: %v", err)
	}
	if _, err := f.Commit(url, "main"); err == nil {
		t.Error("a branch name was taken for a commit")
	}
}
