// Package reposcan reads what a Git repository declares, offline: every
// YAML manifest by file, the kustomize folders and which include which,
// the CODEOWNERS file, and the units it deploys (Argo CD Applications,
// Flux Kustomizations, kustomize folders no other includes), for the
// checks that run before a merge (lint, validate).
package reposcan

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
	"converge.dev/converge/internal/dialect/argocd"
	"converge.dev/converge/internal/engine"
	"converge.dev/converge/internal/object"
)

// Repo is what Scan read: every manifest, by file, and the kustomize
// folders.
type Repo struct {
	Root string
	Docs []Doc
	// kustomizeDirs are folders with a kustomization file; referenced
	// those another includes (a base, a component).
	KustomizeDirs []string
	Referenced    map[string]bool
	// CodeOwners is the CODEOWNERS file, "" without one, and its text.
	CodeOwners, CodeOwnersText string
}

// Doc is one manifest document and its file, relative to the root.
type Doc struct {
	File string
	// Document counts from 1 in File.
	Document int
	Obj      *unstructured.Unstructured
}

// Scan reads every YAML manifest under root. A file that is not YAML
// manifests (a Helm template, a values file) is not one.
func Scan(root string) (*Repo, error) {
	r := &Repo{Root: root, Referenced: map[string]bool{}}
	charts := map[string]bool{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if d.Name() == ".git" || d.Name() == "node_modules" {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(path, "Chart.yaml")); err == nil {
				charts[rel] = true
			}
			for _, k := range []string{"kustomization.yaml", "kustomization.yml", "Kustomization"} {
				if _, err := os.Stat(filepath.Join(path, k)); err == nil {
					r.KustomizeDirs = append(r.KustomizeDirs, rel)
					r.reference(rel, filepath.Join(path, k))
					break
				}
			}
			return nil
		}
		switch rel {
		case "CODEOWNERS", ".github/CODEOWNERS", ".gitea/CODEOWNERS", "docs/CODEOWNERS":
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			r.CodeOwners, r.CodeOwnersText = rel, string(data)
			return nil
		}
		ext := filepath.Ext(path)
		if ext != ".yaml" && ext != ".yml" || inChart(rel, charts) {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		objs, err := object.Decode(data, rel)
		if err != nil {
			return nil
		}
		for _, d := range objs {
			r.Docs = append(r.Docs, Doc{File: rel, Document: d.Source.Document, Obj: d.Object})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("scan %s: %w", root, err)
	}
	return r, nil
}

// inChart says whether rel is inside a Helm chart's folder: its
// templates are not manifests until rendered.
func inChart(rel string, charts map[string]bool) bool {
	for dir := filepath.Dir(rel); dir != "." && dir != "/"; dir = filepath.Dir(dir) {
		if charts[filepath.ToSlash(dir)] {
			return true
		}
	}
	return false
}

// reference marks the folders a kustomization includes.
func (r *Repo) reference(dir, file string) {
	data, err := os.ReadFile(file)
	if err != nil {
		return
	}
	var k struct {
		Resources  []string `json:"resources"`
		Bases      []string `json:"bases"`
		Components []string `json:"components"`
	}
	if yaml.Unmarshal(data, &k) != nil {
		return
	}
	for _, ref := range append(append(k.Resources, k.Bases...), k.Components...) {
		if strings.Contains(ref, "://") {
			continue
		}
		r.Referenced[filepath.ToSlash(filepath.Clean(filepath.Join(dir, ref)))] = true
	}
}

// Of lists the documents of group/kind.
func (r *Repo) Of(group, kind string) []Doc {
	var out []Doc
	for _, d := range r.Docs {
		if d.Obj.GetKind() == kind && d.Obj.GroupVersionKind().Group == group {
			out = append(out, d)
		}
	}
	return out
}

// Application reads an Application document.
func Application(d Doc) (*v1alpha1.Application, bool) {
	app := &v1alpha1.Application{}
	if runtime.DefaultUnstructuredConverter.FromUnstructured(d.Obj.Object, app) != nil {
		return nil, false
	}
	return app, true
}

// Unit is a folder the repository deploys, as a sync would render it.
type Unit struct {
	engine.Unit
	// File declares it: the Application or Kustomization's file, or the
	// kustomize folder itself.
	File string
	// Name is the declaring object's name, "" for a folder.
	Name string
}

// Units are the repository's Applications, Kustomizations and the
// kustomize folders none of them or another kustomization includes.
func (r *Repo) Units() []Unit {
	var out []Unit
	covered := map[string]bool{}
	exists := func(p string) bool {
		st, err := os.Stat(filepath.Join(r.Root, p))
		return err == nil && st.IsDir()
	}
	for _, d := range r.Of("argoproj.io", "Application") {
		app, ok := Application(d)
		if !ok {
			continue
		}
		u, _, err := argocd.ToUnit(app)
		if err != nil || u.Path == "" || !exists(u.Path) {
			continue
		}
		u.Path = clean(u.Path)
		covered[u.Path] = true
		out = append(out, Unit{Unit: u, File: d.File, Name: app.Name})
	}
	for _, d := range r.Of("kustomize.toolkit.fluxcd.io", "Kustomization") {
		p, _, _ := unstructured.NestedString(d.Obj.Object, "spec", "path")
		ns, _, _ := unstructured.NestedString(d.Obj.Object, "spec", "targetNamespace")
		p = clean(p)
		if !exists(p) || covered[p] {
			continue
		}
		covered[p] = true
		u := engine.Unit{Path: p, DestNamespace: ns}
		u.Render.Recurse = true
		out = append(out, Unit{Unit: u, File: d.File, Name: d.Obj.GetName()})
	}
	for _, dir := range r.KustomizeDirs {
		if covered[dir] || r.Referenced[dir] {
			continue
		}
		out = append(out, Unit{Unit: engine.Unit{Path: dir}, File: dir})
	}
	return out
}

func clean(p string) string {
	p = strings.Trim(filepath.ToSlash(filepath.Clean(p)), "/")
	if p == "" {
		return "."
	}
	return p
}
