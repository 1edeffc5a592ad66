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
//
// base, if not zero, is a commit of the same clone already materialised
// (the last one): a file the two commits hold alike (same path, blob and
// mode) is hard-linked from its tree instead of read and written again.
// A push to a monorepo changes a few files of thousands, and writing
// every file anew was most of a push's way to the cluster. Any link
// that cannot be made (the base was collected meanwhile, another file
// system, no links on this system) falls back to writing the file.
// Trees are never written after they are made, so sharing their files
// is safe; nothing that renders them writes into them.
func (f *Fetcher) materialise(r *gogit.Repository, hash, base plumbing.Hash) (string, error) {
	if dir, ok := f.usedTree(hash); ok {
		return dir, nil
	}
	dir := filepath.Join(f.o.CacheDir, "trees", hash.String())
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
	if err := writeEntries(r, tmp, entries, f.baseOf(r, base, hash)); err != nil {
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

// usedTree returns the checkout of hash if it is on disk, marked as used
// now so that the collector keeps it.
func (f *Fetcher) usedTree(hash plumbing.Hash) (string, bool) {
	dir := filepath.Join(f.o.CacheDir, "trees", hash.String())
	if _, err := os.Stat(dir); err != nil {
		return "", false
	}
	now := time.Now()
	os.Chtimes(dir, now, now)
	return dir, true
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

// baseTree is an earlier checkout whose files a new one may link.
type baseTree struct {
	dir  string
	have map[string]entry // by path
}

// baseOf returns the checkout of commit base if it is still on disk and
// its tree can be listed, else nil: the new tree is then written whole.
func (f *Fetcher) baseOf(r *gogit.Repository, base, hash plumbing.Hash) *baseTree {
	if base.IsZero() || base == hash {
		return nil
	}
	dir := filepath.Join(f.o.CacheDir, "trees", base.String())
	if _, err := os.Stat(dir); err != nil {
		return nil
	}
	commit, err := r.CommitObject(base)
	if err != nil {
		return nil // a clone fetched again since holds only newer commits
	}
	tree, err := commit.Tree()
	if err != nil {
		return nil
	}
	var entries []entry
	if err := listTree(r, tree, "", &entries); err != nil {
		return nil
	}
	have := make(map[string]entry, len(entries))
	for _, e := range entries {
		have[e.path] = e
	}
	return &baseTree{dir: dir, have: have}
}

// writeEntries writes the listed entries below dir. Each folder is
// created new and then opened as an os.Root of its own, and what it
// holds is written by bare name through that root: a file costs one
// openat instead of a walk of its whole path (an openat and a close per
// folder above it), which made writing a large checkout most of a cold
// start's CPU. The entries come folders first, depth first, so the open
// folders are a stack: the path of the one on top is a prefix of every
// entry written through it.
//
// With a base, each folder the base also has is opened in both trees, and
// a file the base holds alike is linked by bare name from folder to
// folder (linkat, never following a link); see materialise.
func writeEntries(r *gogit.Repository, dir string, entries []entry, base *baseTree) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	type folder struct {
		path string
		root *os.Root
		// to and from are this folder and the base's, open for linking;
		// nil when the base has no such folder or has no base at all.
		to, from *os.File
	}
	closeFolder := func(f folder) {
		f.root.Close()
		if f.to != nil {
			f.to.Close()
			f.from.Close()
		}
	}
	top := folder{path: "", root: root}
	if base != nil {
		top.to, top.from = openBoth(func() (*os.File, error) { return root.Open(".") },
			func() (*os.File, error) { return os.Open(base.dir) })
	}
	stack := []folder{top}
	defer func() {
		for _, f := range stack {
			closeFolder(f)
		}
	}()
	for _, e := range entries {
		parent, name := path.Split(e.path)
		parent = strings.TrimSuffix(parent, "/")
		for len(stack) > 1 && stack[len(stack)-1].path != parent {
			closeFolder(stack[len(stack)-1])
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
			next := folder{path: e.path, root: sub}
			if at.from != nil && base.have[e.path].mode == filemode.Dir {
				next.to, next.from = openBoth(func() (*os.File, error) { return sub.Open(".") },
					func() (*os.File, error) { return openDirAt(at.from, name) })
			}
			stack = append(stack, next)
			continue
		case filemode.Submodule:
			continue // submodules are not followed
		}
		if at.from != nil && (e.mode == filemode.Regular || e.mode == filemode.Executable) {
			if b, ok := base.have[e.path]; ok && b.hash == e.hash && b.mode == e.mode && linkAt(at.from, at.to, name) == nil {
				continue
			}
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

// openBoth opens a new folder and the base's folder of the same path for
// linking; both nil if either fails, and the files are then written.
func openBoth(openTo, openFrom func() (*os.File, error)) (to, from *os.File) {
	to, err := openTo()
	if err != nil {
		return nil, nil
	}
	if from, err = openFrom(); err != nil {
		to.Close()
		return nil, nil
	}
	return to, from
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
