package units

import (
	"context"
	"errors"
	"fmt"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
	convergev1 "converge.dev/converge/internal/api/converge/v1alpha1"
	helmv2 "converge.dev/converge/internal/api/fluxcd/helm/v2"
	imagev1 "converge.dev/converge/internal/api/fluxcd/image/v1"
	kustomizev1 "converge.dev/converge/internal/api/fluxcd/kustomize/v1"
	sourcev1 "converge.dev/converge/internal/api/fluxcd/source/v1"
)

// Type is a unit kind's Go type: how to make one, and how to summarise
// it.
type Type struct {
	Name string
	// GVK is the kind's served version.
	GVK       schema.GroupVersionKind
	New       func() client.Object
	Summarize func(client.Object) Summary
}

// Types are the unit kinds of both dialects, and converge's Pipelines,
// in the order a list shows them.
var Types = []Type{
	{"Application", v1alpha1.GroupVersion.WithKind("Application"), func() client.Object { return &v1alpha1.Application{} },
		func(o client.Object) Summary { return FromApplication(o.(*v1alpha1.Application)) }},
	{"ApplicationSet", v1alpha1.GroupVersion.WithKind("ApplicationSet"), func() client.Object { return &v1alpha1.ApplicationSet{} },
		func(o client.Object) Summary { return FromApplicationSet(o.(*v1alpha1.ApplicationSet)) }},
	{"Kustomization", kustomizev1.GroupVersion.WithKind("Kustomization"), func() client.Object { return &kustomizev1.Kustomization{} },
		func(o client.Object) Summary { return FromKustomization(o.(*kustomizev1.Kustomization)) }},
	{"HelmRelease", helmv2.GroupVersion.WithKind("HelmRelease"), func() client.Object { return &helmv2.HelmRelease{} },
		func(o client.Object) Summary { return FromHelmRelease(o.(*helmv2.HelmRelease)) }},
	{"GitRepository", sourcev1.GroupVersion.WithKind("GitRepository"), func() client.Object { return &sourcev1.GitRepository{} },
		func(o client.Object) Summary { return FromGitRepository(o.(*sourcev1.GitRepository)) }},
	{"OCIRepository", sourcev1.GroupVersion.WithKind("OCIRepository"), func() client.Object { return &sourcev1.OCIRepository{} },
		func(o client.Object) Summary { return FromOCIRepository(o.(*sourcev1.OCIRepository)) }},
	{"HelmRepository", sourcev1.GroupVersion.WithKind("HelmRepository"), func() client.Object { return &sourcev1.HelmRepository{} },
		func(o client.Object) Summary { return FromHelmRepository(o.(*sourcev1.HelmRepository)) }},
	{"ImageRepository", imagev1.GroupVersion.WithKind("ImageRepository"), func() client.Object { return &imagev1.ImageRepository{} },
		func(o client.Object) Summary { return FromImageRepository(o.(*imagev1.ImageRepository)) }},
	{"ImagePolicy", imagev1.GroupVersion.WithKind("ImagePolicy"), func() client.Object { return &imagev1.ImagePolicy{} },
		func(o client.Object) Summary { return FromImagePolicy(o.(*imagev1.ImagePolicy)) }},
	{"ImageUpdateAutomation", imagev1.GroupVersion.WithKind("ImageUpdateAutomation"), func() client.Object { return &imagev1.ImageUpdateAutomation{} },
		func(o client.Object) Summary { return FromImageUpdateAutomation(o.(*imagev1.ImageUpdateAutomation)) }},
	{"Pipeline", convergev1.GroupVersion.WithKind("Pipeline"), func() client.Object { return &convergev1.Pipeline{} },
		func(o client.Object) Summary { return FromPipeline(o.(*convergev1.Pipeline)) }},
}

// TypeOf is the unit kind called name, nil if there is none.
func TypeOf(name string) *Type {
	for i := range Types {
		if Types[i].Name == name {
			return &Types[i]
		}
	}
	return nil
}

// FeedOptions shape Feed. The zero value feeds every kind and fails on
// one the cluster does not serve.
type FeedOptions struct {
	// Types are the kinds to feed; nil is all.
	Types []Type
	// SkipUnserved leaves out a kind the cluster does not serve (its CRD
	// not installed) and names it in the result, instead of failing.
	SkipUnserved bool
}

// Feed keeps x current from c's informers for the unit kinds: a
// controller's own informers, so the UI costs no watch of its own. It
// returns the kinds left out as unserved.
func Feed(ctx context.Context, c cache.Cache, x *Index, o FeedOptions) (unserved []string, err error) {
	kinds := o.Types
	if kinds == nil {
		kinds = Types
	}
	for _, k := range kinds {
		inf, err := c.GetInformer(ctx, k.New())
		if o.SkipUnserved && apimeta.IsNoMatchError(err) {
			unserved = append(unserved, k.Name)
			continue
		}
		if err != nil {
			return unserved, fmt.Errorf("watch %s: %w", k.Name, err)
		}
		sum := k.Summarize
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
			return unserved, fmt.Errorf("watch %s: %w", k.Name, err)
		}
	}
	if len(unserved) == len(kinds) {
		return unserved, errors.New("the cluster serves none of the unit kinds: install converge's CRDs (converge install)")
	}
	return unserved, nil
}
