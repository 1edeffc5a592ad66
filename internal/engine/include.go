package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"converge.dev/converge/internal/render"
	"converge.dev/converge/internal/source"
	"converge.dev/converge/internal/source/git"
)

// Include copies a folder of another repository into a unit's source
// before rendering (Flux's GitRepository spec.include).
type Include struct {
	// RepoURL and Revision name the included repository and the exact
	// revision (a commit) its own source published.
	RepoURL, Revision string
	Auth              git.Auth
	// FromPath is the folder copied; empty is the whole repository.
	FromPath string
	// ToPath is where it lands in the unit's source; its files are
	// copied over what is there. Required.
	ToPath string
}

// compose returns a snapshot holding main's files with every include
// copied in, in order. It is built once per set of revisions and kept
// under ComposeDir: like the snapshots it is made from, it never
// changes.
func (e *Engine) compose(ctx context.Context, main source.Snapshot, incs []Include) (source.Snapshot, error) {
	snaps := make([]source.Snapshot, len(incs))
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00", main.Revision)
	for i, inc := range incs {
		if inc.ToPath == "" {
			return source.Snapshot{}, fmt.Errorf("include %d (%s): toPath is required", i, git.Redact(inc.RepoURL))
		}
		s, err := e.o.Fetcher.Fetch(ctx, inc.RepoURL, source.ParseRevision(inc.Revision), inc.Auth)
		if err != nil {
			return source.Snapshot{}, fmt.Errorf("include %s: %w", git.Redact(inc.RepoURL), err)
		}
		snaps[i] = s
		fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00", inc.RepoURL, s.Revision, inc.FromPath, inc.ToPath)
	}
	root := e.o.ComposeDir
	if root == "" {
		root = filepath.Join(os.TempDir(), "converge-compose")
	}
	dir := filepath.Join(root, hex.EncodeToString(h.Sum(nil))[:32])
	out := source.Snapshot{Revision: main.Revision, Dir: filepath.Join(dir, "content")}
	if _, err := os.Stat(filepath.Join(dir, ".complete")); err == nil {
		return out, nil
	}
	// Built in a private folder and renamed into place, so concurrent
	// builders never see each other's half-copied trees.
	if err := os.MkdirAll(root, 0o755); err != nil {
		return source.Snapshot{}, err
	}
	tmp, err := os.MkdirTemp(root, ".build-")
	if err != nil {
		return source.Snapshot{}, err
	}
	defer os.RemoveAll(tmp)
	content := filepath.Join(tmp, "content")
	if err := copyTree(main.Dir, content); err != nil {
		return source.Snapshot{}, fmt.Errorf("compose: %w", err)
	}
	for i, inc := range incs {
		from, err := render.Join(snaps[i].Dir, inc.FromPath)
		if err != nil {
			return source.Snapshot{}, fmt.Errorf("include %s: fromPath: %w", git.Redact(inc.RepoURL), err)
		}
		if fi, err := os.Stat(from); err != nil || !fi.IsDir() {
			return source.Snapshot{}, fmt.Errorf("include %s: fromPath %q is not a folder at %.12s", git.Redact(inc.RepoURL), inc.FromPath, snaps[i].Revision)
		}
		// The copy holds no links (copyTree leaves them out), so a
		// lexical check keeps toPath inside.
		rel := filepath.Clean(filepath.FromSlash(inc.ToPath))
		if filepath.IsAbs(rel) || rel == "." || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			return source.Snapshot{}, fmt.Errorf("include %s: toPath %q must be a folder inside the repository", git.Redact(inc.RepoURL), inc.ToPath)
		}
		to := filepath.Join(content, rel)
		if err := copyTree(from, to); err != nil {
			return source.Snapshot{}, fmt.Errorf("include %s: %w", git.Redact(inc.RepoURL), err)
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, ".complete"), nil, 0o644); err != nil {
		return source.Snapshot{}, err
	}
	if err := os.Rename(tmp, dir); err != nil {
		// Another builder won the race; its tree is the same.
		if _, serr := os.Stat(filepath.Join(dir, ".complete")); serr == nil {
			return out, nil
		}
		return source.Snapshot{}, err
	}
	return out, nil
}

// copyTree copies regular files and folders; symbolic links, which
// could point outside the source, and .git are left out.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Type().IsRegular():
			return copyFile(path, target)
		}
		return nil
	})
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	return errors.Join(err, out.Close())
}
