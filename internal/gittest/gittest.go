// Package gittest serves real Git repositories on loopback for tests: a
// gittestserver (smart HTTP, optional basic auth, optional SSH) and
// working repositories that commit fixtures and publish to it.
package gittest

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fluxcd/pkg/gittestserver"
	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// Server is a Git server over HTTP on 127.0.0.1, stopped at test end.
type Server struct {
	*gittestserver.GitServer
}

// NewServer starts a server; username and password, if not empty, are
// required from clients.
func NewServer(t testing.TB, username, password string) *Server {
	t.Helper()
	srv, err := gittestserver.NewTempGitServer()
	if err != nil {
		t.Fatal(err)
	}
	if username != "" {
		srv.Auth(username, password)
	}
	if err := srv.StartHTTP(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.StopHTTP(); os.RemoveAll(srv.Root()) })
	return &Server{srv}
}

// Repo is a working repository that publishes to a bare one.
type Repo struct {
	t    testing.TB
	r    *gogit.Repository
	dir  string
	Bare string
}

// NewRepo makes a working repository whose main branch publishes to the
// bare repository at bare (created).
func NewRepo(t testing.TB, bare string) *Repo {
	t.Helper()
	dir := t.TempDir()
	r, err := gogit.PlainInitWithOptions(dir, &gogit.PlainInitOptions{
		InitOptions: gogit.InitOptions{DefaultBranch: plumbing.NewBranchReferenceName("main")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gogit.PlainInit(bare, true); err != nil {
		t.Fatal(err)
	}
	if _, err := r.CreateRemote(&config.RemoteConfig{Name: "published", URLs: []string{bare}}); err != nil {
		t.Fatal(err)
	}
	return &Repo{t: t, r: r, dir: dir, Bare: bare}
}

// NewRepo makes a repository served at path (e.g. "org/app.git") and
// returns it with its URL.
func (s *Server) NewRepo(t testing.TB, path string) (*Repo, string) {
	return NewRepo(t, filepath.Join(s.Root(), path)), s.HTTPAddress() + "/" + path
}

// Commit writes files (an empty content deletes the file) and commits.
func (p *Repo) Commit(msg string, files map[string]string) plumbing.Hash {
	p.t.Helper()
	for name, content := range files {
		path := filepath.Join(p.dir, name)
		if content == "" {
			os.Remove(path)
			continue
		}
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			p.t.Fatal(err)
		}
	}
	return p.commit(msg)
}

// CopyDir copies a fixture folder into the repository at dst and commits.
func (p *Repo) CopyDir(msg, src, dst string) plumbing.Hash {
	p.t.Helper()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		target := filepath.Join(p.dir, dst, rel)
		os.MkdirAll(filepath.Dir(target), 0o755)
		return os.WriteFile(target, data, 0o644)
	})
	if err != nil {
		p.t.Fatal(err)
	}
	return p.commit(msg)
}

// RemoveAll deletes a folder of the repository and commits.
func (p *Repo) RemoveAll(msg, dir string) plumbing.Hash {
	p.t.Helper()
	os.RemoveAll(filepath.Join(p.dir, dir))
	return p.commit(msg)
}

func (p *Repo) commit(msg string) plumbing.Hash {
	wt, err := p.r.Worktree()
	if err != nil {
		p.t.Fatal(err)
	}
	if err := wt.AddWithOptions(&gogit.AddOptions{All: true}); err != nil {
		p.t.Fatal(err)
	}
	h, err := wt.Commit(msg, &gogit.CommitOptions{Author: Signature(), AllowEmptyCommits: true})
	if err != nil {
		p.t.Fatal(err)
	}
	return h
}

// Head is the commit HEAD points at.
func (p *Repo) Head() plumbing.Hash {
	p.t.Helper()
	head, err := p.r.Head()
	if err != nil {
		p.t.Fatal(err)
	}
	return head.Hash()
}

// Tag tags HEAD, annotated or lightweight.
func (p *Repo) Tag(name string, annotated bool) {
	p.t.Helper()
	head, _ := p.r.Head()
	var opts *gogit.CreateTagOptions
	if annotated {
		opts = &gogit.CreateTagOptions{Message: "release " + name, Tagger: Signature()}
	}
	if _, err := p.r.CreateTag(name, head.Hash(), opts); err != nil {
		p.t.Fatal(err)
	}
}

// Branch points a branch at HEAD.
func (p *Repo) Branch(name string) {
	p.t.Helper()
	head, _ := p.r.Head()
	ref := plumbing.NewHashReference(plumbing.NewBranchReferenceName(name), head.Hash())
	if err := p.r.Storer.SetReference(ref); err != nil {
		p.t.Fatal(err)
	}
}

// Publish pushes every branch and tag; the bare repository's HEAD names
// main, as a forge's would.
func (p *Repo) Publish() {
	p.t.Helper()
	err := p.r.Push(&gogit.PushOptions{
		RemoteName: "published",
		RefSpecs:   []config.RefSpec{"+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"},
		Force:      true,
	})
	if err != nil && !errors.Is(err, gogit.NoErrAlreadyUpToDate) {
		p.t.Fatal(err)
	}
	b, err := gogit.PlainOpen(p.Bare)
	if err != nil {
		p.t.Fatal(err)
	}
	b.Storer.SetReference(plumbing.NewSymbolicReference(plumbing.HEAD, plumbing.NewBranchReferenceName("main")))
}

// Signature is a fixed author, so commits are reproducible.
func Signature() *object.Signature {
	return &object.Signature{Name: "test", Email: "test@converge.dev", When: time.Unix(1700000000, 0)}
}

// FileURL is the file:// URL of a bare repository.
func FileURL(bare string) string { return "file://" + filepath.ToSlash(bare) }

// String describes the repository for test logs.
func (p *Repo) String() string { return fmt.Sprintf("repo %s", strings.TrimSuffix(p.Bare, "/")) }
