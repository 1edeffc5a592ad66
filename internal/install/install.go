// Package install holds what `converge install` puts in a cluster: the
// CRDs of the dialects converge runs (generated from internal/api by
// controller-gen), the controller's RBAC and its Deployment.
package install

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"sort"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"converge.dev/converge/internal/cluster"
	"converge.dev/converge/internal/object"
)

//go:generate go run sigs.k8s.io/controller-tools/cmd/controller-gen@v0.23.0 object paths=../api/... crd:crdVersions=v1 output:crd:dir=./crds

//go:embed crds/*.yaml
var crdFiles embed.FS

// CRDs returns the CRDs, in file name order.
func CRDs() ([]object.Decoded, error) {
	names, err := fs.Glob(crdFiles, "crds/*.yaml")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var out []object.Decoded
	for _, name := range names {
		data, err := crdFiles.ReadFile(name)
		if err != nil {
			return nil, err
		}
		objs, err := object.Decode(data, name)
		if err != nil {
			return nil, err
		}
		for _, d := range objs {
			preserveUnknown(d.Object.Object)
			olderVersions(d.Object.Object)
		}
		out = append(out, objs...)
	}
	return out, nil
}

// preserveUnknown marks every object in each version's spec schema to
// keep fields the schema does not list. The API server would otherwise
// drop them on write, before converge could see them: a field a user
// wrote (install.createNamespace, say) would vanish with no word, where
// it must either work or be named in the UnsupportedFields condition.
func preserveUnknown(crd map[string]any) {
	versions, _, _ := unstructured.NestedSlice(crd, "spec", "versions")
	for i, v := range versions {
		vm, ok := v.(map[string]any)
		if !ok {
			continue
		}
		if spec, ok, _ := unstructured.NestedMap(vm, "schema", "openAPIV3Schema", "properties", "spec"); ok {
			markObjects(spec)
			_ = unstructured.SetNestedMap(vm, spec, "schema", "openAPIV3Schema", "properties", "spec")
		}
		versions[i] = vm
	}
	_ = unstructured.SetNestedSlice(crd, versions, "spec", "versions")
}

func markObjects(n map[string]any) {
	if n["type"] == "object" && n["additionalProperties"] == nil {
		n["x-kubernetes-preserve-unknown-fields"] = true
	}
	if props, ok := n["properties"].(map[string]any); ok {
		for _, p := range props {
			if pm, ok := p.(map[string]any); ok {
				markObjects(pm)
			}
		}
	}
	for _, key := range []string{"items", "additionalProperties"} {
		if m, ok := n[key].(map[string]any); ok {
			markObjects(m)
		}
	}
}

// older lists, per CRD, the API versions Flux served before the one
// converge serves. Users still write them: they are served with the same
// schema (the API server converts by renaming the version), so whatever
// the versions share works, and a field only the old version had is kept
// and named in the UnsupportedFields condition like any other. Each
// warns, as kubectl shows, that the current version is the one to use.
var older = map[string][]string{
	"helmreleases.helm.toolkit.fluxcd.io":        {"v2beta1", "v2beta2"},
	"kustomizations.kustomize.toolkit.fluxcd.io": {"v1beta1", "v1beta2"},
	"gitrepositories.source.toolkit.fluxcd.io":   {"v1beta1", "v1beta2"},
	"helmrepositories.source.toolkit.fluxcd.io":  {"v1beta1", "v1beta2"},
	"helmcharts.source.toolkit.fluxcd.io":        {"v1beta1", "v1beta2"},
	"ocirepositories.source.toolkit.fluxcd.io":   {"v1beta2"},
	// The image API's v1beta2 and notification's v1beta2 are what most
	// guides written before 2025 use.
	"imagerepositories.image.toolkit.fluxcd.io":      {"v1beta2"},
	"imagepolicies.image.toolkit.fluxcd.io":          {"v1beta2"},
	"imageupdateautomations.image.toolkit.fluxcd.io": {"v1beta2"},
	"providers.notification.toolkit.fluxcd.io":       {"v1beta2"},
	"alerts.notification.toolkit.fluxcd.io":          {"v1beta2"},
	"receivers.notification.toolkit.fluxcd.io":       {"v1beta2"},
}

func olderVersions(crd map[string]any) {
	name, _, _ := unstructured.NestedString(crd, "metadata", "name")
	group, _, _ := unstructured.NestedString(crd, "spec", "group")
	kind, _, _ := unstructured.NestedString(crd, "spec", "names", "kind")
	versions, _, _ := unstructured.NestedSlice(crd, "spec", "versions")
	if len(older[name]) == 0 || len(versions) != 1 {
		return
	}
	current, ok := versions[0].(map[string]any)
	if !ok {
		return
	}
	for _, v := range older[name] {
		old := runtime.DeepCopyJSON(current)
		old["name"] = v
		old["storage"] = false
		old["deprecated"] = true
		old["deprecationWarning"] = fmt.Sprintf("%s/%s %s is served by converge with the schema of %s/%s; use %s/%s",
			group, v, kind, group, current["name"], group, current["name"])
		versions = append(versions, old)
	}
	_ = unstructured.SetNestedSlice(crd, versions, "spec", "versions")
}

// Apply server-side applies objs in order, waiting for each CRD to be
// Established so that what follows can use it. It returns the refs
// applied, in order.
func Apply(ctx context.Context, c *cluster.Client, objs []object.Decoded) ([]object.Ref, error) {
	var done []object.Ref
	for _, d := range objs {
		if _, err := c.Apply(ctx, d.Object, cluster.ApplyOptions{Force: true}); err != nil {
			return done, err
		}
		if d.Object.GetKind() == "CustomResourceDefinition" {
			if err := c.WaitEstablished(ctx, d.Object.GetName()); err != nil {
				return done, err
			}
		}
		done = append(done, object.RefOf(d.Object))
	}
	return done, nil
}
