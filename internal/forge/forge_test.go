package forge_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"converge.dev/converge/internal/forge"
	"converge.dev/converge/internal/forgetest"
	"converge.dev/converge/internal/source/git"
	"converge.dev/converge/internal/writeback"
)

// TestOpenOnGitea clones a real Gitea repository, commits a change,
// pushes it to a branch of its own, opens a pull request from it, and
// finds that one again rather than opening a second.
func TestOpenOnGitea(t *testing.T) {
	f := forgetest.Start(t)
	repo := f.CreateRepo(t, "app")
	repo.Push("init", map[string]string{"a.txt": "one\n"})
	ctx := context.Background()
	auth := git.Auth{Username: f.User, Password: f.Token}
	co, err := writeback.Clone(ctx, repo.CloneURL, "", auth)
	if err != nil {
		t.Fatal(err)
	}
	defer co.Close()
	if co.Branch != "main" {
		t.Errorf("cloned %s, want the default branch main", co.Branch)
	}
	if _, err := co.CommitAll("nothing", "converge", "c@localhost"); err != writeback.ErrNothingChanged {
		t.Errorf("commit of a clean tree: %v", err)
	}
	if err := os.WriteFile(filepath.Join(co.Dir, "a.txt"), []byte("two\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := co.CommitAll("change a", "converge", "c@localhost"); err != nil {
		t.Fatal(err)
	}
	if err := co.Push(ctx, "main"); err == nil || !strings.Contains(err.Error(), "pull request") {
		t.Errorf("push to the base branch: %v", err)
	}
	if err := co.Push(ctx, "converge/change-a"); err != nil {
		t.Fatal(err)
	}
	g, err := forge.NewGitea(repo.CloneURL, f.Token)
	if err != nil {
		t.Fatal(err)
	}
	head, err := co.Head()
	if err != nil {
		t.Fatal(err)
	}
	f.WaitBranch(t, "app", "converge/change-a", head)
	pr, err := g.Open(ctx, forge.PullRequest{Base: "main", Head: "converge/change-a", Title: "Change a", Body: "why"})
	if err != nil {
		t.Fatal(err)
	}
	if pr.Number != 1 || pr.Existing || !strings.HasPrefix(pr.URL, f.URL) {
		t.Errorf("opened %+v", pr)
	}
	again, err := g.Open(ctx, forge.PullRequest{Base: "main", Head: "converge/change-a", Title: "Change a", Body: "why"})
	if err != nil || again.Number != 1 || !again.Existing {
		t.Errorf("second open: %+v %v", again, err)
	}
}

func TestNewGiteaParsesCloneURL(t *testing.T) {
	g, err := forge.NewGitea("https://git.example.com/sub/team/app.git", "")
	if err != nil || g.API != "https://git.example.com/sub/api/v1" || g.Owner != "team" || g.Repo != "app" {
		t.Errorf("%+v %v", g, err)
	}
	if _, err := forge.NewGitea("file:///srv/app.git", ""); err == nil {
		t.Error("a file URL is no forge")
	}
}
