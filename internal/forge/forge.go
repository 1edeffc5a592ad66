// Package forge opens pull requests on a Git forge. Gitea is the first
// (it runs on loopback in tests, see design/FORGE.md); GitHub and GitLab
// go behind the same interface.
package forge

import (
	"context"
	"errors"
)

// PullRequest is what to open: Head merged into Base.
type PullRequest struct {
	Base, Head  string
	Title, Body string
}

// Opened is an open pull request.
type Opened struct {
	Number int
	URL    string
	// Head is the head branch's commit as the forge sees it.
	Head string
	// Existing is true when one was open for the head already: opening
	// is idempotent, so a retry never opens a second one.
	Existing bool
}

// Forge is a repository on a forge: its pull requests, their reviews,
// and commit statuses.
type Forge interface {
	// Open finds the open pull request from pr.Head, or opens one: a
	// retry never opens a second.
	Open(ctx context.Context, pr PullRequest) (Opened, error)
	// Find finds the open pull request from head, without opening one.
	Find(ctx context.Context, head string) (State, bool, error)
	// Get reads a pull request.
	Get(ctx context.Context, number int) (State, error)
	// SetBody replaces a pull request's body.
	SetBody(ctx context.Context, number int, body string) error
	// SetStatus sets a commit status on sha.
	SetStatus(ctx context.Context, sha string, s Status) error
	// Statuses are the latest status of each context on sha.
	Statuses(ctx context.Context, sha string) ([]Status, error)
	// Reviews are the pull request's reviews.
	Reviews(ctx context.Context, number int) ([]Review, error)
	// Merge merges the pull request if its head is still m.Head. The
	// forge's refusals are ErrChecksPending, ErrNotApproved, ErrHeadMoved
	// and ErrNotOpen, wrapped with its message.
	Merge(ctx context.Context, number int, m Merge) (string, error)
	// Close closes the pull request unmerged, after commenting why.
	Close(ctx context.Context, number int, comment string) error
	// Comment adds a comment.
	Comment(ctx context.Context, number int, text string) error
}

// State is a pull request as the forge has it now.
type State struct {
	Number int
	URL    string
	// Open, or closed: Merged says how.
	Open, Merged bool
	// Head is the head branch's commit; MergeCommit the commit the merge
	// made on the base.
	Head, HeadBranch, MergeCommit string
	// MergeBase is the commit of the base branch the head branched
	// from: what the pull request changes is MergeBase..Head.
	MergeBase string
	Body      string
	// Author is who opened it.
	Author string
	// BaseBranch is the branch it merges into; Title and Labels are as
	// the forge shows them.
	BaseBranch, Title string
	Labels            []string
}

// Status states, as GitHub and Gitea name them.
const (
	StatusPending = "pending"
	StatusSuccess = "success"
	StatusFailure = "failure"
	StatusError   = "error"
)

// Status is a commit status.
type Status struct {
	Context     string
	State       string
	Description string
	TargetURL   string
}

// Review is a pull request review.
type Review struct {
	User string
	// State is APPROVED, REQUEST_CHANGES, COMMENT or PENDING.
	State string
	// Commit is the head it was given on.
	Commit string
	// Dismissed or Stale reviews do not count.
	Dismissed, Stale bool
}

// Merge is how to merge.
type Merge struct {
	// Head guards the merge: the forge refuses it (ErrHeadMoved) if the
	// pull request's head is no longer this commit, so what merges is
	// what the gates saw.
	Head string
	// Style is merge, squash or rebase. If empty, merge.
	Style string
	// Title and Message make the merge commit's message.
	Title, Message string
	// DeleteBranch removes the head branch after the merge.
	DeleteBranch bool
}

// The forge's stable refusals of a merge.
var (
	ErrChecksPending = errors.New("required status checks have not all succeeded")
	ErrNotApproved   = errors.New("not enough approvals")
	ErrHeadMoved     = errors.New("the head moved since it was checked")
	ErrNotOpen       = errors.New("the pull request is not open")
)

// Approvers are the users who approved the current head, the author
// excepted: an author's own approval is no review.
func Approvers(reviews []Review, author string) []string {
	var out []string
	seen := map[string]bool{}
	last := map[string]string{}
	for _, r := range reviews {
		if r.Dismissed || r.Stale || r.State == "COMMENT" || r.State == "PENDING" {
			continue
		}
		last[r.User] = r.State // reviews come oldest first: the last decides
	}
	for _, r := range reviews {
		if last[r.User] == "APPROVED" && r.User != author && !seen[r.User] {
			seen[r.User] = true
			out = append(out, r.User)
		}
	}
	return out
}
