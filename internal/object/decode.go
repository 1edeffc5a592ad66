// Package object holds what every layer shares about Kubernetes objects:
// decoding manifests from YAML or JSON while remembering where each object
// came from, so that an error can name the file and the document.
package object

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// Source says where an object was read from.
type Source struct {
	File     string // as given by the caller
	Document int    // 1-based position among the file's documents
}

func (s Source) String() string { return fmt.Sprintf("%s: document %d", s.File, s.Document) }

// Decoded is one object and where it came from.
type Decoded struct {
	Object *unstructured.Unstructured
	Source Source
}

// Decode reads every object in a multi-document YAML or JSON stream, in
// order. Empty documents are skipped; a List's items are expanded in place.
// An error names the file and the document.
func Decode(data []byte, file string) ([]Decoded, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out []Decoded
	for doc := 1; ; doc++ {
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		src := Source{File: file, Document: doc}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", src, err)
		}
		// apimachinery's json keeps whole numbers as int64, as the rest of
		// Kubernetes expects of unstructured objects.
		var m map[string]any
		if len(raw) > 0 && string(raw) != "null" {
			if err := utiljson.Unmarshal(raw, &m); err != nil {
				return nil, fmt.Errorf("%s: %w", src, err)
			}
		}
		if len(m) == 0 {
			continue
		}
		obj := &unstructured.Unstructured{Object: m}
		if obj.IsList() {
			list, err := obj.ToList()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", src, err)
			}
			for i := range list.Items {
				if err := check(&list.Items[i], src, fmt.Sprintf("items[%d].", i)); err != nil {
					return nil, err
				}
				out = append(out, Decoded{Object: &list.Items[i], Source: src})
			}
			continue
		}
		if err := check(obj, src, ""); err != nil {
			return nil, err
		}
		out = append(out, Decoded{Object: obj, Source: src})
	}
}

func check(obj *unstructured.Unstructured, src Source, prefix string) error {
	switch {
	case obj.GetAPIVersion() == "":
		return fmt.Errorf("%s: field %sapiVersion is missing", src, prefix)
	case obj.GetKind() == "":
		return fmt.Errorf("%s: field %skind is missing", src, prefix)
	case obj.GetName() == "" && obj.GetGenerateName() == "":
		return fmt.Errorf("%s: %s: field %smetadata.name is missing", src, obj.GetKind(), prefix)
	}
	return nil
}

// DecodeMap decodes one YAML or JSON document into a map as Decode does:
// whole numbers stay int64, as Kubernetes expects of unstructured
// objects. It checks nothing else.
func DecodeMap(data []byte) (map[string]any, error) {
	j, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := utiljson.Unmarshal(j, &m); err != nil {
		return nil, err
	}
	if m == nil {
		m = map[string]any{}
	}
	return m, nil
}
