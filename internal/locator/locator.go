// Package locator writes an image reference where a stage's desired
// state keeps it: the images: entry of a kustomization (kustomize-images)
// or one scalar of a values file or manifest (yaml-path). It edits the
// file's bytes at the scalar's position, so comments, quoting, key order
// and indentation stay exactly as people wrote them and the promotion
// pull request's diff is the one line that moves.
package locator

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"sigs.k8s.io/kustomize/kyaml/yaml"

	"converge.dev/converge/internal/promotion"
	"converge.dev/converge/internal/render"
)

// Kinds of locator.
const (
	KustomizeImages = "kustomize-images"
	YAMLPath        = "yaml-path"
)

// Formats of a yaml-path value.
const (
	// FormatReference writes repository[:tag]@digest.
	FormatReference = "reference"
	// FormatDigest writes sha256:<hex> alone (a chart's image.digest).
	FormatDigest = "digest"
	// FormatTag writes the tag alone (a chart's image.tag); the digest
	// must then be written by another locator, or the render is unpinned
	// and refused.
	FormatTag = "tag"
)

// Locator says where a stage's image reference is written.
type Locator struct {
	// Path is the file, relative to the repository root.
	Path string
	// Kind is KustomizeImages or YAMLPath.
	Kind string
	// Field is the scalar for YAMLPath: dot-separated keys, with [N] for
	// a list index (".image.digest", "spec.template.spec.containers[0].image").
	Field string
	// Format is how YAMLPath writes the value. If empty, it follows the
	// value there now: a digest stays a digest, anything else becomes a
	// full reference.
	Format string
}

// Edit is what Write changed.
type Edit struct {
	File string
	// Old and New are the values before and after, per artifact.
	Old, New map[string]string
}

// Write writes arts at l in the checkout at root. Writing what is there
// already changes nothing and is no error.
func Write(root string, l Locator, arts []promotion.Artifact) (Edit, error) {
	p, err := render.Join(root, l.Path)
	if err != nil {
		return Edit{}, fmt.Errorf("locator %s: %w", l.Path, err)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return Edit{}, fmt.Errorf("locator %s: %w", l.Path, err)
	}
	var out []byte
	e := Edit{File: l.Path, Old: map[string]string{}, New: map[string]string{}}
	switch l.Kind {
	case KustomizeImages:
		out, err = writeImages(data, arts, e)
	case YAMLPath:
		if len(arts) != 1 {
			return Edit{}, fmt.Errorf("locator %s: yaml-path writes one scalar, and the pipeline has %d artifacts: give each its own stage locator", l.Path, len(arts))
		}
		out, err = writePath(data, l, arts[0], e)
	default:
		return Edit{}, fmt.Errorf("locator %s: kind %q is not %s or %s", l.Path, l.Kind, KustomizeImages, YAMLPath)
	}
	if err != nil {
		return Edit{}, fmt.Errorf("locator %s: %w", l.Path, err)
	}
	if !bytes.Equal(out, data) {
		if err := os.WriteFile(p, out, 0o644); err != nil {
			return Edit{}, err
		}
	}
	return e, nil
}

// documents parses every YAML document of data, keeping positions
// relative to the whole file.
func documents(data []byte) ([]*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []*yaml.Node
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		if len(n.Content) > 0 {
			docs = append(docs, n.Content[0])
		}
	}
}

// lookup returns the value node of key in mapping m, or nil.
func lookup(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func writeImages(data []byte, arts []promotion.Artifact, e Edit) ([]byte, error) {
	docs, err := documents(data)
	if err != nil {
		return nil, err
	}
	if len(docs) != 1 {
		return nil, fmt.Errorf("a kustomization is one YAML document, found %d", len(docs))
	}
	images := lookup(docs[0], "images")
	if images == nil || images.Kind != yaml.SequenceNode {
		return nil, errors.New("has no images: list; add an entry for each artifact (name: <image>) so the locator knows where the reference goes")
	}
	ed := &editor{src: data}
	for _, a := range arts {
		var entry *yaml.Node
		for _, it := range images.Content {
			name, newName := lookup(it, "name"), lookup(it, "newName")
			if (name != nil && name.Value == a.Image) || (newName != nil && newName.Value == a.Image) {
				entry = it
				break
			}
		}
		if entry == nil {
			return nil, fmt.Errorf("images: has no entry named %s (artifact %s)", a.Image, a.Name)
		}
		old := promotion.Image{Repository: a.Image}
		if t := lookup(entry, "newTag"); t != nil {
			old.Tag = t.Value
		}
		if d := lookup(entry, "digest"); d != nil {
			old.Digest = d.Value
		}
		e.Old[a.Name], e.New[a.Name] = old.String(), a.Reference()
		// Kustomize writes name:newTag@digest when both are set, so the
		// tag stays for people and the digest decides what runs.
		if a.Tag != "" {
			if err := ed.setKey(entry, "newTag", a.Tag); err != nil {
				return nil, err
			}
		} else if t := lookup(entry, "newTag"); t != nil {
			return nil, fmt.Errorf("images: entry %s has newTag %q and artifact %s has no tag: remove newTag or tag the artifact", a.Image, t.Value, a.Name)
		}
		if err := ed.setKey(entry, "digest", a.Digest); err != nil {
			return nil, err
		}
	}
	return ed.apply()
}

func writePath(data []byte, l Locator, a promotion.Artifact, e Edit) ([]byte, error) {
	docs, err := documents(data)
	if err != nil {
		return nil, err
	}
	steps, err := parseField(l.Field)
	if err != nil {
		return nil, err
	}
	for _, d := range docs {
		n := d
		for _, s := range steps {
			n = s.next(n)
			if n == nil {
				break
			}
		}
		if n == nil {
			continue
		}
		if n.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("%s is not a scalar", l.Field)
		}
		format := l.Format
		if format == "" {
			format = FormatReference
			if strings.HasPrefix(n.Value, "sha256:") {
				format = FormatDigest
			}
		}
		var v string
		switch format {
		case FormatReference:
			v = a.Reference()
		case FormatDigest:
			v = a.Digest
		case FormatTag:
			v = a.Tag
		default:
			return nil, fmt.Errorf("format %q is not reference, digest or tag", format)
		}
		e.Old[a.Name], e.New[a.Name] = n.Value, v
		ed := &editor{src: data}
		ed.set(n, v)
		return ed.apply()
	}
	return nil, fmt.Errorf("no document has %s", l.Field)
}

type step struct {
	key   string
	index int // -1 for a key
}

func (s step) next(n *yaml.Node) *yaml.Node {
	if s.index < 0 {
		return lookup(n, s.key)
	}
	if n.Kind != yaml.SequenceNode || s.index >= len(n.Content) {
		return nil
	}
	return n.Content[s.index]
}

func parseField(f string) ([]step, error) {
	var steps []step
	for _, part := range strings.Split(strings.TrimPrefix(f, "."), ".") {
		key := part
		var idx []int
		for strings.HasSuffix(key, "]") {
			i := strings.LastIndexByte(key, '[')
			n, err := strconv.Atoi(key[i+1 : len(key)-1])
			if i < 0 || err != nil || n < 0 {
				return nil, fmt.Errorf("field %q: %q is not key or key[N]", f, part)
			}
			idx = append([]int{n}, idx...)
			key = key[:i]
		}
		if key == "" && len(idx) == 0 {
			return nil, fmt.Errorf("field %q has an empty key", f)
		}
		if key != "" {
			steps = append(steps, step{key: key, index: -1})
		}
		for _, n := range idx {
			steps = append(steps, step{index: n})
		}
	}
	return steps, nil
}
