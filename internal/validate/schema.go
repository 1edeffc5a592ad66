package validate

import (
	"bytes"
	"compress/gzip"
	"embed"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

//go:generate go run gen.go v1.37.2

//go:embed schemas/*.json.gz
var shipped embed.FS

// Schema is an OpenAPI schema as Kubernetes writes them, in its v2
// document and in a CRD's openAPIV3Schema alike.
type Schema struct {
	Ref                  string             `json:"$ref,omitempty"`
	Type                 string             `json:"type,omitempty"`
	Format               string             `json:"format,omitempty"`
	Properties           map[string]*Schema `json:"properties,omitempty"`
	AdditionalProperties *SchemaOrBool      `json:"additionalProperties,omitempty"`
	Items                *Schema            `json:"items,omitempty"`
	Required             []string           `json:"required,omitempty"`
	Enum                 []any              `json:"enum,omitempty"`
	AllOf                []*Schema          `json:"allOf,omitempty"`
	PreserveUnknown      bool               `json:"x-kubernetes-preserve-unknown-fields,omitempty"`
	IntOrString          bool               `json:"x-kubernetes-int-or-string,omitempty"`
	EmbeddedResource     bool               `json:"x-kubernetes-embedded-resource,omitempty"`
	GVK                  []struct {
		Group   string `json:"group"`
		Version string `json:"version"`
		Kind    string `json:"kind"`
	} `json:"x-kubernetes-group-version-kind,omitempty"`
}

// SchemaOrBool is additionalProperties: a schema, or true/false.
type SchemaOrBool struct {
	Allows bool
	Schema *Schema
}

func (s *SchemaOrBool) UnmarshalJSON(data []byte) error {
	if bytes.Equal(bytes.TrimSpace(data), []byte("true")) || bytes.Equal(bytes.TrimSpace(data), []byte("false")) {
		s.Allows = bytes.Equal(bytes.TrimSpace(data), []byte("true"))
		return nil
	}
	s.Allows = true
	return json.Unmarshal(data, &s.Schema)
}

// Schemas are the schemas objects validate against, by kind.
type Schemas struct {
	// Source says where the built-in kinds' schemas come from.
	Source string
	defs   map[string]*Schema
	byGVK  map[schema.GroupVersionKind]*Schema
}

// Versions are the Kubernetes versions whose schemas ship in converge.
func Versions() []string {
	entries, _ := shipped.ReadDir("schemas")
	var out []string
	for _, e := range entries {
		out = append(out, "v"+strings.TrimSuffix(strings.TrimPrefix(e.Name(), "kubernetes-"), ".json.gz"))
	}
	sort.Strings(out)
	return out
}

// Builtin are the schemas of Kubernetes version ("v1.37"; "" the
// newest shipped).
func Builtin(version string) (*Schemas, error) {
	all := Versions()
	if version == "" {
		version = all[len(all)-1]
	}
	parts := strings.Split(strings.TrimPrefix(version, "v"), ".")
	if len(parts) < 2 {
		return nil, fmt.Errorf("kubernetes version %q: want v1.MINOR", version)
	}
	minor := parts[0] + "." + parts[1]
	f, err := shipped.Open("schemas/kubernetes-" + minor + ".json.gz")
	if err != nil {
		return nil, fmt.Errorf("kubernetes version %s: converge ships the schemas of %s (or read them from a cluster with --kubeconfig)", version, strings.Join(all, ", "))
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		return nil, err
	}
	s, err := FromOpenAPIV2(data)
	if err != nil {
		return nil, err
	}
	s.Source = "Kubernetes v" + minor + " (shipped)"
	return s, nil
}

// FromOpenAPIV2 reads a cluster's /openapi/v2 document: its built-in
// kinds, and the CRDs it serves.
func FromOpenAPIV2(data []byte) (*Schemas, error) {
	var doc struct {
		Definitions map[string]*Schema `json:"definitions"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("OpenAPI v2 document: %w", err)
	}
	s := &Schemas{Source: "the cluster's OpenAPI", defs: doc.Definitions, byGVK: map[schema.GroupVersionKind]*Schema{}}
	for _, d := range doc.Definitions {
		for _, g := range d.GVK {
			s.byGVK[schema.GroupVersionKind{Group: g.Group, Version: g.Version, Kind: g.Kind}] = d
		}
	}
	return s, nil
}

// AddCRD adds the schemas of a CustomResourceDefinition's versions. One
// without a schema is a kind whose objects are not checked.
func (s *Schemas) AddCRD(crd *unstructured.Unstructured) error {
	group, _, _ := unstructured.NestedString(crd.Object, "spec", "group")
	kind, _, _ := unstructured.NestedString(crd.Object, "spec", "names", "kind")
	versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	for i, v := range versions {
		vm, _ := v.(map[string]any)
		name, _ := vm["name"].(string)
		raw, ok, _ := unstructured.NestedMap(vm, "schema", "openAPIV3Schema")
		sc := &Schema{Type: "object", PreserveUnknown: true}
		if ok {
			data, _ := json.Marshal(raw)
			sc = &Schema{}
			if err := json.Unmarshal(data, sc); err != nil {
				return fmt.Errorf("CustomResourceDefinition %s: spec.versions[%d].schema.openAPIV3Schema: %w", crd.GetName(), i, err)
			}
			// Every object has these, whatever the CRD's schema says.
			if sc.Properties == nil {
				sc.Properties = map[string]*Schema{}
			}
			for _, f := range []string{"apiVersion", "kind"} {
				if sc.Properties[f] == nil {
					sc.Properties[f] = &Schema{Type: "string"}
				}
			}
			sc.Properties["metadata"] = &Schema{Ref: "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}
		}
		s.byGVK[schema.GroupVersionKind{Group: group, Version: name, Kind: kind}] = sc
	}
	return nil
}

// FieldError is one field an object gets wrong.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func (e FieldError) String() string { return e.Field + ": " + e.Message }

// Validate checks obj against its kind's schema; known is false when
// there is none.
func (s *Schemas) Validate(obj *unstructured.Unstructured) (errs []FieldError, known bool) {
	sc, ok := s.byGVK[obj.GroupVersionKind()]
	if !ok {
		return nil, false
	}
	w := walker{s: s}
	w.check("", obj.Object, sc, 0)
	sort.SliceStable(w.errs, func(i, j int) bool { return w.errs[i].Field < w.errs[j].Field })
	return w.errs, true
}

type walker struct {
	s    *Schemas
	errs []FieldError
}

// maxDepth bounds recursive schemas (JSONSchemaProps in a CRD).
const maxDepth = 64

func (w *walker) fail(path, format string, a ...any) {
	if path == "" {
		path = "(object)"
	}
	w.errs = append(w.errs, FieldError{Field: path, Message: fmt.Sprintf(format, a...)})
}

// resolve follows $ref, and allOf of one schema (how v3 writes refs).
func (w *walker) resolve(sc *Schema) *Schema {
	for range 8 {
		switch {
		case sc == nil:
			return nil
		case sc.Ref != "":
			sc = w.s.defs[strings.TrimPrefix(sc.Ref, "#/definitions/")]
		case len(sc.AllOf) == 1 && sc.Type == "" && sc.Properties == nil:
			sc = sc.AllOf[0]
		default:
			return sc
		}
	}
	return sc
}

func (w *walker) check(path string, val any, sc *Schema, depth int) {
	if sc != nil && strings.HasSuffix(sc.Ref, ".api.resource.Quantity") {
		// A quantity may be written as a number ("cpu: 1").
		switch val.(type) {
		case string, int64, int, float64:
		default:
			w.fail(path, "want a quantity, got %s", typeName(val))
		}
		return
	}
	sc = w.resolve(sc)
	if sc == nil || val == nil || depth > maxDepth {
		return
	}
	if sc.IntOrString || sc.Format == "int-or-string" {
		switch val.(type) {
		case string, int64, int, float64:
		default:
			w.fail(path, "want an integer or a string, got %s", typeName(val))
		}
		return
	}
	typ := sc.Type
	if typ == "" && sc.Properties != nil {
		typ = "object"
	}
	switch typ {
	case "object":
		m, ok := val.(map[string]any)
		if !ok {
			w.fail(path, "want an object, got %s", typeName(val))
			return
		}
		for _, r := range sc.Required {
			if _, ok := m[r]; !ok {
				w.fail(join(path, r), "required")
			}
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			switch prop, ok := sc.Properties[k]; {
			case ok:
				w.check(join(path, k), m[k], prop, depth+1)
			case sc.AdditionalProperties != nil && sc.AdditionalProperties.Schema != nil:
				w.check(join(path, k), m[k], sc.AdditionalProperties.Schema, depth+1)
			case sc.AdditionalProperties != nil && sc.AdditionalProperties.Allows, sc.PreserveUnknown, sc.EmbeddedResource,
				len(sc.Properties) == 0:
			default:
				w.fail(join(path, k), "unknown field")
			}
		}
	case "array":
		list, ok := val.([]any)
		if !ok {
			w.fail(path, "want a list, got %s", typeName(val))
			return
		}
		for i, item := range list {
			w.check(fmt.Sprintf("%s[%d]", path, i), item, sc.Items, depth+1)
		}
	case "string":
		s, ok := val.(string)
		if !ok {
			w.fail(path, "want a string, got %s", typeName(val))
			return
		}
		if len(sc.Enum) > 0 && !inEnum(s, sc.Enum) {
			w.fail(path, "%q is not one of %s", s, enumList(sc.Enum))
		}
	case "integer":
		switch v := val.(type) {
		case int64, int:
		case float64:
			if v != float64(int64(v)) {
				w.fail(path, "want an integer, got %v", v)
			}
		default:
			w.fail(path, "want an integer, got %s", typeName(val))
		}
	case "number":
		switch val.(type) {
		case int64, int, float64:
		default:
			w.fail(path, "want a number, got %s", typeName(val))
		}
	case "boolean":
		if _, ok := val.(bool); !ok {
			w.fail(path, "want true or false, got %s", typeName(val))
		}
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func typeName(v any) string {
	switch v := v.(type) {
	case string:
		return fmt.Sprintf("string %q", v)
	case bool:
		return fmt.Sprintf("boolean %v", v)
	case int64, int, float64:
		return fmt.Sprintf("number %v", v)
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

func inEnum(s string, enum []any) bool {
	for _, e := range enum {
		if e == s {
			return true
		}
	}
	return false
}

func enumList(enum []any) string {
	var out []string
	for _, e := range enum {
		out = append(out, fmt.Sprint(e))
	}
	return strings.Join(out, ", ")
}
