// Package setters finds and rewrites Flux's image policy markers in YAML
// files, as Flux's image-automation-controller's Setters strategy does:
// a comment `# {"$imagepolicy": "NAMESPACE:NAME"}` at the end of a line
// says that the line's value is the policy's image (name:tag, with
// @digest when the policy reflects one); `NAMESPACE:NAME:tag`, `:name`
// and `:digest` say it is that part of it.
//
// Unlike kyaml's setters, which Flux uses, it edits only the marked
// lines' values: the rest of each file stays byte for byte as its author
// wrote it (comments, quoting, indentation, key order).
package setters

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"
)

// Ref is what a marker names.
type Ref struct {
	Policy types.NamespacedName
	// Field is "" (the whole image), "tag", "name" or "digest".
	Field string
}

// String is the marker's own spelling, NAMESPACE:NAME[:FIELD].
func (r Ref) String() string {
	s := r.Policy.Namespace + ":" + r.Policy.Name
	if r.Field != "" {
		s += ":" + r.Field
	}
	return s
}

// Marker is one marked line.
type Marker struct {
	// File is slash-separated, relative to the root given to Find.
	File string
	// Line counts from 1.
	Line int
	Ref  Ref
}

// Image is a policy's pick.
type Image struct {
	Name, Tag, Digest string
}

// value is what a marker of field writes.
func (im Image) value(field string) (string, error) {
	switch field {
	case "":
		s := im.Name + ":" + im.Tag
		if im.Digest != "" {
			s += "@" + im.Digest
		}
		return s, nil
	case "tag":
		return im.Tag, nil
	case "name":
		return im.Name, nil
	case "digest":
		if im.Digest == "" {
			return "", fmt.Errorf("the policy records no digest (set its spec.digestReflectionPolicy to IfNotPresent or Always)")
		}
		return im.Digest, nil
	}
	return "", fmt.Errorf("unknown field %q (want tag, name or digest)", field)
}

// markerRE finds the marker comment at a line's end.
var markerRE = regexp.MustCompile(`(\s+)#\s*(\{\s*"\$imagepolicy"\s*:\s*"[^"]*"\s*\})\s*$`)

// parseMarker reads a marker comment's JSON.
func parseMarker(comment string) (Ref, error) {
	var m map[string]string
	if err := json.Unmarshal([]byte(comment), &m); err != nil {
		return Ref{}, fmt.Errorf("marker %s: %w", comment, err)
	}
	parts := strings.Split(m["$imagepolicy"], ":")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return Ref{}, fmt.Errorf("marker %s: want \"NAMESPACE:NAME\", with :tag, :name or :digest", comment)
	}
	r := Ref{Policy: types.NamespacedName{Namespace: parts[0], Name: parts[1]}}
	if len(parts) == 3 {
		r.Field = parts[2]
		if _, err := (Image{Digest: "x"}).value(r.Field); err != nil {
			return Ref{}, fmt.Errorf("marker %s: %w", comment, err)
		}
	}
	return r, nil
}

// files lists the YAML files under root/sub, sorted, skipping .git.
func files(root, sub string) ([]string, error) {
	start := filepath.Join(root, filepath.FromSlash(sub))
	if rel, err := filepath.Rel(root, start); err != nil || strings.HasPrefix(rel, "..") {
		return nil, fmt.Errorf("spec.update.path %q leaves the repository", sub)
	}
	if _, err := os.Stat(start); err != nil {
		return nil, fmt.Errorf("spec.update.path %q: %w", sub, fs.ErrNotExist)
	}
	var out []string
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		if ext := filepath.Ext(p); !d.IsDir() && d.Type().IsRegular() && (ext == ".yaml" || ext == ".yml") {
			out = append(out, p)
		}
		return nil
	})
	sort.Strings(out)
	return out, err
}

// Find lists every marker in the YAML files under root/sub. A malformed
// marker is an error naming its file and line.
func Find(root, sub string) ([]Marker, error) {
	paths, err := files(root, sub)
	if err != nil {
		return nil, err
	}
	var out []Marker
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		rel, _ := filepath.Rel(root, p)
		for i, line := range strings.Split(string(data), "\n") {
			m := markerRE.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			ref, err := parseMarker(m[2])
			if err != nil {
				return nil, fmt.Errorf("%s:%d: %w", filepath.ToSlash(rel), i+1, err)
			}
			out = append(out, Marker{File: filepath.ToSlash(rel), Line: i + 1, Ref: ref})
		}
	}
	return out, nil
}

// ObjectIdentifier is the object a changed line is in (a file that is
// not a Kubernetes object, such as a kustomization.yaml's images, may
// have no name).
type ObjectIdentifier struct {
	Name, Namespace, APIVersion, Kind string
}

// Change is one value written.
type Change struct {
	OldValue, NewValue string
	// Setter is the marker's reference, NAMESPACE:NAME[:FIELD].
	Setter string
}

// Result holds the changes by file, then by object; it is the .Changed
// of Flux's commit message templates.
type Result struct {
	FileChanges map[string]map[ObjectIdentifier][]Change
}

// Changes lists every change, by file and object in order.
func (r Result) Changes() []Change {
	var out []Change
	for _, f := range sortedKeys(r.FileChanges) {
		objs := r.FileChanges[f]
		for _, id := range sortedIDs(objs) {
			out = append(out, objs[id]...)
		}
	}
	return out
}

