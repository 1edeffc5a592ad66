package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"converge.dev/converge/internal/cluster"
	"converge.dev/converge/internal/object"
	"converge.dev/converge/internal/render/helm"
)

// RenderChart templates a loaded chart (a HelmRelease's, fetched from
// its HelmRepository, OCIRepository or Git source) for the engine's
// cluster: its version is .Capabilities.KubeVersion unless o names one.
// With a render child, the render runs there, under its limits, as a
// unit's chart does.
func (e *Engine) RenderChart(ctx context.Context, chrt *chart.Chart, o helm.Options) ([]object.Decoded, error) {
	if o.KubeVersion == "" {
		o.KubeVersion = e.o.KubeVersion
		if e.o.Cluster != nil {
			if v, err := e.o.Cluster.ServerVersion(ctx); err == nil {
				o.KubeVersion = v
			}
		}
	}
	if e.o.HelmChild == nil {
		return helm.RenderChart(chrt, o)
	}
	if len(o.ValueFiles) > 0 {
		return nil, fmt.Errorf("chart %s: values files %v: a loaded chart has no folder to read them from", chrt.Name(), o.ValueFiles)
	}
	dir, err := os.MkdirTemp("", "converge-chart-")
	if err != nil {
		return nil, fmt.Errorf("chart %s: %w", chrt.Name(), err)
	}
	defer os.RemoveAll(dir)
	archive, err := chartutil.Save(chrt, dir)
	if err != nil {
		return nil, fmt.Errorf("chart %s: save for the render child: %w", chrt.Name(), err)
	}
	// The chart was loaded, and its files checked, by its source.
	o.MaxFileSize = 1 << 40
	return e.o.HelmChild.Render(ctx, dir, archive, o)
}

// Admit asks the cluster's admission about objects that reach it
// without a unit (a HelmRelease's manifest): each is sent as a forced
// server-side apply dry run, so validation, defaulting and admission
// webhooks and policies answer as they would for the real write. Objects
// without a namespace get namespace when their kind is namespaced. A
// custom resource whose definition comes in the same objects is left
// out: the cluster cannot judge it before the definition exists. Every
// refusal is returned, each naming its object.
func (e *Engine) Admit(ctx context.Context, objs []object.Decoded, namespace string) error {
	defined := definedKinds(objs)
	var refusals []error
	for _, d := range objs {
		obj := d.Object.DeepCopy()
		gvk := obj.GroupVersionKind()
		namespaced, err := e.o.Cluster.IsNamespaced(gvk)
		if _, ok := defined[gvk.GroupKind()]; ok && errors.Is(err, cluster.ErrUnknownKind) {
			continue
		}
		if err != nil {
			refusals = append(refusals, fmt.Errorf("%s %s (%s): %w", gvk.Kind, obj.GetName(), filepath.ToSlash(d.Source.File), err))
			continue
		}
		if namespaced && obj.GetNamespace() == "" {
			obj.SetNamespace(namespace)
		}
		if _, err := e.o.Cluster.Apply(ctx, obj, cluster.ApplyOptions{DryRun: true, Force: true}); err != nil {
			refusals = append(refusals, fmt.Errorf("%s (%s): %w", object.RefOf(obj), filepath.ToSlash(d.Source.File), err))
		}
	}
	return errors.Join(refusals...)
}

// definedKinds are the kinds the CRDs among objs define, each with
// whether it is namespaced: the cluster cannot tell about them before
// those CRDs are applied.
func definedKinds(objs []object.Decoded) map[schema.GroupKind]bool {
	defined := map[schema.GroupKind]bool{}
	for _, d := range objs {
		if d.Object.GetKind() == "CustomResourceDefinition" {
			g, _, _ := unstructured.NestedString(d.Object.Object, "spec", "group")
			k, _, _ := unstructured.NestedString(d.Object.Object, "spec", "names", "kind")
			scope, _, _ := unstructured.NestedString(d.Object.Object, "spec", "scope")
			defined[schema.GroupKind{Group: g, Kind: k}] = scope == "Namespaced"
		}
	}
	return defined
}

// Unserved lists the apiVersion and kind of each object the cluster does
// not serve now ("apps/v1beta1 Deployment"), once each, except custom
// resources whose CRD is among objs: a render that cannot be applied as
// it is. It asks discovery afresh, once per kind.
func (e *Engine) Unserved(ctx context.Context, objs []object.Decoded) ([]string, error) {
	defined := definedKinds(objs)
	seen := map[string]bool{}
	var out []string
	for _, d := range objs {
		gvk := d.Object.GroupVersionKind()
		what := d.Object.GetAPIVersion() + " " + gvk.Kind
		if _, ok := defined[gvk.GroupKind()]; ok || seen[what] {
			continue
		}
		seen[what] = true
		ok, err := e.o.Cluster.Served(ctx, gvk)
		if err != nil {
			return nil, err
		}
		if !ok {
			out = append(out, what)
		}
	}
	return out, nil
}
