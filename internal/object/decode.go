// Package object holds what every layer shares about Kubernetes objects:
// decoding manifests from YAML or JSON while remembering where each object
// came from, so that an error can name the file and the document.
package object

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"

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
	// Raw is the document as written, kept only for a SOPS-encrypted one
	// (a top-level "sops" key): its MAC covers the values in the order
	// of the file, which Object, a map, does not keep.
	Raw []byte
}

// Decode reads every object in a multi-document YAML or JSON stream, in
// order. Empty documents are skipped; a List's items are expanded in place.
// An error names the file and the document; a key given twice in one
// mapping is an error naming its line, since YAML parsers would keep the
// last one silently and apply what nobody reviewed.
func Decode(data []byte, file string) ([]Decoded, error) {
	return decode(data, file, true)
}

// DecodeUnnamed is Decode for objects that are read, never applied (a
// health check of a status snippet): metadata.name may be missing.
func DecodeUnnamed(data []byte, file string) ([]Decoded, error) {
	return decode(data, file, false)
}

func decode(data []byte, file string, named bool) ([]Decoded, error) {
	if isJSON(data) {
		return decodeJSON(data, file, named)
	}
	rd := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	cursor := 0 // where in data the last document ended
	var out []Decoded
	for doc := 1; ; doc++ {
		chunk, err := rd.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		src := Source{File: file, Document: doc}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", src, err)
		}
		// The reader hands out the document's lines as they are, so
		// finding them gives the file line the document starts on.
		start := 1 + bytes.Count(data[:cursor], []byte("\n"))
		if i := bytes.Index(data[cursor:], chunk); i >= 0 {
			start += bytes.Count(data[cursor:cursor+i], []byte("\n"))
			cursor += i + len(chunk)
		}
		raw, err := yaml.YAMLToJSONStrict(chunk)
		if err != nil {
			return nil, fmt.Errorf("%s: %s", src, fileLines(err.Error(), start))
		}
		n := len(out)
		if out, err = appendObjects(out, raw, src, named); err != nil {
			return nil, err
		}
		keepSOPS(out[n:], chunk)
	}
}

// keepSOPS keeps the document's bytes with a SOPS-encrypted object.
func keepSOPS(objs []Decoded, doc []byte) {
	if len(objs) == 1 && objs[0].Object.Object["sops"] != nil {
		objs[0].Raw = bytes.Clone(doc)
	}
}

func isJSON(data []byte) bool {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	return len(trimmed) > 0 && trimmed[0] == '{'
}

// decodeJSON reads a stream of JSON objects.
func decodeJSON(data []byte, file string, named bool) ([]Decoded, error) {
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
		n := len(out)
		if out, err = appendObjects(out, raw, src, named); err != nil {
			return nil, err
		}
		keepSOPS(out[n:], raw)
	}
}

var lineRE = regexp.MustCompile(`line (\d+)`)

// fileLines turns the parser's line numbers, counted from the start of
// the document, into the file's, so the error points at the right line.
func fileLines(msg string, start int) string {
	return lineRE.ReplaceAllStringFunc(msg, func(m string) string {
		n, _ := strconv.Atoi(m[len("line "):])
		return fmt.Sprintf("line %d", n+start-1)
	})
}

// appendObjects decodes one document's JSON and appends its objects.
func appendObjects(out []Decoded, raw []byte, src Source, named bool) ([]Decoded, error) {
	// apimachinery's json keeps whole numbers as int64, as the rest of
	// Kubernetes expects of unstructured objects.
	var m map[string]any
	if len(raw) > 0 && string(raw) != "null" {
		if err := utiljson.Unmarshal(raw, &m); err != nil {
			return nil, fmt.Errorf("%s: %w", src, err)
		}
	}
	if len(m) == 0 {
		return out, nil
	}
	obj := &unstructured.Unstructured{Object: m}
	if obj.IsList() {
		list, err := obj.ToList()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", src, err)
		}
		for i := range list.Items {
			if err := check(&list.Items[i], src, fmt.Sprintf("items[%d].", i), named); err != nil {
				return nil, err
			}
			out = append(out, Decoded{Object: &list.Items[i], Source: src})
		}
		return out, nil
	}
	if err := check(obj, src, "", named); err != nil {
		return nil, err
	}
	return append(out, Decoded{Object: obj, Source: src}), nil
}

func check(obj *unstructured.Unstructured, src Source, prefix string, named bool) error {
	switch {
	case obj.GetAPIVersion() == "":
		return fmt.Errorf("%s: field %sapiVersion is missing", src, prefix)
	case obj.GetKind() == "":
		return fmt.Errorf("%s: field %skind is missing", src, prefix)
	case named && obj.GetName() == "" && obj.GetGenerateName() == "":
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
