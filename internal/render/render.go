// Package render turns a folder of a source snapshot into Kubernetes
// objects. It defines the options every renderer shares, detects which
// kind of folder it is, renders plain folders of YAML and JSON, and holds
// the guards that every renderer goes through: paths that climb out,
// symlinks that leave the snapshot, oversized files and YAML alias bombs
// are refused with a named error. Kustomize and Helm renderers live in
// sub-packages.
package render

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Kind is what a folder holds.
type Kind string

// The kinds of folder. Detect picks one when the user does not.
const (
	Directory Kind = "directory"
	Kustomize Kind = "kustomize"
	Helm      Kind = "helm"
)

// DefaultMaxFileSize bounds one manifest file, so that a huge or hostile
// file cannot exhaust memory.
const DefaultMaxFileSize = 4 << 20

// Errors for refused input. Each is wrapped with the file it concerns.
var (
	ErrPathEscapes    = errors.New("path leaves the repository")
	ErrSymlinkEscapes = errors.New("symlink leaves the repository")
	ErrFileTooLarge   = errors.New("file is larger than the limit")
	ErrAliasBomb      = errors.New("YAML uses too many aliases")
)

// Detect says what the folder holds: a kustomization file makes it
// Kustomize, a Chart.yaml makes it Helm, anything else is a Directory.
func Detect(dir string) Kind {
	for _, name := range []string{"kustomization.yaml", "kustomization.yml", "Kustomization"} {
		if isFile(filepath.Join(dir, name)) {
			return Kustomize
		}
	}
	if isFile(filepath.Join(dir, "Chart.yaml")) {
		return Helm
	}
	return Directory
}

// Join resolves path inside root and refuses a path that leaves it,
// whether by "..", by being absolute, or through a symlink.
func Join(root, path string) (string, error) {
	clean := filepath.Clean(filepath.FromSlash(path))
	if filepath.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, ".."+string(filepath.Separator)) {
		return "", fmt.Errorf("%q: %w", path, ErrPathEscapes)
	}
	full := filepath.Join(root, clean)
	if err := inside(root, full); err != nil {
		return "", fmt.Errorf("%q: %w", path, err)
	}
	return full, nil
}

// inside checks that path, with every symlink resolved, stays under root.
func inside(root, path string) error {
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return err
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%w (or a link in it is dangling)", os.ErrNotExist)
		}
		return err
	}
	rel, err := filepath.Rel(realRoot, real)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return ErrSymlinkEscapes
	}
	return nil
}

// CheckTree walks dir and refuses any symlink that leaves root and any
// file over maxSize (zero: DefaultMaxFileSize). Renderers call it before
// they read anything, so a library never follows a hostile link.
func CheckTree(root, dir string, maxSize int64) error {
	if maxSize == 0 {
		maxSize = DefaultMaxFileSize
	}
	return filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.Type()&os.ModeSymlink != 0 {
			if err := inside(root, path); err != nil {
				return fmt.Errorf("%s: %w", rel, err)
			}
			return nil
		}
		if d.IsDir() {
			if d.Name() == ".git" {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.Size() > maxSize {
			return fmt.Errorf("%s: %w (%d bytes, limit %d)", rel, ErrFileTooLarge, info.Size(), maxSize)
		}
		return nil
	})
}

func isFile(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular()
}