// Objects is the changes by object, whichever file they are in.
func (r Result) Objects() map[ObjectIdentifier][]Change {
	out := map[ObjectIdentifier][]Change{}
	for _, f := range sortedKeys(r.FileChanges) {
		for id, chs := range r.FileChanges[f] {
			out[id] = append(out[id], chs...)
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sortedIDs(m map[ObjectIdentifier][]Change) []ObjectIdentifier {
	out := make([]ObjectIdentifier, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return fmt.Sprint(out[i]) < fmt.Sprint(out[j]) })
	return out
}

// Apply writes images into the marked lines under root/sub whose policy
// is in images, and leaves every other marker as it is (it belongs to
// another automation). A marked line without a value it can rewrite is
// an error naming the file and line; on any error no file is written.
func Apply(root, sub string, images map[types.NamespacedName]Image) (Result, error) {
	paths, err := files(root, sub)
	if err != nil {
		return Result{}, err
	}
	res := Result{FileChanges: map[string]map[ObjectIdentifier][]Change{}}
	pending := map[string][]byte{}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return Result{}, err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		lines := strings.Split(string(data), "\n")
		changed := false
		docStart := 0
		for i, line := range lines {
			if strings.HasPrefix(line, "---") {
				docStart = i + 1
			}
			m := markerRE.FindStringSubmatchIndex(line)
			if m == nil {
				continue
			}
			ref, err := parseMarker(line[m[4]:m[5]])
			if err != nil {
				return Result{}, fmt.Errorf("%s:%d: %w", rel, i+1, err)
			}
			im, ok := images[ref.Policy]
			if !ok {
				continue
			}
			want, err := im.value(ref.Field)
			if err != nil {
				return Result{}, fmt.Errorf("%s:%d: marker %s: %w", rel, i+1, ref, err)
			}
			head, old, err := splitValue(line[:m[0]])
			if err != nil {
				return Result{}, fmt.Errorf("%s:%d: marker %s: %w", rel, i+1, ref, err)
			}
			if unquote(old) == want {
				continue
			}
			lines[i] = head + requote(old, want) + line[m[0]:]
			changed = true
			id := identify(lines[docStart:], docStart, i)
			if res.FileChanges[rel] == nil {
				res.FileChanges[rel] = map[ObjectIdentifier][]Change{}
			}
			res.FileChanges[rel][id] = append(res.FileChanges[rel][id], Change{OldValue: unquote(old), NewValue: want, Setter: ref.String()})
		}
		if changed {
			pending[p] = []byte(strings.Join(lines, "\n"))
		}
	}
	for _, p := range sortedKeys(pending) {
		fi, err := os.Stat(p)
		if err != nil {
			return Result{}, err
		}
		if err := os.WriteFile(p, pending[p], fi.Mode().Perm()); err != nil {
			return Result{}, err
		}
	}
	return res, nil
}

// splitValue splits the part of a line before its marker into what
// stays (indent, "- ", key) and the scalar value.
func splitValue(s string) (head, value string, err error) {
	body := strings.TrimLeft(s, " \t")
	indent := s[:len(s)-len(body)]
	if strings.HasPrefix(body, "- ") {
		rest := strings.TrimLeft(body[2:], " ")
		indent += body[:len(body)-len(rest)]
		body = rest
	}
	start := 0
	if i := keyEnd(body); i >= 0 {
		start = i
		for start < len(body) && body[start] == ' ' {
			start++
		}
	}
	value = body[start:]
	if value == "" || strings.ContainsAny(value[:1], "{[|>&*!") {
		return "", "", fmt.Errorf("the marked line holds no plain scalar value to set")
	}
	return indent + body[:start], value, nil
}

// keyEnd is the index after a mapping key's ": ", or -1 if the text is
// a bare value. Image references hold colons, never colon-space.
func keyEnd(body string) int {
	if body != "" && (body[0] == '"' || body[0] == '\'') {
		if j := strings.IndexByte(body[1:], body[0]); j >= 0 && strings.HasPrefix(body[j+2:], ": ") {
			return j + 4
		}
		return -1
	}
	if i := strings.Index(body, ": "); i >= 0 {
		return i + 2
	}
	return -1
}

func unquote(v string) string {
	if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
		return v[1 : len(v)-1]
	}
	return v
}

// requote writes v in the quotes old had, if any.
func requote(old, v string) string {
	if len(old) >= 2 && (old[0] == '"' || old[0] == '\'') && old[len(old)-1] == old[0] {
		return string(old[0]) + v + string(old[0])
	}
	return v
}

// identify reads the object of the YAML document starting at docStart
// that holds line (its lines so far are enough for the document's
// metadata, which is usually above the marked field; the rest of the
// document is read too).
func identify(doc []string, docStart, line int) ObjectIdentifier {
	end := len(doc)
	for i := line - docStart + 1; i < len(doc); i++ {
		if strings.HasPrefix(doc[i], "---") {
			end = i
			break
		}
	}
	var obj struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
	}
	_ = yaml.Unmarshal(bytes.TrimSpace([]byte(strings.Join(doc[:end], "\n"))), &obj)
	return ObjectIdentifier{Name: obj.Metadata.Name, Namespace: obj.Metadata.Namespace, APIVersion: obj.APIVersion, Kind: obj.Kind}
}
