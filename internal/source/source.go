// Package source defines what the engine needs from a source of desired
// state: a revision, resolved to an immutable identifier, and a read-only
// directory holding the files at that revision. Implementations (Git, OCI,
// Helm repositories) live in sub-packages.
package source

import (
	"errors"
	"fmt"
)

// Snapshot is the content of a source at one revision.
type Snapshot struct {
	// Revision identifies the content exactly: a commit SHA for Git.
	Revision string
	// Dir holds the files. Callers must not write to it: snapshots are
	// cached and shared between units.
	Dir string
}

// Ref selects a revision. At most one field may be set; the zero Ref means
// the source's default (HEAD of the default branch for Git).
type Ref struct {
	Branch string
	Tag    string
	// SemVer is a constraint over tags ("1.2.x", ">=1.0.0 <2.0.0"); the
	// highest matching tag wins.
	SemVer string
	// Commit is a full or abbreviated commit SHA.
	Commit string
	// Name is a branch or a tag, tried in that order, as Argo CD resolves
	// targetRevision.
	Name string
}

// String names the ref as a user wrote it, for errors and status.
func (r Ref) String() string {
	switch {
	case r.Commit != "":
		return "commit " + r.Commit
	case r.SemVer != "":
		return "semver " + r.SemVer
	case r.Tag != "":
		return "tag " + r.Tag
	case r.Branch != "":
		return "branch " + r.Branch
	case r.Name != "":
		return r.Name
	}
	return "HEAD"
}

// Validate checks that at most one selector is set.
func (r Ref) Validate() error {
	n := 0
	for _, s := range []string{r.Branch, r.Tag, r.SemVer, r.Commit, r.Name} {
		if s != "" {
			n++
		}
	}
	if n > 1 {
		return fmt.Errorf("ref: set only one of branch, tag, semver, commit and name")
	}
	return nil
}

// ErrUnreachable marks a source that could not be contacted: callers keep
// the last applied state and prune nothing.
var ErrUnreachable = errors.New("source unreachable")

// ParseRevision turns a CLI --revision into a Ref: "" is HEAD, a 7 to 40
// character hex string is a commit, "semver:<range>" a semver range,
// "tag:<name>" a tag, "branch:<name>" a branch, and anything else a branch
// or tag by name.
func ParseRevision(s string) Ref {
	switch {
	case s == "" || s == "HEAD":
		return Ref{}
	case len(s) > 7 && s[:7] == "semver:":
		return Ref{SemVer: s[7:]}
	case len(s) > 4 && s[:4] == "tag:":
		return Ref{Tag: s[4:]}
	case len(s) > 7 && s[:7] == "branch:":
		return Ref{Branch: s[7:]}
	case isHex(s) && len(s) >= 7 && len(s) <= 40:
		return Ref{Commit: s}
	}
	return Ref{Name: s}
}

func isHex(s string) bool {
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
