package git

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fluxcd/pkg/gittestserver"
	"github.com/go-git/go-git/v5/plumbing"

	"converge.dev/converge/internal/gittest"
	"converge.dev/converge/internal/source"
)

func read(t *testing.T, snap source.Snapshot, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(snap.Dir, name))
	if err != nil {
		t.Fatalf("snapshot %s: %v", snap.Revision, err)
	}
	return string(data)
}

// fixture publishes a repository with history: main (two commits), a
// release branch, tags v1.0.0 (light), v1.2.0 (annotated), v2.0.0 and a
// tag that is not a version.
func fixture(t *testing.T, bare string) (p *gittest.Repo, first, second plumbing.Hash) {
	p = gittest.NewRepo(t, bare)
	first = p.Commit("one", map[string]string{"app/config.yaml": "version: 1\n"})
	p.Tag("v1.0.0", false)
	p.Branch("release")
	p.Commit("one point two", map[string]string{"app/config.yaml": "version: 1.2\n"})
	p.Tag("v1.2.0", true)
	p.Tag("latest-build", false)
	second = p.Commit("two", map[string]string{"app/config.yaml": "version: 2\n", "app/extra.yaml": "x: 1\n"})
	p.Tag("v2.0.0", true)
	p.Publish()
	return p, first, second
}

func TestFetchOverHTTP(t *testing.T) {
	srv, err := gittestserver.NewTempGitServer()
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(srv.Root())
	srv.Auth("alice", "s3cret-pass")
	var requests atomic.Int32
	srv.AddHTTPMiddlewares(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			requests.Add(1)
			next.ServeHTTP(w, r)
		})
	})
	if err := srv.StartHTTP(); err != nil {
		t.Fatal(err)
	}
	defer srv.StopHTTP()
	p, first, second := fixture(t, filepath.Join(srv.Root(), "org", "app.git"))
	url := srv.HTTPAddress() + "/org/app.git"
	auth := Auth{Username: "alice", Password: "s3cret-pass"}
	f := New(Options{CacheDir: t.TempDir()})
	ctx := context.Background()

	tests := []struct {
		ref     source.Ref
		wantRev plumbing.Hash
		want    string
	}{
		{source.Ref{}, second, "version: 2\n"},
		{source.Ref{Branch: "main"}, second, "version: 2\n"},
		{source.Ref{Branch: "release"}, first, "version: 1\n"},
		{source.Ref{Tag: "v1.0.0"}, first, "version: 1\n"},
		{source.Ref{SemVer: "1.x"}, plumbing.ZeroHash, "version: 1.2\n"},
		{source.Ref{SemVer: ">=1.0.0 <1.1.0"}, first, "version: 1\n"},
		{source.Ref{SemVer: "*"}, second, "version: 2\n"},
		{source.Ref{Name: "v2.0.0"}, second, "version: 2\n"},
		{source.Ref{Name: "release"}, first, "version: 1\n"},
		{source.Ref{Commit: first.String()[:10]}, first, "version: 1\n"},
	}
	for _, tt := range tests {
		t.Run(tt.ref.String(), func(t *testing.T) {
			snap, err := f.Fetch(ctx, url, tt.ref, auth)
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantRev != plumbing.ZeroHash && snap.Revision != tt.wantRev.String() {
				t.Errorf("revision: got %s, want %s", snap.Revision, tt.wantRev)
			}
			if got := read(t, snap, "app/config.yaml"); got != tt.want {
				t.Errorf("app/config.yaml: got %q, want %q", got, tt.want)
			}
		})
	}

	t.Run("new commit is picked up, old snapshot kept", func(t *testing.T) {
		old, err := f.Fetch(ctx, url, source.Ref{Branch: "main"}, auth)
		if err != nil {
			t.Fatal(err)
		}
		third := p.Commit("three", map[string]string{"app/extra.yaml": ""})
		p.Publish()
		snap, err := f.Fetch(ctx, url, source.Ref{Branch: "main"}, auth)
		if err != nil {
			t.Fatal(err)
		}
		if snap.Revision != third.String() {
			t.Errorf("revision: got %s, want %s", snap.Revision, third)
		}
		if _, err := os.Stat(filepath.Join(snap.Dir, "app/extra.yaml")); !os.IsNotExist(err) {
			t.Errorf("deleted file still in the new snapshot: %v", err)
		}
		if read(t, old, "app/extra.yaml") != "x: 1\n" {
			t.Error("old snapshot changed")
		}
	})

	t.Run("max age reuses a resolution", func(t *testing.T) {
		cached := New(Options{CacheDir: t.TempDir(), MaxAge: time.Minute})
		if _, err := cached.Fetch(ctx, url, source.Ref{Branch: "main"}, auth); err != nil {
			t.Fatal(err)
		}
		before := requests.Load()
		for i := 0; i < 5; i++ {
			if _, err := cached.Fetch(ctx, url, source.Ref{Branch: "main"}, auth); err != nil {
				t.Fatal(err)
			}
		}
		if n := requests.Load() - before; n != 0 {
			t.Errorf("5 fetches within MaxAge sent %d requests, want 0", n)
		}
	})

	t.Run("missing ref", func(t *testing.T) {
		for _, ref := range []source.Ref{{Branch: "nope"}, {SemVer: "9.x"}, {Commit: "deadbeefdeadbeef"}} {
			_, err := f.Fetch(ctx, url, ref, auth)
			if !errors.Is(err, ErrRefNotFound) || errors.Is(err, source.ErrUnreachable) {
				t.Errorf("%s: got %v, want ErrRefNotFound", ref, err)
			}
		}
	})

	t.Run("bad credentials never leak", func(t *testing.T) {
		_, err := f.Fetch(ctx, url, source.Ref{}, Auth{Username: "alice", Password: "wrong-pass-123"})
		if err == nil {
			t.Fatal("fetch with a wrong password succeeded")
		}
		withCreds := strings.Replace(url, "http://", "http://alice:wrong-pass-123@", 1)
		_, err2 := f.Fetch(ctx, withCreds, source.Ref{}, Auth{})
		for _, e := range []error{err, err2} {
			if e == nil || strings.Contains(e.Error(), "wrong-pass-123") || strings.Contains(e.Error(), "s3cret") {
				t.Errorf("error leaks a secret or is nil: %v", e)
			}
		}
	})
}

