// Package kustomize renders kustomizations with sigs.k8s.io/kustomize/api
// (krusty), as `kustomize build` does, with load restrictions on, the
// filesystem fenced to the snapshot, and remote bases refused unless
// allowed.
package kustomize

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"converge.dev/converge/internal/object"
	"converge.dev/converge/internal/render"
)

// Options configure Render.
type Options struct {
	// AllowRemoteBases lets resources, bases and components be URLs,
	// fetched by kustomize itself. If false, such an entry is an error.
	AllowRemoteBases bool
	// MaxFileSize bounds one file. If zero, render.DefaultMaxFileSize.
	MaxFileSize int64
	// Components are kustomize components (paths relative to the
	// folder) added to its kustomization, as Flux's spec.components. A
	// folder without a kustomization gets one listing its manifests.
	Components []string
}

// ErrRemoteBase is a kustomization entry that points outside the snapshot.
var ErrRemoteBase = errors.New("remote base refused")

// Render builds the kustomization in dir, a folder inside root. Objects
// carry the kustomization file as their source.
func Render(root, dir string, o Options) ([]object.Decoded, error) {
	if err := render.CheckTree(root, dir, o.MaxFileSize); err != nil {
		return nil, err
	}
	rel, _ := filepath.Rel(root, dir)
	file := filepath.ToSlash(filepath.Join(rel, kustomizationFile(dir)))
	if !o.AllowRemoteBases {
		if err := refuseRemote(root, dir, map[string]bool{}); err != nil {
			return nil, err
		}
	}
	opts := krusty.MakeDefaultOptions()
	opts.LoadRestrictions = types.LoadRestrictionsRootOnly
	k := krusty.MakeKustomizer(opts)
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	realRoot, _ = filepath.Abs(realRoot)
	var fs filesys.FileSystem = fenced{FileSystem: filesys.MakeFsOnDisk(), root: realRoot}
	if len(o.Components) > 0 {
		if fs, err = withComponents(fs, dir, o.Components); err != nil {
			return nil, fmt.Errorf("%s: components: %w", file, err)
		}
	}
	res, err := k.Run(fs, dir)
	if err != nil {
		return nil, fmt.Errorf("%s: kustomize build: %w", file, err)
	}
	out, err := res.AsYaml()
	if err != nil {
		return nil, fmt.Errorf("%s: kustomize output: %w", file, err)
	}
	return render.DecodeManifests(out, file)
}

func kustomizationFile(dir string) string {
	for _, name := range []string{"kustomization.yaml", "kustomization.yml", "Kustomization"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return name
		}
	}
	return "kustomization.yaml"
}

// refuseRemote walks the kustomization graph from dir and fails on the
// first entry that is a URL rather than a path.
func refuseRemote(root, dir string, seen map[string]bool) error {
	if seen[dir] {
		return nil
	}
	seen[dir] = true
	name := kustomizationFile(dir)
	data, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return nil // a plain folder of resources
	}
	var k struct {
		Resources  []string `json:"resources"`
		Bases      []string `json:"bases"`
		Components []string `json:"components"`
	}
	if err := yaml.Unmarshal(data, &k); err != nil {
		rel, _ := filepath.Rel(root, filepath.Join(dir, name))
		return fmt.Errorf("%s: %w", rel, err)
	}
	for _, entry := range append(append(k.Resources, k.Bases...), k.Components...) {
		rel, _ := filepath.Rel(root, filepath.Join(dir, name))
		if isRemote(entry) {
			return fmt.Errorf("%s: resources entry %q: %w (allow remote bases to use it)", rel, entry, ErrRemoteBase)
		}
		sub := filepath.Join(dir, entry)
		if fi, err := os.Stat(sub); err == nil && fi.IsDir() {
			if err := refuseRemote(root, sub, seen); err != nil {
				return err
			}
		}
	}
	return nil
}

