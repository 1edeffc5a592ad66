package git

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/Masterminds/semver/v3"
	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"

	"converge.dev/converge/internal/redact"
	"converge.dev/converge/internal/source"
)

type freshKey struct{}

// FreshSince returns a context under which a Fetch does not reuse a ref
// resolved before t, even within MaxAge: a refresh seen at t must see the
// remote as it is after t. Unlike Forget, it does not take from others
// what they may share: two hundred Applications refreshed by one push
// to a monorepo each forgot the ref the one before had just resolved,
// and asked the remote one after the other (the repository is locked
// while it is fetched), 24 s for 200. A resolution that began after
// each one's t now serves them all.
func FreshSince(ctx context.Context, t time.Time) context.Context {
	return context.WithValue(ctx, freshKey{}, t)
}

// resolvedKey names a resolution: the repository, the credentials it
// was made with (a fingerprint: a unit without them must ask the remote
// itself, and be refused there), and the ref.
func resolvedKey(repoURL string, ref source.Ref, auth Auth) string {
	h := sha256.New()
	for _, f := range [][]byte{[]byte(auth.Username), []byte(auth.Password), []byte(auth.BearerToken), auth.SSHKey, []byte(auth.SSHUser), auth.KnownHosts} {
		fmt.Fprintf(h, "%d:", len(f))
		h.Write(f)
	}
	return repoURL + "\x00" + hex.EncodeToString(h.Sum(nil)[:12]) + "\x00" + ref.String()
}

// recent returns the commit of the resolution key if it was made within
// MaxAge, and not before the context's FreshSince bound.
func (f *Fetcher) recent(ctx context.Context, key string) (plumbing.Hash, bool) {
	if f.o.MaxAge <= 0 {
		return plumbing.ZeroHash, false
	}
	f.mu.Lock()
	prev, ok := f.resolved[key]
	f.mu.Unlock()
	since, _ := ctx.Value(freshKey{}).(time.Time)
	if !ok || time.Since(prev.at) >= f.o.MaxAge || prev.at.Before(since) {
		return plumbing.ZeroHash, false
	}
	return prev.hash, true
}

// resolve turns ref into a commit present in the local clone, fetching
// only what is missing, shallow where the protocol allows it.
func (f *Fetcher) resolve(ctx context.Context, r *gogit.Repository, key string, ref source.Ref, auth transport.AuthMethod) (plumbing.Hash, error) {
	start := time.Now()
	if hash, ok := f.recent(ctx, key); ok {
		return hash, nil
	}
	var hash plumbing.Hash
	var err error
	if ref.Commit != "" {
		hash, err = f.resolveCommit(ctx, r, ref.Commit, auth)
	} else {
		hash, err = f.resolveRef(ctx, r, ref, auth)
	}
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if f.o.MaxAge > 0 {
		f.mu.Lock()
		f.resolved[key] = resolvedRef{hash: hash, at: start}
		f.mu.Unlock()
	}
	return hash, nil
}

// resolveRef lists the remote's refs (one round trip), picks the wanted
// one and fetches it unless the commit is already here: at depth 1 the
// first time, and after that from the commit the ref held before.
//
// A shallow fetch on top of a shallow clone makes the server send the
// new commit's whole tree again, whatever the clone has: every push to
// a monorepo of 10,000 files fetched and indexed all 10,000. Asking for
// the ref without a depth, with the old tip among the haves, sends only
// what changed since, as Argo CD's plain git fetch does.
func (f *Fetcher) resolveRef(ctx context.Context, r *gogit.Repository, ref source.Ref, auth transport.AuthMethod) (plumbing.Hash, error) {
	remote, err := r.Remote("origin")
	if err != nil {
		return plumbing.ZeroHash, err
	}
	refs, err := remote.ListContext(ctx, &gogit.ListOptions{Auth: auth})
	if err != nil {
		return plumbing.ZeroHash, unreachable(err)
	}
	name, err := pick(refs, ref)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	target := byName(refs)[name]
	if h, err := peel(r, target); err == nil {
		if _, err := r.CommitObject(h); err == nil {
			return h, nil // already here: no fetch
		}
	}
	{
		local := plumbing.ReferenceName("refs/converge/" + strings.TrimPrefix(name.String(), "refs/"))
		spec := config.RefSpec(fmt.Sprintf("+%s:%s", name, local))
		depth := 1
		if _, err := r.Reference(local, false); err == nil {
			depth = 0
		}
		if err := fetch(ctx, r, spec, auth, depth); err != nil {
			return plumbing.ZeroHash, err
		}
	}
	return peel(r, target)
}