func TestFetchUnreachable(t *testing.T) {
	f := New(Options{CacheDir: t.TempDir(), Timeout: 5 * time.Second})
	_, err := f.Fetch(context.Background(), "http://user:topsecret@127.0.0.1:1/org/app.git", source.Ref{}, Auth{})
	if !errors.Is(err, source.ErrUnreachable) {
		t.Errorf("got %v, want ErrUnreachable", err)
	}
	if err != nil && strings.Contains(err.Error(), "topsecret") {
		t.Errorf("error leaks the password: %v", err)
	}
}

func TestFetchFileURL(t *testing.T) {
	bare := filepath.Join(t.TempDir(), "app.git")
	_, _, second := fixture(t, bare)
	f := New(Options{CacheDir: t.TempDir()})
	snap, err := f.Fetch(context.Background(), "file://"+bare, source.Ref{}, Auth{})
	if err != nil {
		t.Fatal(err)
	}
	if snap.Revision != second.String() || read(t, snap, "app/config.yaml") != "version: 2\n" {
		t.Errorf("got revision %s, want %s with version 2", snap.Revision, second)
	}
}

func TestFetchOverSSH(t *testing.T) {
	srv := gittest.NewServer(t, "", "")
	base, knownHosts := srv.SSH(t)
	_, _, second := fixture(t, filepath.Join(srv.Root(), "org", "app.git"))
	clientKey := gittest.ClientKey(t)
	url := base + "/org/app.git"
	f := New(Options{CacheDir: t.TempDir()})

	snap, err := f.Fetch(context.Background(), url, source.Ref{Tag: "v2.0.0"}, Auth{SSHKey: clientKey, KnownHosts: []byte(knownHosts)})
	if err != nil {
		t.Fatal(err)
	}
	if snap.Revision != second.String() {
		t.Errorf("revision: got %s, want %s", snap.Revision, second)
	}

	// A host key that does not match known_hosts is refused.
	host := strings.Fields(knownHosts)[0]
	wrong := host + " ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
	_, err = New(Options{CacheDir: t.TempDir()}).Fetch(context.Background(), url, source.Ref{}, Auth{SSHKey: clientKey, KnownHosts: []byte(wrong)})
	if err == nil {
		t.Error("fetch with a mismatched known_hosts succeeded")
	}
	_, err = f.Fetch(context.Background(), url, source.Ref{}, Auth{SSHKey: clientKey})
	if err == nil || !strings.Contains(err.Error(), "known_hosts") {
		t.Errorf("fetch without known_hosts: got %v, want an error naming known_hosts", err)
	}
}

