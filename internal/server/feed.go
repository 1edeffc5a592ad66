package server

import (
	"context"
	"fmt"

	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
	convergev1 "converge.dev/converge/internal/api/converge/v1alpha1"
	helmv2 "converge.dev/converge/internal/api/fluxcd/helm/v2"
	kustomizev1 "converge.dev/converge/internal/api/fluxcd/kustomize/v1"
	sourcev1 "converge.dev/converge/internal/api/fluxcd/source/v1"
	"converge.dev/converge/internal/units"
)

// unitKinds are the kinds the UI shows: how to make each, and how to
// summarise it.
var unitKinds = []struct {
	kind string
	new  func() client.Object
	sum  func(client.Object) units.Summary
}{
	{"Application", func() client.Object { return &v1alpha1.Application{} },
		func(o client.Object) units.Summary { return units.FromApplication(o.(*v1alpha1.Application)) }},
	{"ApplicationSet", func() client.Object { return &v1alpha1.ApplicationSet{} },
		func(o client.Object) units.Summary { return units.FromApplicationSet(o.(*v1alpha1.ApplicationSet)) }},
	{"Kustomization", func() client.Object { return &kustomizev1.Kustomization{} },
		func(o client.Object) units.Summary { return units.FromKustomization(o.(*kustomizev1.Kustomization)) }},
	{"HelmRelease", func() client.Object { return &helmv2.HelmRelease{} },
		func(o client.Object) units.Summary { return units.FromHelmRelease(o.(*helmv2.HelmRelease)) }},
	{"GitRepository", func() client.Object { return &sourcev1.GitRepository{} },
		func(o client.Object) units.Summary { return units.FromGitRepository(o.(*sourcev1.GitRepository)) }},
	{"OCIRepository", func() client.Object { return &sourcev1.OCIRepository{} },
		func(o client.Object) units.Summary { return units.FromOCIRepository(o.(*sourcev1.OCIRepository)) }},
	{"HelmRepository", func() client.Object { return &sourcev1.HelmRepository{} },
		func(o client.Object) units.Summary { return units.FromHelmRepository(o.(*sourcev1.HelmRepository)) }},
	{"Pipeline", func() client.Object { return &convergev1.Pipeline{} },
		func(o client.Object) units.Summary { return units.FromPipeline(o.(*convergev1.Pipeline)) }},
}

// newObject is an empty object of kind, nil for a kind the UI does not show.
func newObject(kind string) client.Object {
	for _, k := range unitKinds {
		if k.kind == kind {
			return k.new()
		}
	}
	return nil
}

// Feed keeps x current from c's informers for every unit kind: the
// controller's own, so the UI costs no watch of its own.
func Feed(ctx context.Context, c cache.Cache, x *units.Index) error {
	for _, k := range unitKinds {
		obj := k.new()
		inf, err := c.GetInformer(ctx, obj)
		if err != nil {
			return fmt.Errorf("ui: watch %s: %w", k.kind, err)
		}
		sum := k.sum
		put := func(o any) {
			if obj, ok := o.(client.Object); ok {
				x.Put(sum(obj))
			}
		}
		_, err = inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc:    put,
			UpdateFunc: func(_, o any) { put(o) },
			DeleteFunc: func(o any) {
				if d, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
					o = d.Obj
				}
				if obj, ok := o.(client.Object); ok {
					x.Delete(sum(obj).Ref)
				}
			},
		})
		if err != nil {
			return fmt.Errorf("ui: watch %s: %w", k.kind, err)
		}
	}
	return nil
}
