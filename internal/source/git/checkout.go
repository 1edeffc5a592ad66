package git

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// materialise writes the commit's tree into trees/<sha> once. A tree is
// written to a temporary folder and renamed into place, so a reader never
// sees half a checkout. Symlinks are kept as they are; the renderer
// refuses any that leave the tree.
func (f *Fetcher) materialise(r *gogit.Repository, hash plumbing.Hash) (string, error) {
	dir := filepath.Join(f.o.CacheDir, "trees", hash.String())
	if _, err := os.Stat(dir); err == nil {
		return dir, nil
	}
	commit, err := r.CommitObject(hash)
	if err != nil {
		return "", err
	}
	tree, err := commit.Tree()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), hash.String()+".tmp-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	err = tree.Files().ForEach(func(file *object.File) error {
		return writeFile(tmp, file)
	})
	if err != nil {
		return "", err
	}
	if err := os.Rename(tmp, dir); err != nil && !errors.Is(err, os.ErrExist) {
		if _, statErr := os.Stat(dir); statErr != nil {
			return "", err
		}
	}
	return dir, nil
}

func writeFile(root string, file *object.File) error {
	path := filepath.Join(root, filepath.FromSlash(file.Name))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	rd, err := file.Reader()
	if err != nil {
		return fmt.Errorf("%s: %w", file.Name, err)
	}
	defer rd.Close()
	switch file.Mode {
	case filemode.Symlink:
		target, err := io.ReadAll(rd)
		if err != nil {
			return err
		}
		return os.Symlink(string(target), path)
	case filemode.Submodule:
		return nil // submodules are not followed
	}
	perm := os.FileMode(0o644)
	if file.Mode == filemode.Executable {
		perm = 0o755
	}
	w, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, rd); err != nil {
		w.Close()
		return fmt.Errorf("%s: %w", file.Name, err)
	}
	return w.Close()
}
