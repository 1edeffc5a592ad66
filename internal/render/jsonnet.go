package render

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-jsonnet"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/json"

	"converge.dev/converge/internal/object"
)

// JsonnetOptions configure the Jsonnet files of a plain folder, as Argo
// CD's spec.source.directory.jsonnet does. The zero value evaluates each
// file with no variables, importing from the file's own folder and the
// application's folder.
type JsonnetOptions struct {
	// ExtVars are external variables (std.extVar).
	ExtVars []JsonnetVar `json:"extVars,omitempty"`
	// TLAs are top-level arguments, for files that are functions.
	TLAs []JsonnetVar `json:"tlas,omitempty"`
	// Libs are library folders, relative to the repository root, searched
	// for imports after the application's folder.
	Libs []string `json:"libs,omitempty"`
	// Env is substituted into variable values as $NAME or ${NAME}, as
	// Argo CD does with its build environment (ARGOCD_APP_NAME...); $$
	// is a literal $. A name not in Env becomes empty.
	Env map[string]string `json:"env,omitempty"`
}

// JsonnetVar is a variable or argument: a string, or Jsonnet code when
// Code is set.
type JsonnetVar struct {
	Name  string `json:"name"`
	Value string `json:"value"`
	Code  bool   `json:"code,omitempty"`
}

// ErrJsonnetOutput is Jsonnet output that is not an object or a list of
// objects.
var ErrJsonnetOutput = errors.New("jsonnet output is not an object or a list of objects")

// jsonnetMaxStack bounds recursion; go-jsonnet's own default.
const jsonnetMaxStack = 500

// renderJsonnet evaluates one file under root. Its output is one object
// or a list of them (nested lists are flattened, as Argo CD reads them).
func renderJsonnet(root, appDir, path string, o JsonnetOptions, maxSize int64) ([]object.Decoded, error) {
	rel, _ := filepath.Rel(root, path)
	rel = filepath.ToSlash(rel)
	vm := jsonnet.MakeVM()
	vm.MaxStack = jsonnetMaxStack
	for _, v := range o.ExtVars {
		if v.Code {
			vm.ExtCode(v.Name, substEnv(v.Value, o.Env))
		} else {
			vm.ExtVar(v.Name, substEnv(v.Value, o.Env))
		}
	}
	for _, v := range o.TLAs {
		if v.Code {
			vm.TLACode(v.Name, substEnv(v.Value, o.Env))
		} else {
			vm.TLAVar(v.Name, substEnv(v.Value, o.Env))
		}
	}
	imp := &importer{root: root, paths: []string{appDir}, maxSize: maxSize, cache: map[string]jsonnet.Contents{}}
	for _, lib := range o.Libs {
		dir, err := Join(root, lib)
		if err != nil {
			return nil, fmt.Errorf("%s: jsonnet libs: %w", rel, err)
		}
		imp.paths = append(imp.paths, dir)
	}
	vm.Importer(imp)
	out, err := vm.EvaluateFile(path)
	if err != nil {
		// Jsonnet's trace names files by their path on this machine; the
		// user knows them by their path in the repository.
		msg := strings.ReplaceAll(err.Error(), filepath.Clean(root)+string(filepath.Separator), "")
		return nil, fmt.Errorf("%s: jsonnet: %s", rel, strings.TrimSpace(msg))
	}
	// apimachinery's json keeps whole numbers int64, as objects decoded
	// from YAML have them.
	var v any
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		return nil, fmt.Errorf("%s: jsonnet: %w", rel, err)
	}
	var objs []object.Decoded
	var collect func(v any) error
	collect = func(v any) error {
		switch x := v.(type) {
		case []any:
			for _, e := range x {
				if err := collect(e); err != nil {
					return err
				}
			}
			return nil
		case map[string]any:
			u := &unstructured.Unstructured{Object: x}
			if u.GetKind() == "" || u.GetAPIVersion() == "" {
				return fmt.Errorf("%s: %w: an object has no kind or apiVersion", rel, ErrJsonnetOutput)
			}
			objs = append(objs, object.Decoded{Object: u, Source: object.Source{File: rel, Document: len(objs) + 1}})
			return nil
		case nil:
			return nil
		}
		return fmt.Errorf("%s: %w: found %T", rel, ErrJsonnetOutput, v)
	}
	if err := collect(v); err != nil {
		return nil, err
	}
	return objs, nil
}

// substEnv expands $NAME and ${NAME} from env; $$ stays a $.
func substEnv(s string, env map[string]string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	return os.Expand(s, func(name string) string {
		if name == "$" {
			return "$"
		}
		return env[name]
	})
}

// importer reads imports for go-jsonnet, only from inside the
// repository: an absolute path, a ".." that climbs out, or a symlink that
// leaves it is refused, so a hostile file cannot read the controller's
// own files. Jsonnet's rule is kept: relative to the importing file
// first, then each library path in order.
type importer struct {
	root    string
	paths   []string
	maxSize int64
	cache   map[string]jsonnet.Contents
}

func (im *importer) Import(importedFrom, importedPath string) (jsonnet.Contents, string, error) {
	var candidates []string
	switch {
	case importedFrom == "":
		// The file EvaluateFile was given: ours, checked like any other.
		candidates = []string{importedPath}
	case filepath.IsAbs(importedPath):
		return jsonnet.Contents{}, "", fmt.Errorf("import %q: %w", importedPath, ErrPathEscapes)
	default:
		if importedFrom != "" {
			candidates = append(candidates, filepath.Join(filepath.Dir(importedFrom), importedPath))
		}
		for _, p := range im.paths {
			candidates = append(candidates, filepath.Join(p, importedPath))
		}
	}
	for _, c := range candidates {
		if cached, ok := im.cache[c]; ok {
			return cached, c, nil
		}
		rel, err := filepath.Rel(im.root, c)
		if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			return jsonnet.Contents{}, "", fmt.Errorf("import %q: %w", importedPath, ErrPathEscapes)
		}
		if err := inside(im.root, c); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return jsonnet.Contents{}, "", fmt.Errorf("import %q: %w", importedPath, err)
		}
		fi, err := os.Stat(c)
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		maxSize := im.maxSize
		if maxSize == 0 {
			maxSize = DefaultMaxFileSize
		}
		if fi.Size() > maxSize {
			return jsonnet.Contents{}, "", fmt.Errorf("import %q: %w (%d bytes, limit %d)", importedPath, ErrFileTooLarge, fi.Size(), maxSize)
		}
		data, err := os.ReadFile(c)
		if err != nil {
			return jsonnet.Contents{}, "", fmt.Errorf("import %q: %w", importedPath, err)
		}
		contents := jsonnet.MakeContentsRaw(data)
		im.cache[c] = contents
		return contents, c, nil
	}
	return jsonnet.Contents{}, "", fmt.Errorf("import %q: not found in the repository", importedPath)
}
