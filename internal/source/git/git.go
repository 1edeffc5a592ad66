// Package git fetches revisions of Git repositories with go-git, over
// https (basic auth or token), ssh (key and known_hosts) and file://.
//
// Each repository URL has one bare clone in the cache; each commit is
// materialised once into a read-only tree shared by every unit that uses
// it, so many units in one monorepo cost one fetch.
package git

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-billy/v5/osfs"
	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage/filesystem"
	"github.com/gofrs/flock"

	"converge.dev/converge/internal/redact"
	"converge.dev/converge/internal/source"
)

// Options configure a Fetcher.
type Options struct {
	// CacheDir holds bare clones and materialised trees. Required.
	CacheDir string
	// Timeout bounds one Fetch, network and checkout included. If zero,
	// two minutes.
	Timeout time.Duration
	// MaxTrees bounds how many commit trees the cache keeps. When a new
	// one is written, the least recently used beyond MaxTrees are
	// removed, but never one used within the last hour, since a render
	// may be reading it. Zero means 64; negative keeps every tree.
	MaxTrees int
	// MaxCloneBytes bounds one repository's bare clone. Each fetch of a
	// new revision adds a pack, and nothing in go-git collects them; a
	// clone over the bound is dropped and fetched again at the wanted
	// revision only. A repository bigger than the bound on its own may
	// grow to twice its fresh size before it is dropped again. Zero
	// means 1 GiB; negative keeps everything.
	MaxCloneBytes int64
	// MaxAge lets a ref resolved less than MaxAge ago be reused without
	// asking the remote again, so that units sharing a repository in one
	// reconcile round cost one round trip. If zero, every Fetch asks.
	MaxAge time.Duration
}

// Fetcher fetches Git revisions. It is safe for concurrent use, also
// across processes sharing CacheDir.
type Fetcher struct {
	o Options

	private  sync.Once
	mu       sync.Mutex
	urlLocks map[string]*sync.Mutex
	resolved map[string]resolvedRef // the time is when the resolution began
	// last is the commit each repository's newest checkout holds: the
	// next checkout links the files it shares with it.
	last map[string]plumbing.Hash
}

type resolvedRef struct {
	hash plumbing.Hash
	at   time.Time
}

// ErrRefNotFound means the remote has no ref or tag matching the request.
var ErrRefNotFound = errors.New("revision not found")

// New returns a Fetcher.
func New(o Options) *Fetcher {
	if o.Timeout == 0 {
		o.Timeout = 2 * time.Minute
	}
	return &Fetcher{o: o, urlLocks: map[string]*sync.Mutex{}, resolved: map[string]resolvedRef{}, last: map[string]plumbing.Hash{}}
}

// Fetch resolves ref in the repository at repoURL to a commit and returns
// a snapshot of its tree. Errors never contain credentials. A remote that
// cannot be contacted gives an error wrapping source.ErrUnreachable.
func (f *Fetcher) Fetch(ctx context.Context, repoURL string, ref source.Ref, auth Auth) (source.Snapshot, error) {
	if err := ref.Validate(); err != nil {
		return source.Snapshot{}, fmt.Errorf("git %s: %w", Redact(repoURL), err)
	}
	if f.o.CacheDir == "" {
		return source.Snapshot{}, errors.New("git: Options.CacheDir is required")
	}
	key := resolvedKey(repoURL, ref, auth)
	if hash, ok := f.recent(ctx, key); ok {
		// Resolved within MaxAge and checked out: neither the clone nor
		// its lock is needed. Every comparison of every unit on a
		// monorepo comes here, and they queued on the lock one by one.
		if dir, ok := f.usedTree(hash); ok {
			return source.Snapshot{Revision: hash.String(), Dir: dir}, nil
		}
	}
	ctx, cancel := context.WithTimeout(ctx, f.o.Timeout)
	defer cancel()

	unlock, err := f.lock(repoURL)
	if err != nil {
		return source.Snapshot{}, err
	}
	defer unlock()

	cleanURL, auth := withoutUserinfo(repoURL, auth)
	if err := f.bound(repoURL); err != nil {
		return source.Snapshot{}, fmt.Errorf("git %s: %w", Redact(repoURL), err)
	}
	r, st, fresh, err := f.open(repoURL, cleanURL)
	if err != nil {
		return source.Snapshot{}, fmt.Errorf("git %s: open cache: %w", Redact(repoURL), err)
	}
	defer st.Close()
	tauth, err := auth.method(cleanURL)
	if err != nil {
		return source.Snapshot{}, fmt.Errorf("git %s: auth: %w", Redact(repoURL), err)
	}
	hash, err := f.resolve(ctx, r, key, ref, tauth)
	if err != nil {
		return source.Snapshot{}, fmt.Errorf("git %s %s: %w", Redact(repoURL), ref, err)
	}
	if fresh {
		f.recordFresh(repoURL)
	}
	f.mu.Lock()
	base := f.last[repoURL]
	f.mu.Unlock()
	dir, err := f.materialise(r, hash, base)
	if err != nil {
		return source.Snapshot{}, fmt.Errorf("git %s %s: checkout %s: %w", Redact(repoURL), ref, hash, err)
	}
	f.mu.Lock()
	f.last[repoURL] = hash
	f.mu.Unlock()
	return source.Snapshot{Revision: hash.String(), Dir: dir}, nil
}