// resolveCommit finds a commit by (possibly abbreviated) SHA. Servers do
// not let clients fetch arbitrary SHAs, so this fetches every branch and
// tag in full when the commit is not already here.
func (f *Fetcher) resolveCommit(ctx context.Context, r *gogit.Repository, sha string, auth transport.AuthMethod) (plumbing.Hash, error) {
	if h, err := r.ResolveRevision(plumbing.Revision(sha)); err == nil {
		if _, err := r.CommitObject(*h); err == nil {
			return *h, nil
		}
	}
	for _, spec := range []config.RefSpec{"+refs/heads/*:refs/converge/heads/*", "+refs/tags/*:refs/converge/tags/*"} {
		if err := fetch(ctx, r, spec, auth, 0); err != nil {
			return plumbing.ZeroHash, err
		}
	}
	h, err := r.ResolveRevision(plumbing.Revision(sha))
	if err != nil {
		// The clone is shallow from an earlier depth-1 fetch: the tips
		// are here, so the fetch above found nothing to do, and the
		// history behind them is cut. Deepen it all, as git fetch
		// --unshallow does.
		if shallow, serr := r.Storer.Shallow(); serr == nil && len(shallow) > 0 {
			for _, spec := range []config.RefSpec{"+refs/heads/*:refs/converge/heads/*", "+refs/tags/*:refs/converge/tags/*"} {
				if err := fetch(ctx, r, spec, auth, unshallow); err != nil {
					return plumbing.ZeroHash, err
				}
			}
			h, err = r.ResolveRevision(plumbing.Revision(sha))
		}
	}
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("%w: no commit %s on any branch or tag", ErrRefNotFound, sha)
	}
	return *h, nil
}

// unshallow is the depth git asks for to deepen a shallow clone to its
// full history (git fetch --unshallow).
const unshallow = 1<<31 - 1

func fetch(ctx context.Context, r *gogit.Repository, spec config.RefSpec, auth transport.AuthMethod, depth int) error {
	err := r.FetchContext(ctx, &gogit.FetchOptions{
		RemoteName: "origin",
		RefSpecs:   []config.RefSpec{spec},
		Auth:       auth,
		Depth:      depth,
		Tags:       gogit.NoTags,
		Force:      true,
	})
	if err == nil || errors.Is(err, gogit.NoErrAlreadyUpToDate) {
		return nil
	}
	if depth > 0 {
		// A shallow fetch on top of an older shallow clone can fail on
		// some servers; a full fetch of the same ref always works.
		return fetch(ctx, r, spec, auth, 0)
	}
	return unreachable(err)
}

// peel follows an annotated tag to its commit.
func peel(r *gogit.Repository, h plumbing.Hash) (plumbing.Hash, error) {
	if tag, err := r.TagObject(h); err == nil {
		c, err := tag.Commit()
		if err != nil {
			return plumbing.ZeroHash, fmt.Errorf("tag %s: %w", tag.Name, err)
		}
		return c.Hash, nil
	}
	return h, nil
}

func byName(refs []*plumbing.Reference) map[plumbing.ReferenceName]plumbing.Hash {
	m := map[plumbing.ReferenceName]plumbing.Hash{}
	for _, r := range refs {
		if r.Type() == plumbing.HashReference {
			m[r.Name()] = r.Hash()
		}
	}
	return m
}

// pick chooses the remote ref that ref asks for.
func pick(refs []*plumbing.Reference, ref source.Ref) (plumbing.ReferenceName, error) {
	have := byName(refs)
	try := func(names ...plumbing.ReferenceName) (plumbing.ReferenceName, error) {
		for _, n := range names {
			if _, ok := have[n]; ok {
				return n, nil
			}
		}
		return "", fmt.Errorf("%w: remote has no %s", ErrRefNotFound, ref)
	}
	switch {
	case ref.Branch != "":
		return try(plumbing.NewBranchReferenceName(ref.Branch))
	case ref.Tag != "":
		return try(plumbing.NewTagReferenceName(ref.Tag))
	case ref.Name != "":
		return try(plumbing.NewBranchReferenceName(ref.Name), plumbing.NewTagReferenceName(ref.Name))
	case ref.SemVer != "":
		return pickSemver(have, ref.SemVer)
	}
	// HEAD: the remote usually advertises it as a symbolic ref.
	for _, r := range refs {
		if r.Name() == plumbing.HEAD && r.Type() == plumbing.SymbolicReference {
			return try(r.Target())
		}
	}
	return try(plumbing.HEAD, plumbing.NewBranchReferenceName("main"), plumbing.NewBranchReferenceName("master"))
}

// pickSemver returns the tag with the highest version matching the
// constraint; tags that are not versions are ignored.
func pickSemver(have map[plumbing.ReferenceName]plumbing.Hash, constraint string) (plumbing.ReferenceName, error) {
	c, err := semver.NewConstraint(constraint)
	if err != nil {
		return "", fmt.Errorf("semver range %q: %w", constraint, err)
	}
	type cand struct {
		v    *semver.Version
		name plumbing.ReferenceName
	}
	var cands []cand
	for name := range have {
		if !name.IsTag() {
			continue
		}
		v, err := semver.NewVersion(name.Short())
		if err != nil || !c.Check(v) {
			continue
		}
		cands = append(cands, cand{v, name})
	}
	if len(cands) == 0 {
		return "", fmt.Errorf("%w: no tag matches semver %q", ErrRefNotFound, constraint)
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].v.GreaterThan(cands[j].v) })
	return cands[0].name, nil
}

func shortHash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])[:16]
}

// redactText strips credentials from URLs inside a transport error.
func redactText(s string) string { return redact.Text(s) }
