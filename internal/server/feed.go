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

// Feed keeps x current from c's informers for every unit kind: the
// controller's own, so the UI costs no watch of its own.
func Feed(ctx context.Context, c cache.Cache, x *units.Index) error {
	for _, f := range []struct {
		obj client.Object
		sum func(client.Object) units.Summary
	}{
		{&v1alpha1.Application{}, func(o client.Object) units.Summary { return units.FromApplication(o.(*v1alpha1.Application)) }},
		{&v1alpha1.ApplicationSet{}, func(o client.Object) units.Summary { return units.FromApplicationSet(o.(*v1alpha1.ApplicationSet)) }},
		{&kustomizev1.Kustomization{}, func(o client.Object) units.Summary { return units.FromKustomization(o.(*kustomizev1.Kustomization)) }},
		{&helmv2.HelmRelease{}, func(o client.Object) units.Summary { return units.FromHelmRelease(o.(*helmv2.HelmRelease)) }},
		{&sourcev1.GitRepository{}, func(o client.Object) units.Summary { return units.FromGitRepository(o.(*sourcev1.GitRepository)) }},
		{&sourcev1.OCIRepository{}, func(o client.Object) units.Summary { return units.FromOCIRepository(o.(*sourcev1.OCIRepository)) }},
		{&sourcev1.HelmRepository{}, func(o client.Object) units.Summary { return units.FromHelmRepository(o.(*sourcev1.HelmRepository)) }},
		{&convergev1.Pipeline{}, func(o client.Object) units.Summary { return units.FromPipeline(o.(*convergev1.Pipeline)) }},
	} {
		inf, err := c.GetInformer(ctx, f.obj)
		if err != nil {
			return fmt.Errorf("ui: watch %T: %w", f.obj, err)
		}
		sum := f.sum
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
			return fmt.Errorf("ui: watch %T: %w", f.obj, err)
		}
	}
	return nil
}