func isRemote(entry string) bool {
	return strings.Contains(entry, "://") || strings.HasPrefix(entry, "git@") ||
		strings.HasPrefix(entry, "github.com/") || strings.HasPrefix(entry, "gitlab.com/") ||
		strings.Contains(entry, "?ref=") || strings.Contains(entry, ".git//")
}

// fenced refuses reads outside root, so a "../../.." base or a patch
// cannot pull files from elsewhere on the machine.
type fenced struct {
	filesys.FileSystem
	root string
}

func (f fenced) check(path string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	// Resolve links, so that a link inside the snapshot cannot point out.
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	rel, err := filepath.Rel(f.root, abs)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return fmt.Errorf("%s: %w", path, render.ErrPathEscapes)
	}
	return nil
}

func (f fenced) Open(path string) (filesys.File, error) {
	if err := f.check(path); err != nil {
		return nil, err
	}
	return f.FileSystem.Open(path)
}

func (f fenced) ReadFile(path string) ([]byte, error) {
	if err := f.check(path); err != nil {
		return nil, err
	}
	return f.FileSystem.ReadFile(path)
}

func (f fenced) ReadDir(path string) ([]string, error) {
	if err := f.check(path); err != nil {
		return nil, err
	}
	return f.FileSystem.ReadDir(path)
}

func (f fenced) CleanedAbs(path string) (filesys.ConfirmedDir, string, error) {
	if err := f.check(path); err != nil {
		return "", "", err
	}
	return f.FileSystem.CleanedAbs(path)
}

func (f fenced) Exists(path string) bool { return f.check(path) == nil && f.FileSystem.Exists(path) }
func (f fenced) IsDir(path string) bool  { return f.check(path) == nil && f.FileSystem.IsDir(path) }

func (f fenced) Walk(path string, fn filepath.WalkFunc) error {
	if err := f.check(path); err != nil {
		return err
	}
	return f.FileSystem.Walk(path, fn)
}

// withComponents shadows the folder's kustomization file with one that
// also lists the components; nothing on disk changes.
func withComponents(fs filesys.FileSystem, dir string, components []string) (filesys.FileSystem, error) {
	name := filepath.Join(dir, kustomizationFile(dir))
	k := types.Kustomization{}
	if fs.Exists(name) {
		data, err := fs.ReadFile(name)
		if err != nil {
			return nil, err
		}
		if err := yaml.Unmarshal(data, &k); err != nil {
			return nil, err
		}
	} else {
		// As Flux does: a folder of plain manifests becomes a kustomization
		// of all of them.
		entries, err := os.ReadDir(dir)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			switch strings.ToLower(filepath.Ext(e.Name())) {
			case ".yaml", ".yml", ".json":
				k.Resources = append(k.Resources, e.Name())
			}
		}
	}
	if k.APIVersion == "" {
		k.APIVersion, k.Kind = types.KustomizationVersion, types.KustomizationKind
	}
	k.Components = append(k.Components, components...)
	data, err := yaml.Marshal(k)
	if err != nil {
		return nil, err
	}
	return shadow{FileSystem: fs, path: filepath.Clean(name), data: data}, nil
}

// shadow answers one file from memory and everything else from the
// underlying file system.
type shadow struct {
	filesys.FileSystem
	path string
	data []byte
}

func (s shadow) ReadFile(path string) ([]byte, error) {
	if filepath.Clean(path) == s.path {
		return s.data, nil
	}
	return s.FileSystem.ReadFile(path)
}

func (s shadow) Exists(path string) bool {
	return filepath.Clean(path) == s.path || s.FileSystem.Exists(path)
}

// CleanedAbs answers for the in-memory file, which the disk cannot
// resolve when the folder had no kustomization of its own.
func (s shadow) CleanedAbs(path string) (filesys.ConfirmedDir, string, error) {
	if filepath.Clean(path) == s.path {
		d, f := filepath.Split(s.path)
		return filesys.ConfirmedDir(filepath.Clean(d)), f, nil
	}
	return s.FileSystem.CleanedAbs(path)
}
