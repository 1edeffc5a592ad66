// Package backport writes live values back into the files a unit is
// rendered from, so that Git tells the truth again after an emergency
// change (the seed's §15.1 step 9). In a plain folder the value goes into
// the manifest the object came from, comments and layout kept; in a
// kustomize overlay it goes into a JSON 6902 patch in the overlay, never
// into its base, which other overlays share. A Helm chart cannot be
// written back: its manifests are a template's output, and which value
// produced a field is not recorded anywhere.
package backport

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"sigs.k8s.io/kustomize/kyaml/kio"
	"sigs.k8s.io/kustomize/kyaml/yaml"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
	"sigs.k8s.io/structured-merge-diff/v6/value"
	sigsyaml "sigs.k8s.io/yaml"

	"converge.dev/converge/internal/object"
	"converge.dev/converge/internal/render"
)

// Change is one field to write back.
type Change struct {
	Object object.Ref
	// Source is where the renderer says the object came from.
	Source object.Source
	// Path is the field; Pointer is the same field as a JSON pointer into
	// the rendered object, list items by index (for patches).
	Path    fieldpath.Path
	Pointer string
	// Value is the live value; Remove says the field is gone live.
	Value  any
	Remove bool
	// Rendered says the rendered object has the field (a patch replaces
	// it rather than adds it).
	Rendered bool
}

// ErrHelm is returned for a chart.
var ErrHelm = errors.New("a Helm chart cannot be written back: which chart value produced a rendered field is not recorded; change the chart's values by hand")

// Write applies changes in the checkout at root, for the unit folder dir
// (relative to root) rendered by kind. It returns the files it changed,
// relative to root.
func Write(root, dir string, kind render.Kind, changes []Change) ([]string, error) {
	switch kind {
	case render.Directory:
		return writeManifests(root, changes)
	case render.Kustomize:
		return writePatches(root, dir, changes)
	case render.Helm:
		return nil, ErrHelm
	}
	return nil, fmt.Errorf("renderer %q: backport supports plain folders and kustomize", kind)
}

// writeManifests edits each object where its file declares it.
func writeManifests(root string, changes []Change) ([]string, error) {
	byFile := map[string][]Change{}
	for _, c := range changes {
		byFile[c.Source.File] = append(byFile[c.Source.File], c)
	}
	var files []string
	for file, cs := range byFile {
		if err := editFile(root, file, cs); err != nil {
			return nil, err
		}
		files = append(files, file)
	}
	sort.Strings(files)
	return files, nil
}

func editFile(root, file string, changes []Change) error {
	path, err := render.Join(root, file)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	nodes, err := (&kio.ByteReader{Reader: bytes.NewReader(data), PreserveSeqIndent: true}).Read()
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	for _, c := range changes {
		doc, err := find(nodes, c)
		if err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		if err := set(doc, c); err != nil {
			return fmt.Errorf("%s: %s %s: %w", file, c.Object, c.Path, err)
		}
	}
	var out bytes.Buffer
	if err := (kio.ByteWriter{Writer: &out}).Write(nodes); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	return os.WriteFile(path, out.Bytes(), 0o644)
}

// find picks the object's document: by kind and name (and namespace when
// the file says one), its position breaking a tie.
func find(nodes []*yaml.RNode, c Change) (*yaml.RNode, error) {
	var hits []*yaml.RNode
	for _, n := range nodes {
		if n.GetKind() == c.Object.Kind && n.GetName() == c.Object.Name && (n.GetNamespace() == "" || n.GetNamespace() == c.Object.Namespace) {
			hits = append(hits, n)
		}
	}
	switch {
	case len(hits) == 1:
		return hits[0], nil
	case len(hits) > 1 && c.Source.Document >= 1 && c.Source.Document <= len(nodes):
		return nodes[c.Source.Document-1], nil
	}
	return nil, fmt.Errorf("%s is not declared here", c.Object)
}

// set writes the change's value at its path, creating maps on the way; a
// list item it needs must exist already.
func set(doc *yaml.RNode, c Change) error {
	cur := doc
	for i, pe := range c.Path {
		last := i == len(c.Path)-1
		switch {
		case pe.FieldName != nil && last:
			if c.Remove {
				_, err := cur.Pipe(yaml.Clear(*pe.FieldName))
				return err
			}
			v, err := node(c.Value)
			if err != nil {
				return err
			}
			if old := cur.Field(*pe.FieldName); old != nil {
				// The comments a person wrote beside the value stay.
				o, n := old.Value.YNode(), v.YNode()
				n.HeadComment, n.LineComment, n.FootComment = o.HeadComment, o.LineComment, o.FootComment
			}
			return cur.PipeE(yaml.SetField(*pe.FieldName, v))
		case pe.FieldName != nil:
			next, err := cur.Pipe(yaml.LookupCreate(kindOf(c.Path[i+1]), *pe.FieldName))
			if err != nil {
				return err
			}
			cur = next
		default:
			els, err := cur.Elements()
			if err != nil {
				return err
			}
			j := element(els, pe)
			if j < 0 {
				return fmt.Errorf("list item %s is not in the manifest", pe)
			}
			if last {
				if !c.Remove {
					return fmt.Errorf("list item %s: only its fields can be written back", pe)
				}
				cur.YNode().Content = append(cur.YNode().Content[:j], cur.YNode().Content[j+1:]...)
				return nil
			}
			cur = els[j]
		}
	}
	return nil
}