// lock serialises work on one repository, within this process and across
// processes that share the cache.
func (f *Fetcher) lock(repoURL string) (func(), error) {
	f.mu.Lock()
	m, ok := f.urlLocks[repoURL]
	if !ok {
		m = &sync.Mutex{}
		f.urlLocks[repoURL] = m
	}
	f.mu.Unlock()
	m.Lock()
	// The cache is private to the user: snapshots of private
	// repositories are as secret as their credentials.
	if err := os.MkdirAll(filepath.Join(f.o.CacheDir, "repos"), 0o700); err != nil {
		m.Unlock()
		return nil, fmt.Errorf("git cache: %w", err)
	}
	f.private.Do(func() {
		// A cache made by an older version may be readable by all.
		for _, d := range []string{f.o.CacheDir, filepath.Join(f.o.CacheDir, "repos"), filepath.Join(f.o.CacheDir, "trees")} {
			os.Chmod(d, 0o700)
		}
	})
	fl := flock.New(f.repoDir(repoURL) + ".lock")
	if err := fl.Lock(); err != nil {
		m.Unlock()
		return nil, fmt.Errorf("git cache lock: %w", err)
	}
	return func() { fl.Unlock(); m.Unlock() }, nil
}

func (f *Fetcher) repoDir(repoURL string) string {
	return filepath.Join(f.o.CacheDir, "repos", shortHash(repoURL))
}

// open returns the bare clone for repoURL, creating it on first use, and
// its store, which the caller closes when done.
// Its remote holds cleanURL, never credentials; a clone made by an older
// version with credentials in its config is rewritten.
// fresh is true when the clone was made now.
//
// The store keeps its pack files open while it is used: a checkout reads
// every blob, and go-git otherwise opens and closes a pack file for each
// one, which was 40% of the controller's CPU while pushes of a
// 10,000-file repository came in.
func (f *Fetcher) open(repoURL, cleanURL string) (r *gogit.Repository, st *filesystem.Storage, fresh bool, err error) {
	dir := f.repoDir(repoURL)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, false, err
	}
	st = store(dir)
	defer func() {
		if err != nil {
			st.Close()
		}
	}()
	r, err = gogit.Open(st, nil)
	if err == nil {
		return r, st, false, scrubRemote(r, cleanURL)
	}
	if !errors.Is(err, gogit.ErrRepositoryNotExists) {
		return nil, nil, false, err
	}
	// A bare repository, as gogit.PlainInit(dir, true) makes it.
	r, err = gogit.Init(st, nil)
	if err != nil {
		return nil, nil, false, err
	}
	_, err = r.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{cleanURL}})
	return r, st, true, err
}

// store is the object store of the repository in dir, with its pack
// files kept open until Close.
func store(dir string) *filesystem.Storage {
	return filesystem.NewStorageWithOptions(osfs.New(dir), cache.NewObjectLRUDefault(), filesystem.Options{KeepDescriptors: true})
}

func scrubRemote(r *gogit.Repository, cleanURL string) error {
	cfg, err := r.Config()
	if err != nil {
		return err
	}
	rc, ok := cfg.Remotes["origin"]
	if ok && len(rc.URLs) == 1 && rc.URLs[0] == cleanURL {
		return nil
	}
	cfg.Remotes["origin"] = &config.RemoteConfig{Name: "origin", URLs: []string{cleanURL}}
	return r.SetConfig(cfg)
}

// unreachable wraps a transport error so callers can tell "could not
// talk to the remote" from "the remote has no such ref".
func unreachable(err error) error {
	if errors.Is(err, ErrRefNotFound) || errors.Is(err, context.Canceled) {
		return err
	}
	if errors.Is(err, transport.ErrEmptyRemoteRepository) {
		return fmt.Errorf("%w: repository is empty", ErrRefNotFound)
	}
	return fmt.Errorf("%w: %s", source.ErrUnreachable, redactText(err.Error()))
}

// Redact removes credentials from a URL so it can appear in errors,
// events, status and logs.
func Redact(raw string) string { return redact.URL(raw) }

// withoutUserinfo splits the user information off an http(s) URL, so
// that it is never stored (git config, cache paths) nor shown: auth
// given in the URL becomes basic auth held in memory. Other schemes are
// returned as they are (an ssh user name is not a secret).
func withoutUserinfo(repoURL string, auth Auth) (string, Auth) {
	u, err := url.Parse(repoURL)
	if err != nil || u.User == nil || (u.Scheme != "http" && u.Scheme != "https") {
		return repoURL, auth
	}
	if auth.Username == "" && auth.Password == "" && auth.BearerToken == "" {
		// A bare user name is a token, as forges accept it.
		auth.Username = u.User.Username()
		auth.Password, _ = u.User.Password()
	}
	u.User = nil
	return u.String(), auth
}

// Forget drops the refs of repoURL resolved within MaxAge, so that the
// next Fetch asks the remote: a push notification says they are stale.
func (f *Fetcher) Forget(repoURL string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k := range f.resolved {
		if strings.HasPrefix(k, repoURL+"\x00") {
			delete(f.resolved, k)
		}
	}
}
