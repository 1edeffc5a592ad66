// Package writeback changes a Git repository the way a person would: it
// clones one branch into a temporary folder, lets the caller edit files
// there, commits, and pushes the commit to a branch of its own for a pull
// request. It never pushes to the branch it cloned.
package writeback

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"

	"converge.dev/converge/internal/redact"
	"converge.dev/converge/internal/source/git"
)

// Checkout is a clone of one branch.
type Checkout struct {
	// Dir is the work tree.
	Dir string
	// Branch is the branch cloned: the pull request's base.
	Branch string
	// Commit is the commit cloned.
	Commit string
	repo   *gogit.Repository
	url    string
	auth   transport.AuthMethod
}

// Clone clones branch (empty: the remote's default) of repoURL into a
// new temporary folder. Close removes it.
func Clone(ctx context.Context, repoURL, branch string, auth git.Auth) (*Checkout, error) {
	am, err := auth.Transport(repoURL)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", redact.URL(repoURL), err)
	}
	dir, err := os.MkdirTemp("", "converge-writeback-")
	if err != nil {
		return nil, err
	}
	o := &gogit.CloneOptions{URL: repoURL, Auth: am, SingleBranch: true, Depth: 1}
	if branch != "" {
		o.ReferenceName = plumbing.NewBranchReferenceName(branch)
	}
	r, err := gogit.PlainCloneContext(ctx, dir, false, o)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("clone %s: %s", redact.URL(repoURL), redact.Message(err.Error()))
	}
	head, err := r.Head()
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("clone %s: %w", redact.URL(repoURL), err)
	}
	return &Checkout{Dir: dir, Branch: head.Name().Short(), Commit: head.Hash().String(), repo: r, url: repoURL, auth: am}, nil
}

// Close removes the work tree.
func (c *Checkout) Close() error { return os.RemoveAll(c.Dir) }

// ErrNothingChanged means the edits left the tree as it was.
var ErrNothingChanged = errors.New("nothing changed")

// CommitAll commits every change in the work tree.
func (c *Checkout) CommitAll(message, name, email string) (string, error) {
	wt, err := c.repo.Worktree()
	if err != nil {
		return "", err
	}
	if err := wt.AddWithOptions(&gogit.AddOptions{All: true}); err != nil {
		return "", fmt.Errorf("git add: %w", err)
	}
	st, err := wt.Status()
	if err != nil {
		return "", err
	}
	if st.IsClean() {
		return "", ErrNothingChanged
	}
	sig := &object.Signature{Name: name, Email: email, When: time.Now()}
	h, err := wt.Commit(message, &gogit.CommitOptions{Author: sig, Committer: sig})
	if err != nil {
		return "", fmt.Errorf("git commit: %w", err)
	}
	return h.String(), nil
}

// Head is the commit checked out now.
func (c *Checkout) Head() (string, error) {
	h, err := c.repo.Head()
	if err != nil {
		return "", err
	}
	return h.Hash().String(), nil
}

// PushBase pushes HEAD to the branch the checkout was cloned from,
// without force: if someone pushed there since, the push fails rather
// than overwrite them. Only an emergency path that a person allowed
// writes to a base branch this way.
func (c *Checkout) PushBase(ctx context.Context) error {
	spec := config.RefSpec(plumbing.NewBranchReferenceName(c.Branch).String() + ":" + plumbing.NewBranchReferenceName(c.Branch).String())
	err := c.repo.PushContext(ctx, &gogit.PushOptions{RemoteName: "origin", RefSpecs: []config.RefSpec{spec}, Auth: c.auth})
	if errors.Is(err, gogit.NoErrAlreadyUpToDate) {
		err = nil
	}
	if err != nil {
		return fmt.Errorf("push %s to %s: %s", c.Branch, redact.URL(c.url), redact.Message(err.Error()))
	}
	return nil
}

// Push pushes HEAD to branch on the remote, replacing what converge
// pushed there before (the branch is converge's own).
func (c *Checkout) Push(ctx context.Context, branch string) error {
	if branch == c.Branch {
		return fmt.Errorf("refusing to push to %s, the branch the change is for: it goes through a pull request", branch)
	}
	// go-git matches a push's source among references by name: HEAD
	// matches none and pushes nothing. The commits are on the local branch.
	spec := config.RefSpec("+" + plumbing.NewBranchReferenceName(c.Branch).String() + ":" + plumbing.NewBranchReferenceName(branch).String())
	err := c.repo.PushContext(ctx, &gogit.PushOptions{RemoteName: "origin", RefSpecs: []config.RefSpec{spec}, Auth: c.auth})
	if errors.Is(err, gogit.NoErrAlreadyUpToDate) {
		err = nil // the branch holds this commit already
	}
	if err != nil {
		return fmt.Errorf("push %s to %s: %s", branch, redact.URL(c.url), redact.Message(err.Error()))
	}
	return nil
}

// PushRefSpec pushes with a refspec of the caller's ("refs/heads/main:
// refs/heads/auto"), as `git push origin <refspec>` does: a leading "+"
// forces.
func (c *Checkout) PushRefSpec(ctx context.Context, refspec string) error {
	spec := config.RefSpec(refspec)
	if err := spec.Validate(); err != nil {
		return fmt.Errorf("refspec %q: %w", refspec, err)
	}
	err := c.repo.PushContext(ctx, &gogit.PushOptions{RemoteName: "origin", RefSpecs: []config.RefSpec{spec}, Auth: c.auth})
	if errors.Is(err, gogit.NoErrAlreadyUpToDate) {
		err = nil
	}
	if err != nil {
		return fmt.Errorf("push %s to %s: %s", refspec, redact.URL(c.url), redact.Message(err.Error()))
	}
	return nil
}
