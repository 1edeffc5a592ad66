package webhook

import (
	"net/url"
	"path"
	"strings"

	"converge.dev/converge/internal/source"
)

// Source is what a unit tracks, as the dialect states it.
type Source struct {
	RepoURL string
	// Revision is a branch, tag, commit, semver range, or "" / "HEAD".
	Revision string
	// Path is the unit's folder in the repository.
	Path string
	// Paths, if set, are the only folders whose changes concern the unit
	// (Argo CD's argocd.argoproj.io/manifest-generate-paths: ';'-separated,
	// relative to Path or absolute from the repository root). If empty,
	// any change to the repository does: a kustomize overlay may read
	// ../../base, and a missed refresh is worse than an extra one.
	Paths string
}

// Affects reports whether the push concerns the source: same repository,
// the tracked branch (or the default branch for HEAD, or any tag for a
// tag or semver range), and, with Paths, a changed file under one of them.
func Affects(p Push, s Source) bool {
	if !sameRepo(p.RepoURLs, s.RepoURL) || !sameRevision(p, s.Revision) {
		return false
	}
	if s.Paths == "" || p.Changed == nil {
		return true
	}
	for _, dir := range strings.Split(s.Paths, ";") {
		dir = strings.TrimSpace(dir)
		if dir == "" {
			continue
		}
		if strings.HasPrefix(dir, "/") {
			dir = path.Clean(strings.TrimPrefix(dir, "/"))
		} else {
			dir = path.Join(s.Path, dir)
		}
		for _, f := range p.Changed {
			if dir == "." || f == dir || strings.HasPrefix(f, dir+"/") {
				return true
			}
		}
	}
	return false
}

func sameRevision(p Push, rev string) bool {
	ref := source.ParseRevision(strings.TrimPrefix(strings.TrimPrefix(rev, "refs/heads/"), "refs/tags/"))
	switch {
	case ref.Commit != "":
		return false // a pinned commit never moves
	case strings.HasPrefix(p.Ref, "refs/heads/"):
		branch := strings.TrimPrefix(p.Ref, "refs/heads/")
		if ref == (source.Ref{}) {
			// HEAD: without the default branch named, any branch might be it.
			return p.DefaultBranch == "" || p.DefaultBranch == branch
		}
		return ref.Branch == branch || ref.Name == branch
	case strings.HasPrefix(p.Ref, "refs/tags/"):
		tag := strings.TrimPrefix(p.Ref, "refs/tags/")
		// A semver range may now resolve to the new tag.
		return ref.Tag == tag || ref.Name == tag || ref.SemVer != "" || strings.ContainsAny(ref.Name, "*^~<>=")
	}
	return false
}

// sameRepo compares repository URLs the way people write them: scheme,
// user, a trailing ".git" or "/" and the host's case do not matter, and
// git@host:org/repo is host/org/repo.
func sameRepo(urls []string, repo string) bool {
	want := Canonical(repo)
	for _, u := range urls {
		if Canonical(u) == want {
			return true
		}
	}
	return false
}

// Canonical reduces a repository URL to host/path.
func Canonical(raw string) string {
	s := strings.TrimSpace(raw)
	if !strings.Contains(s, "://") {
		// scp-like: [user@]host:path
		if i := strings.Index(s, ":"); i > 0 {
			s = "ssh://" + s[:i] + "/" + strings.TrimPrefix(s[i+1:], "/")
		}
	}
	u, err := url.Parse(s)
	if err != nil {
		return strings.ToLower(s)
	}
	p := strings.TrimSuffix(strings.TrimSuffix(u.Path, "/"), ".git")
	return strings.ToLower(u.Host) + p
}