// TestFreshSince: within MaxAge a resolved ref is reused, also under a
// bound older than its resolution; a bound after it asks the remote
// again, and the answer then serves the older bounds too.
func TestFreshSince(t *testing.T) {
	bare := filepath.Join(t.TempDir(), "fresh.git")
	p := gittest.NewRepo(t, bare)
	first := p.Commit("one", map[string]string{"a.yaml": "v: 1\n"})
	p.Publish()
	f := New(Options{CacheDir: t.TempDir(), MaxAge: time.Hour})
	url := gittest.FileURL(bare)
	fetch := func(ctx context.Context) string {
		t.Helper()
		snap, err := f.Fetch(ctx, url, source.Ref{Branch: "main"}, Auth{})
		if err != nil {
			t.Fatal(err)
		}
		return snap.Revision
	}
	ctx := context.Background()
	before := time.Now()
	if got := fetch(ctx); got != first.String() {
		t.Fatalf("first fetch: %s", got)
	}
	second := p.Commit("two", map[string]string{"a.yaml": "v: 2\n"})
	p.Publish()
	if got := fetch(FreshSince(ctx, before)); got != first.String() {
		t.Errorf("a bound older than the resolution asked the remote again: %s", got)
	}
	if got := fetch(FreshSince(ctx, time.Now())); got != second.String() {
		t.Errorf("a bound after the resolution reused it: %s, want %s", got, second)
	}
	if got := fetch(FreshSince(ctx, before)); got != second.String() {
		t.Errorf("the new resolution does not serve an older bound: %s", got)
	}
}

// TestResolutionIsKeptPerCredentials: a ref resolved with credentials is
// not handed, within MaxAge, to a fetch without them or with others: the
// server must refuse those, as it does.
func TestResolutionIsKeptPerCredentials(t *testing.T) {
	srv := gittest.NewServer(t, "alice", "s3cret-pass")
	fixture(t, filepath.Join(srv.Root(), "org", "app.git"))
	url := srv.HTTPAddress() + "/org/app.git"
	f := New(Options{CacheDir: t.TempDir(), MaxAge: time.Hour})
	ctx := context.Background()
	if _, err := f.Fetch(ctx, url, source.Ref{Branch: "main"}, Auth{Username: "alice", Password: "s3cret-pass"}); err != nil {
		t.Fatal(err)
	}
	for _, a := range []Auth{{}, {Username: "alice", Password: "wrong"}, {BearerToken: "s3cret-pass"}} {
		if snap, err := f.Fetch(ctx, url, source.Ref{Branch: "main"}, a); err == nil {
			t.Errorf("a fetch with %q/%q/%q got the revision another resolved with credentials: %s",
				a.Username, a.Password, a.BearerToken, snap.Revision)
		}
	}
	if _, err := f.Fetch(ctx, url, source.Ref{Branch: "main"}, Auth{Username: "alice", Password: "s3cret-pass"}); err != nil {
		t.Errorf("the same credentials again: %v", err)
	}
}
