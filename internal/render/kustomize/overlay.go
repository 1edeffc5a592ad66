package kustomize

import (
	"bytes"
	"fmt"
	"strconv"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"converge.dev/converge/internal/object"
	"converge.dev/converge/internal/render"
)

// Overlay is a kustomization applied on top of rendered objects, as a
// Flux Kustomization's namePrefix, nameSuffix, commonMetadata, images
// and patches are. The zero Overlay changes nothing.
type Overlay struct {
	NamePrefix, NameSuffix string
	// Labels and Annotations are added to every object, not to
	// selectors (Flux's commonMetadata).
	Labels, Annotations map[string]string
	Images              []types.Image
	Patches             []types.Patch
}

// IsZero reports whether o changes nothing.
func (o Overlay) IsZero() bool {
	return o.NamePrefix == "" && o.NameSuffix == "" && len(o.Labels) == 0 && len(o.Annotations) == 0 &&
		len(o.Images) == 0 && len(o.Patches) == 0
}

// sourceIndex tags each object with its position so that it keeps the
// file it came from through the build.
const sourceIndex = "internal.converge.dev/source-index"

// Apply runs kustomize over objs with the overlay, in memory: name
// references (a Deployment's ConfigMap) follow renamed objects, as in a
// kustomize build. Each object keeps its source file.
func (o Overlay) Apply(objs []object.Decoded) ([]object.Decoded, error) {
	if o.IsZero() {
		return objs, nil
	}
	var buf bytes.Buffer
	for i, d := range objs {
		obj := d.Object.DeepCopy()
		ann := obj.GetAnnotations()
		if ann == nil {
			ann = map[string]string{}
		}
		ann[sourceIndex] = strconv.Itoa(i)
		obj.SetAnnotations(ann)
		data, err := yaml.Marshal(obj.Object)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", d.Source, err)
		}
		buf.WriteString("---\n")
		buf.Write(data)
	}
	k := types.Kustomization{
		TypeMeta:  types.TypeMeta{APIVersion: types.KustomizationVersion, Kind: types.KustomizationKind},
		Resources: []string{"resources.yaml"}, NamePrefix: o.NamePrefix, NameSuffix: o.NameSuffix,
		CommonAnnotations: o.Annotations, Images: o.Images, Patches: o.Patches,
	}
	if len(o.Labels) > 0 {
		k.Labels = []types.Label{{Pairs: o.Labels, IncludeSelectors: false}}
	}
	kdata, err := yaml.Marshal(k)
	if err != nil {
		return nil, err
	}
	fs := filesys.MakeFsInMemory()
	if err := fs.WriteFile("/overlay/resources.yaml", buf.Bytes()); err != nil {
		return nil, err
	}
	if err := fs.WriteFile("/overlay/kustomization.yaml", kdata); err != nil {
		return nil, err
	}
	res, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(fs, "/overlay")
	if err != nil {
		return nil, fmt.Errorf("overlay (namePrefix, commonMetadata, images, patches): %w", err)
	}
	out, err := res.AsYaml()
	if err != nil {
		return nil, err
	}
	built, err := render.DecodeManifests(out, "overlay")
	if err != nil {
		return nil, err
	}
	for i := range built {
		ann := built[i].Object.GetAnnotations()
		if n, err := strconv.Atoi(ann[sourceIndex]); err == nil && n < len(objs) {
			built[i].Source = objs[n].Source
		}
		delete(ann, sourceIndex)
		if len(ann) == 0 {
			ann = nil
		}
		built[i].Object.SetAnnotations(ann)
	}
	return built, nil
}
