package git

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
)

// Commit is who made a commit, when, and why.
type Commit struct {
	Author  string    `json:"author"`
	Email   string    `json:"email,omitempty"`
	When    time.Time `json:"when"`
	Message string    `json:"message"`
}

// ErrNotCached is a commit the local cache does not hold.
var ErrNotCached = errors.New("not in the local cache")

// Commit reads sha from the local cache of repoURL, never from the
// remote: a page showing history must not wait on a forge. It takes no
// lock: objects, once written, do not change, and a fetch adds packs
// whole.
func (f *Fetcher) Commit(repoURL, sha string) (Commit, error) {
	if !plumbing.IsHash(sha) {
		return Commit{}, fmt.Errorf("git %s: %q is not a commit hash", Redact(repoURL), sha)
	}
	dir := f.repoDir(repoURL)
	if _, err := os.Stat(dir); err != nil {
		return Commit{}, fmt.Errorf("git %s: %w", Redact(repoURL), ErrNotCached)
	}
	st := store(dir)
	defer st.Close()
	r, err := gogit.Open(st, nil)
	if err != nil {
		return Commit{}, fmt.Errorf("git %s: %w", Redact(repoURL), ErrNotCached)
	}
	c, err := r.CommitObject(plumbing.NewHash(sha))
	if err != nil {
		return Commit{}, fmt.Errorf("git %s %s: %w", Redact(repoURL), sha, ErrNotCached)
	}
	return Commit{Author: c.Author.Name, Email: c.Author.Email, When: c.Author.When, Message: strings.TrimSpace(c.Message)}, nil
}
