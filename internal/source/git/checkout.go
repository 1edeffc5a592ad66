package git

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// ErrUnsafeTree is a commit whose tree cannot be checked out without
// writing outside its folder or overwriting one of its own entries: a
// duplicate name, a name such as "..", ".git" or one holding a slash.
// Git itself refuses such trees; they only come from crafted objects.
var ErrUnsafeTree = errors.New("unsafe tree")

// entry is one thing to write, listed before anything is written.
type entry struct {
	path string // slash-separated, relative to the snapshot
	mode filemode.FileMode
	hash plumbing.Hash
}

// materialise writes the commit's tree into trees/<sha> once. The whole
// tree is listed and checked first, so a crafted tree fails before a
// single file is written. Then it is written under an os.Root, which
// never follows a link out of the folder, with every file and folder
// created new (O_EXCL): nothing is written through a link, and nothing
// is written twice. A tree is written to a temporary folder and renamed
// into place, so a reader never sees half a checkout. Symlinks are kept
// as they are; the renderer refuses any that leave the tree.
func (f *Fetcher) materialise(r *gogit.Repository, hash plumbing.Hash) (string, error) {
	dir := filepath.Join(f.o.CacheDir, "trees", hash.String())
	if _, err := os.Stat(dir); err == nil {
		now := time.Now()
		os.Chtimes(dir, now, now) // used: the collector keeps it
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
	var entries []entry
	if err := listTree(r, tree, "", &entries); err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), hash.String()+".tmp-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	if err := writeEntries(r, tmp, entries); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, dir); err != nil && !errors.Is(err, os.ErrExist) {
		if _, statErr := os.Stat(dir); statErr != nil {
			return "", err
		}
	}
	f.collectTrees(dir)
	return dir, nil
}

// treeGrace is how long a tree is kept after its last use, whatever the
// bound: a unit may still be rendering it.
const treeGrace = time.Hour

// collectTrees removes the least recently used trees beyond MaxTrees.
// A tree is first renamed away, so no reader ever sees half of one; a
// render that had it open fails, and a failed render applies nothing.
func (f *Fetcher) collectTrees(keep string) {
	max := f.o.MaxTrees
	if max == 0 {
		max = 64
	}
	if max < 0 {
		return
	}
	root := filepath.Join(f.o.CacheDir, "trees")
	entries, err := os.ReadDir(root)
	if err != nil {
		return
	}
	type tree struct {
		path string
		used time.Time
	}
	var trees []tree
	for _, e := range entries {
		if !e.IsDir() || strings.Contains(e.Name(), ".") {
			continue // temporary folders of writers in flight
		}
		if info, err := e.Info(); err == nil {
			trees = append(trees, tree{filepath.Join(root, e.Name()), info.ModTime()})
		}
	}
	if len(trees) <= max {
		return
	}
	sort.Slice(trees, func(i, j int) bool { return trees[i].used.After(trees[j].used) })
	for _, t := range trees[max:] {
		if t.path == keep || time.Since(t.used) < treeGrace {
			continue
		}
		gone := t.path + ".gone"
		if os.Rename(t.path, gone) == nil {
			os.RemoveAll(gone)
		}
	}
}

// listTree appends the entries of t (folders before what they hold) and
// refuses names that are not plain, distinct path elements.
func listTree(r *gogit.Repository, t *object.Tree, prefix string, out *[]entry) error {
	seen := make(map[string]bool, len(t.Entries))
	for _, e := range t.Entries {
		p := path.Join(prefix, e.Name)
		if err := checkName(e.Name); err != nil {
			return fmt.Errorf("%w: %q in %q: %v", ErrUnsafeTree, e.Name, "/"+prefix, err)
		}
		// A name twice is how a crafted tree puts a folder under a link
		// of the same name. (On a case-insensitive file system "A" and
		// "a" collide too; O_EXCL and the os.Root refuse that at write.)
		if seen[e.Name] {
			return fmt.Errorf("%w: %q appears twice in %q", ErrUnsafeTree, e.Name, "/"+prefix)
		}
		seen[e.Name] = true
		*out = append(*out, entry{path: p, mode: e.Mode, hash: e.Hash})
		if e.Mode == filemode.Dir {
			sub, err := r.TreeObject(e.Hash)
			if err != nil {
				return fmt.Errorf("tree %s: %w", p, err)
			}
			if err := listTree(r, sub, p, out); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkName(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return errors.New("not a file name")
	case strings.ContainsAny(name, "/\\\x00"):
		return errors.New("holds a path separator or NUL")
	case strings.EqualFold(name, ".git"):
		return errors.New("a repository's own folder")
	}
	return nil
}

// writeEntries writes the listed entries below dir. Each folder is
// created new and then opened as an os.Root of its own, and what it
// holds is written by bare name through that root: a file costs one
// openat instead of a walk of its whole path (an openat and a close per
// folder above it), which made writing a large checkout most of a cold
// start's CPU. The entries come folders first, depth first, so the open
// folders are a stack: the path of the one on top is a prefix of every
// entry written through it.
func writeEntries(r *gogit.Repository, dir string, entries []entry) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	type folder struct {
		path string
		root *os.Root
	}
	stack := []folder{{"", root}}
	defer func() {
		for _, f := range stack {
			f.root.Close()
		}
	}()
	for _, e := range entries {
		parent, name := path.Split(e.path)
		parent = strings.TrimSuffix(parent, "/")
		for len(stack) > 1 && stack[len(stack)-1].path != parent {
			stack[len(stack)-1].root.Close()
			stack = stack[:len(stack)-1]
		}
		at := stack[len(stack)-1]
		if at.path != parent {
			return fmt.Errorf("%s: listed before its folder", e.path)
		}
		switch e.mode {
		case filemode.Dir:
			if err := at.root.Mkdir(name, 0o755); err != nil {
				return fmt.Errorf("%s: %w", e.path, err)
			}
			sub, err := at.root.OpenRoot(name)
			if err != nil {
				return fmt.Errorf("%s: %w", e.path, err)
			}
			stack = append(stack, folder{e.path, sub})
			continue
		case filemode.Submodule:
			continue // submodules are not followed
		}
		blob, err := r.BlobObject(e.hash)
		if err != nil {
			return fmt.Errorf("%s: %w", e.path, err)
		}
		rd, err := blob.Reader()
		if err != nil {
			return fmt.Errorf("%s: %w", e.path, err)
		}
		err = writeBlob(at.root, name, e.mode, rd)
		rd.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", e.path, err)
		}
	}
	return nil
}

func writeBlob(root *os.Root, name string, mode filemode.FileMode, rd io.Reader) error {
	if mode == filemode.Symlink {
		target, err := io.ReadAll(io.LimitReader(rd, 4096))
		if err != nil {
			return err
		}
		return root.Symlink(string(target), name)
	}
	perm := os.FileMode(0o644)
	if mode == filemode.Executable {
		perm = 0o755
	}
	w, err := root.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, rd); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}
