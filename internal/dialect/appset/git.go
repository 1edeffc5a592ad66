package appset

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/gobwas/glob"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
)

// gitGenerator is Argo CD's git generator.
type gitGenerator struct {
	RepoURL     string `json:"repoURL"`
	Revision    string `json:"revision"`
	Directories []struct {
		Path    string `json:"path"`
		Exclude bool   `json:"exclude,omitempty"`
	} `json:"directories,omitempty"`
	Files []struct {
		Path    string `json:"path"`
		Exclude bool   `json:"exclude,omitempty"`
	} `json:"files,omitempty"`
	PathParamPrefix string                           `json:"pathParamPrefix,omitempty"`
	Values          map[string]string                `json:"values,omitempty"`
	Template        *v1alpha1.ApplicationSetTemplate `json:"template,omitempty"`
	// RequeueAfterSeconds is accepted: converge generates again on its
	// own interval and when a cluster or the set changes.
	RequeueAfterSeconds *int64 `json:"requeueAfterSeconds,omitempty"`
}

// gitGenerate yields one set per directory (directories) or per file
// (files, whose JSON or YAML content are parameters too), with the path
// parameters Argo CD documents.
func gitGenerate(ctx context.Context, at string, raw *apiextensionsv1.JSON, in Inputs) (Generated, error) {
	var g gitGenerator
	if err := strictJSON(raw.Raw, &g); err != nil {
		return Generated{}, fmt.Errorf("%s: %w", at, err)
	}
	gen := Generated{Generator: at, Template: g.Template}
	switch {
	case g.RepoURL == "":
		return gen, fmt.Errorf("%s.repoURL is required", at)
	case len(g.Directories) == 0 && len(g.Files) == 0:
		return gen, fmt.Errorf("%s: neither directories nor files", at)
	case len(g.Directories) > 0 && len(g.Files) > 0:
		return gen, fmt.Errorf("%s: directories and files exclude each other", at)
	case in.Checkout == nil:
		return gen, fmt.Errorf("%s: no Git access", at)
	}
	dir, err := in.Checkout(ctx, g.RepoURL, g.Revision)
	if err != nil {
		// A repository that cannot be read yields nothing known, which
		// is not "no directories": the round fails and deletes nothing.
		return gen, fmt.Errorf("%s: %w", at, err)
	}
	if len(g.Directories) > 0 {
		var include, exclude []string
		for _, d := range g.Directories {
			if d.Exclude {
				exclude = append(exclude, d.Path)
			} else {
				include = append(include, d.Path)
			}
		}
		dirs, err := matchingDirs(dir, include, exclude)
		if err != nil {
			return gen, fmt.Errorf("%s.directories: %w", at, err)
		}
		for _, d := range dirs {
			p, err := withValues(pathParams(d, false, g.PathParamPrefix, nil), g.Values, in)
			if err != nil {
				return gen, fmt.Errorf("%s.values: %s: %w", at, d, err)
			}
			gen.Params = append(gen.Params, p)
		}
		return gen, nil
	}
	var include, exclude []glob.Glob
	for i, f := range g.Files {
		gl, err := glob.Compile(f.Path, '/')
		if err != nil {
			return gen, fmt.Errorf("%s.files[%d].path: %w", at, i, err)
		}
		if f.Exclude {
			exclude = append(exclude, gl)
		} else {
			include = append(include, gl)
		}
	}
	files, err := walkFiles(dir, include, exclude)
	if err != nil {
		return gen, fmt.Errorf("%s.files: %w", at, err)
	}
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(f)))
		if err != nil {
			return gen, fmt.Errorf("%s: %s: %w", at, f, err)
		}
		// A file may hold one object, or a list of them: one set each.
		var docs []map[string]any
		var one map[string]any
		if err := yaml.Unmarshal(data, &one); err == nil && one != nil {
			docs = []map[string]any{one}
		} else if err := yaml.Unmarshal(data, &docs); err != nil {
			return gen, fmt.Errorf("%s: %s is not a JSON or YAML object or list of objects", at, f)
		}
		for _, d := range docs {
			p, err := withValues(pathParams(f, true, g.PathParamPrefix, d), g.Values, in)
			if err != nil {
				return gen, fmt.Errorf("%s.values: %s: %w", at, f, err)
			}
			gen.Params = append(gen.Params, p)
		}
	}
	return gen, nil
}

// matchingDirs are the repository's directories some include pattern
// matches (path.Match: '*' stays within a segment) and no exclude does.
func matchingDirs(root string, include, exclude []string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() || p == root {
			return nil
		}
		rel := filepath.ToSlash(strings.TrimPrefix(p, root+string(filepath.Separator)))
		if d.Name() == ".git" {
			return filepath.SkipDir
		}
		if matchAny(include, rel) && !matchAny(exclude, rel) {
			out = append(out, rel)
		}
		return nil
	})
	sort.Strings(out)
	return out, err
}

func matchAny(patterns []string, p string) bool {
	for _, pat := range patterns {
		if ok, _ := path.Match(pat, p); ok {
			return true
		}
	}
	return false
}

func walkFiles(root string, include, exclude []glob.Glob) ([]string, error) {
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == ".git" {
				return filepath.SkipDir
			}
			return nil
		}
		rel := filepath.ToSlash(strings.TrimPrefix(p, root+string(filepath.Separator)))
		in, out2 := false, false
		for _, g := range include {
			in = in || g.Match(rel)
		}
		for _, g := range exclude {
			out2 = out2 || g.Match(rel)
		}
		if in && !out2 {
			out = append(out, rel)
		}
		return nil
	})
	sort.Strings(out)
	return out, err
}

// pathParams are Argo CD's path parameters for p (a directory, or a
// file's folder for files), under prefix, with a file's content.
func pathParams(p string, file bool, prefix string, content map[string]any) Params {
	dir := p
	if file {
		dir = path.Dir(p)
	}
	segments := strings.Split(dir, "/")
	pp := map[string]any{"path": dir, "basename": path.Base(dir), "basenameNormalized": normalize(path.Base(dir))}
	if file {
		pp["filename"], pp["filenameNormalized"] = path.Base(p), normalize(path.Base(p))
	}
	segs := make([]any, len(segments))
	for i, s := range segments {
		segs[i] = s
	}
	pp["segments"] = segs
	key := "path"
	if prefix != "" {
		key = prefix + ".path"
	}
	goParams := map[string]any{}
	for k, v := range content {
		goParams[k] = v
	}
	flat := flatten(content)
	if prefix != "" {
		goParams[prefix] = map[string]any{"path": pp}
	} else {
		goParams["path"] = pp
	}
	flat[key] = dir
	for _, k := range []string{"basename", "basenameNormalized", "filename", "filenameNormalized"} {
		if v, ok := pp[k]; ok {
			flat[key+"."+k] = v.(string)
		}
	}
	for i, s := range segments {
		flat[key+"["+strconv.Itoa(i)+"]"] = s
	}
	return Params{Go: goParams, Flat: flat}
}

// strictJSON decodes, refusing fields converge does not know: a generator
// option ignored would generate something else than Argo CD does.
func strictJSON(data []byte, out any) error {
	if err := yaml.UnmarshalStrict(data, out); err != nil {
		return fmt.Errorf("%w (a field converge does not support yet is refused, not ignored)", err)
	}
	return nil
}