func kindOf(next fieldpath.PathElement) yaml.Kind {
	if next.FieldName != nil {
		return yaml.MappingNode
	}
	return yaml.SequenceNode
}

// element finds the list item pe names in els.
func element(els []*yaml.RNode, pe fieldpath.PathElement) int {
	for i, el := range els {
		var v any
		if err := el.YNode().Decode(&v); err != nil {
			continue
		}
		switch {
		case pe.Index != nil && *pe.Index == i:
			return i
		case pe.Key != nil:
			m, ok := v.(map[string]any)
			if !ok {
				continue
			}
			match := true
			for _, f := range *pe.Key {
				fv, ok := m[f.Name]
				match = match && ok && value.Equals(value.NewValueInterface(fv), f.Value)
			}
			if match {
				return i
			}
		case pe.Value != nil:
			if value.Equals(value.NewValueInterface(v), *pe.Value) {
				return i
			}
		}
	}
	return -1
}

// node renders a JSON value as YAML: a string that reads as another type
// stays quoted.
func node(v any) (*yaml.RNode, error) {
	data, err := sigsyaml.Marshal(v)
	if err != nil {
		return nil, err
	}
	return yaml.Parse(string(data))
}

// writePatches adds or extends one JSON 6902 patch file per object in the
// overlay, and lists it in the overlay's kustomization.
func writePatches(root, dir string, changes []Change) ([]string, error) {
	abs, err := render.Join(root, dir)
	if err != nil {
		return nil, err
	}
	kfile := ""
	for _, name := range []string{"kustomization.yaml", "kustomization.yml", "Kustomization"} {
		if _, err := os.Stat(filepath.Join(abs, name)); err == nil {
			kfile = name
			break
		}
	}
	if kfile == "" {
		return nil, fmt.Errorf("%s: no kustomization file", dir)
	}
	byObject := map[object.Ref][]Change{}
	var refs []object.Ref
	for _, c := range changes {
		if byObject[c.Object] == nil {
			refs = append(refs, c.Object)
		}
		byObject[c.Object] = append(byObject[c.Object], c)
	}
	sort.Slice(refs, func(i, j int) bool { return refs[i].String() < refs[j].String() })
	var files []string
	kust, err := yaml.ReadFile(filepath.Join(abs, kfile))
	if err != nil {
		return nil, fmt.Errorf("%s/%s: %w", dir, kfile, err)
	}
	// The overlay's patches run before its own namePrefix and nameSuffix:
	// a target names the object as it is before them.
	prefix, suffix := field(kust, "namePrefix"), field(kust, "nameSuffix")
	for _, ref := range refs {
		name := "converge-backport-" + strings.ToLower(ref.Kind) + "-" + ref.Name + ".yaml"
		if err := writePatch(filepath.Join(abs, name), byObject[ref]); err != nil {
			return nil, fmt.Errorf("%s/%s: %w", dir, name, err)
		}
		target := ref
		target.Name = strings.TrimSuffix(strings.TrimPrefix(ref.Name, prefix), suffix)
		if err := listPatch(kust, name, target); err != nil {
			return nil, fmt.Errorf("%s/%s: %w", dir, kfile, err)
		}
		files = append(files, filepath.ToSlash(filepath.Join(dir, name)))
	}
	if err := yaml.WriteFile(kust, filepath.Join(abs, kfile)); err != nil {
		return nil, err
	}
	return append(files, filepath.ToSlash(filepath.Join(dir, kfile))), nil
}

// writePatch keeps the file's ops for other fields and sets this
// change's op for each field.
func writePatch(path string, changes []Change) error {
	var ops []map[string]any
	if data, err := os.ReadFile(path); err == nil {
		if err := yaml.Unmarshal(data, &ops); err != nil {
			return err
		}
	}
	for _, c := range changes {
		kept := ops[:0]
		for _, o := range ops {
			if o["path"] != c.Pointer {
				kept = append(kept, o)
			}
		}
		o := map[string]any{"op": "replace", "path": c.Pointer, "value": c.Value}
		switch {
		case c.Remove:
			o = map[string]any{"op": "remove", "path": c.Pointer}
		case !c.Rendered:
			o["op"] = "add"
		}
		ops = append(kept, o)
	}
	data, err := yaml.Marshal(ops)
	if err != nil {
		return err
	}
	header := "# Written by converge drift backport: live values that an emergency change\n# made, so that Git says what runs. Review, then merge or fold into the manifests.\n"
	return os.WriteFile(path, append([]byte(header), data...), 0o644)
}

func field(n *yaml.RNode, name string) string {
	if f := n.Field(name); f != nil {
		return yaml.GetValue(f.Value)
	}
	return ""
}

// listPatch adds the patch file to the kustomization's patches once.
func listPatch(kust *yaml.RNode, file string, ref object.Ref) error {
	patches, err := kust.Pipe(yaml.LookupCreate(yaml.SequenceNode, "patches"))
	if err != nil {
		return err
	}
	els, err := patches.Elements()
	if err != nil {
		return err
	}
	for _, el := range els {
		if p := el.Field("path"); p != nil && yaml.GetValue(p.Value) == file {
			return nil
		}
	}
	entry := map[string]any{"path": file, "target": map[string]any{"group": ref.Group, "version": ref.Version, "kind": ref.Kind, "name": ref.Name}}
	n, err := node(entry)
	if err != nil {
		return err
	}
	return patches.PipeE(yaml.Append(n.YNode()))
}
