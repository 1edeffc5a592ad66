// Package demo holds the Git repository that `converge up` serves: the
// seed's orders-api with dev, staging and prod overlays (§6), and the Argo
// CD AppProject and Applications that deploy it.
package demo

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"

	objects "converge.dev/converge/internal/object"
)

//go:embed repo
var files embed.FS

//go:embed promotion/pipeline.yaml
var pipeline string

//go:embed fleet/fleet.yaml
var fleet string

// Publish writes the demo repository under dir (a working tree and a bare
// repository beside it) and returns the bare repository's file:// URL. A
// repository already there is updated, not replaced, so its history grows
// with each `converge up` only when the demo changes.
func Publish(dir string) (string, error) {
	work, bare := filepath.Join(dir, "work"), filepath.Join(dir, "apps.git")
	r, err := gogit.PlainOpen(work)
	if errors.Is(err, gogit.ErrRepositoryNotExists) {
		r, err = gogit.PlainInitWithOptions(work, &gogit.PlainInitOptions{
			InitOptions: gogit.InitOptions{DefaultBranch: plumbing.NewBranchReferenceName("main")}})
		if err == nil {
			_, err = gogit.PlainInit(bare, true)
		}
		if err == nil {
			_, err = r.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{bare}})
		}
	}
	if err != nil {
		return "", fmt.Errorf("demo repository: %w", err)
	}
	err = fs.WalkDir(files, "repo", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := files.ReadFile(path)
		if err != nil {
			return err
		}
		target := filepath.Join(work, strings.TrimPrefix(path, "repo/"))
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
	if err != nil {
		return "", fmt.Errorf("demo repository: %w", err)
	}
	wt, err := r.Worktree()
	if err != nil {
		return "", err
	}
	if err := wt.AddWithOptions(&gogit.AddOptions{All: true}); err != nil {
		return "", err
	}
	if st, err := wt.Status(); err == nil && !st.IsClean() {
		sig := &object.Signature{Name: "converge up", Email: "up@converge.dev", When: time.Now()}
		if _, err := wt.Commit("demo applications", &gogit.CommitOptions{Author: sig}); err != nil {
			return "", fmt.Errorf("demo repository: commit: %w", err)
		}
	}
	err = r.Push(&gogit.PushOptions{RemoteName: "origin", RefSpecs: []config.RefSpec{"+refs/heads/main:refs/heads/main"}})
	if err != nil && !errors.Is(err, gogit.NoErrAlreadyUpToDate) {
		return "", fmt.Errorf("demo repository: publish: %w", err)
	}
	b, err := gogit.PlainOpen(bare)
	if err != nil {
		return "", err
	}
	if err := b.Storer.SetReference(plumbing.NewSymbolicReference(plumbing.HEAD, plumbing.NewBranchReferenceName("main"))); err != nil {
		return "", err
	}
	return "file://" + filepath.ToSlash(bare), nil
}

// Applications returns the AppProject and Applications, pointed at url.
func Applications(url string) ([]objects.Decoded, error) {
	var out []objects.Decoded
	err := fs.WalkDir(files, "repo/argocd", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := files.ReadFile(path)
		if err != nil {
			return err
		}
		objs, err := objects.Decode([]byte(strings.ReplaceAll(string(data), "REPO_URL", url)), path)
		out = append(out, objs...)
		return err
	})
	return out, err
}

// Pipeline returns the demo's Pipeline over the three Applications, its
// repository at url (a forge's clone URL), and the Secret with the forge
// user and token it opens pull requests with.
func Pipeline(url, user, token string) ([]objects.Decoded, error) {
	secret := fmt.Sprintf("apiVersion: v1\nkind: Secret\nmetadata: {name: forge-token, namespace: argocd}\nstringData: {username: %q, token: %q}\n", user, token)
	objs, err := objects.Decode([]byte(secret), "forge-token")
	if err != nil {
		return nil, err
	}
	p, err := objects.Decode([]byte(strings.ReplaceAll(pipeline, "REPO_URL", url)), "promotion/pipeline.yaml")
	return append(objs, p...), err
}

// Fleet returns the demo fleet's AppProject and ApplicationSet, which
// deploy orders-api from url to every cluster registered with the label
// converge.dev/fleet: demo, wave by wave (FleetLabels).
func Fleet(url string) ([]objects.Decoded, error) {
	return objects.Decode([]byte(strings.ReplaceAll(fleet, "REPO_URL", url)), "fleet/fleet.yaml")
}

// FleetLabels are the labels of the i-th extra cluster's Secret (from 1):
// the first is wave 1, the others wave 2.
func FleetLabels(i int) map[string]string {
	wave := "2"
	if i == 1 {
		wave = "1"
	}
	return map[string]string{"converge.dev/fleet": "demo", "wave": wave}
}

// PushTo pushes the published demo repository (Publish's dir) to a
// forge's repository at url.
func PushTo(ctx context.Context, dir, url, user, token string) error {
	r, err := gogit.PlainOpen(filepath.Join(dir, "work"))
	if err != nil {
		return fmt.Errorf("demo repository: %w", err)
	}
	err = r.PushContext(ctx, &gogit.PushOptions{RemoteURL: url, RefSpecs: []config.RefSpec{"+refs/heads/main:refs/heads/main"},
		Auth: &githttp.BasicAuth{Username: user, Password: token}})
	if err != nil && !errors.Is(err, gogit.NoErrAlreadyUpToDate) {
		return fmt.Errorf("demo repository: push to the forge: %w", err)
	}
	return nil
}
