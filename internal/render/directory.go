package render

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/gobwas/glob"

	"converge.dev/converge/internal/object"
)

// DirectoryOptions configure RenderDirectory.
type DirectoryOptions struct {
	// Recurse reads sub-folders too. Argo CD's directory.recurse defaults
	// to false; the CLI sets it.
	Recurse bool
	// MaxFileSize bounds one file. If zero, DefaultMaxFileSize.
	MaxFileSize int64
	// Exclude, if set, leaves out files and folders it matches; it gets
	// the path relative to root, slash-separated (Flux's spec.ignore).
	Exclude func(rel string, isDir bool) bool `json:"-"`
	// IncludeGlob and ExcludeGlob are Argo CD's directory.include and
	// directory.exclude: globs, with {a,b} alternatives, matched against
	// a file's path relative to dir; "*" also matches "/", as in Argo CD.
	// Empty means every file, and no file.
	IncludeGlob, ExcludeGlob string
	// Jsonnet, if set, evaluates .jsonnet files too (Argo CD does, Flux
	// does not). If nil, .jsonnet files are not read.
	Jsonnet *JsonnetOptions
	// Subfolder, if set, renders a sub-folder that holds a kustomization
	// file, which is then not walked: Flux builds a plain path as a
	// kustomization whose resources are its files and such folders. If
	// nil, every file is read as a manifest.
	Subfolder func(dir string) ([]object.Decoded, error) `json:"-"`
}

// RenderDirectory reads every .yaml, .yml and .json file under dir (a
// folder inside root), in lexical path order, as multi-document streams,
// and evaluates every .jsonnet file when o.Jsonnet is set. Each object
// remembers its file, relative to root.
func RenderDirectory(root, dir string, o DirectoryOptions) ([]object.Decoded, error) {
	if err := CheckTree(root, dir, o.MaxFileSize); err != nil {
		return nil, err
	}
	include, exclude, err := compileGlobs(o.IncludeGlob, o.ExcludeGlob)
	if err != nil {
		return nil, err
	}
	var files []string
	subfolders := map[string]bool{}
	err = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			if path != dir && (!o.Recurse || strings.HasPrefix(d.Name(), ".") || (o.Exclude != nil && o.Exclude(filepath.ToSlash(rel), true))) {
				return filepath.SkipDir
			}
			if path != dir && o.Subfolder != nil && Detect(path) == Kustomize {
				files = append(files, path)
				subfolders[path] = true
				return filepath.SkipDir
			}
			return nil
		}
		if o.Exclude != nil && o.Exclude(filepath.ToSlash(rel), false) {
			return nil
		}
		inDir, _ := filepath.Rel(dir, path)
		if (include != nil && !include.Match(inDir)) || (exclude != nil && exclude.Match(inDir)) {
			return nil
		}
		switch strings.ToLower(filepath.Ext(path)) {
		case ".yaml", ".yml", ".json":
			files = append(files, path)
		case ".jsonnet":
			if o.Jsonnet != nil {
				files = append(files, path)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	var out []object.Decoded
	for _, path := range files {
		rel, _ := filepath.Rel(root, path)
		if subfolders[path] {
			objs, err := o.Subfolder(path)
			if err != nil {
				return nil, err
			}
			out = append(out, objs...)
			continue
		}
		if strings.EqualFold(filepath.Ext(path), ".jsonnet") {
			objs, err := renderJsonnet(root, dir, path, *o.Jsonnet, o.MaxFileSize)
			if err != nil {
				return nil, err
			}
			out = append(out, objs...)
			continue
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", rel, err)
		}
		objs, err := DecodeManifests(data, filepath.ToSlash(rel))
		if err != nil {
			return nil, err
		}
		out = append(out, objs...)
	}
	return out, nil
}

// DecodeManifests decodes a manifest stream; every renderer's output goes
// through it. The YAML library stops a document whose aliases expand out
// of proportion (a "billion laughs"); that is reported as ErrAliasBomb.
func DecodeManifests(data []byte, file string) ([]object.Decoded, error) {
	objs, err := object.Decode(data, file)
	if err != nil && strings.Contains(err.Error(), "excessive aliasing") {
		return nil, fmt.Errorf("%s: %w", file, ErrAliasBomb)
	}
	return objs, err
}

// compileGlobs compiles Argo CD's include and exclude patterns. Argo CD
// compiles them with no separator, so "*" matches across folders.
func compileGlobs(include, exclude string) (inc, exc glob.Glob, err error) {
	if include != "" {
		if inc, err = glob.Compile(include); err != nil {
			return nil, nil, fmt.Errorf("directory include %q: %w", include, err)
		}
	}
	if exclude != "" {
		if exc, err = glob.Compile(exclude); err != nil {
			return nil, nil, fmt.Errorf("directory exclude %q: %w", exclude, err)
		}
	}
	return inc, exc, nil
}

// HasJsonnet reports whether RenderDirectory with these options would
// meet a .jsonnet file under dir, so that a caller can keep the costly
// isolation Jsonnet needs (a render child) for folders that have one.
// Include and exclude globs are not applied: a folder with an excluded
// .jsonnet file still reports true. When the folder cannot be read it
// reports true, and the render then says why.
func HasJsonnet(dir string, recurse bool) bool {
	found := false
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != dir && (!recurse || strings.HasPrefix(d.Name(), ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.ToLower(filepath.Ext(path)) == ".jsonnet" {
			found = true
			return filepath.SkipAll
		}
		return nil
	})
	return found || err != nil
}
