package tree

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
	helmv2 "converge.dev/converge/internal/api/fluxcd/helm/v2"
	kustomizev1 "converge.dev/converge/internal/api/fluxcd/kustomize/v1"
	"converge.dev/converge/internal/units"
)

// nestedUnits are the kinds whose objects in a tree are units of their
// own (an app of apps, a Kustomization of HelmReleases): Unit expands
// them.
var nestedUnits = map[string]string{
	"argoproj.io/Application":                   "Application",
	"kustomize.toolkit.fluxcd.io/Kustomization": "Kustomization",
	"helm.toolkit.fluxcd.io/HelmRelease":        "HelmRelease",
}

// maxNesting bounds how deep Unit follows units that apply units.
const maxNesting = 5

// Unit is a unit's tree read with r: the unit as the root, with the
// sync and health its status gives; what it applied under it; a nested
// unit's own tree under that unit; and each workload's children and
// health (Grow). A unit r cannot read is an error; a nested one is a
// node whose message says why.
func Unit(ctx context.Context, r client.Reader, kind, namespace, name string) (*Node, error) {
	root, err := unit(ctx, r, kind, namespace, name, map[string]bool{}, 0)
	if err != nil {
		return nil, err
	}
	Grow(ctx, r, []*Node{root})
	return root, nil
}

func unit(ctx context.Context, r client.Reader, kind, namespace, name string, seen map[string]bool, depth int) (*Node, error) {
	t := units.TypeOf(kind)
	if t == nil {
		return nil, fmt.Errorf("%s is not a unit kind", kind)
	}
	obj := t.New()
	var err error
	if err = r.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, obj); err != nil {
		return nil, fmt.Errorf("%s %s/%s: %w", kind, namespace, name, err)
	}
	sum := t.Summarize(obj)
	root := &Node{Kind: kind, Namespace: namespace, Name: name, Sync: sum.Sync, Health: sum.Health, Message: sum.Message}
	switch o := obj.(type) {
	case *v1alpha1.Application:
		root.Group, root.Children = v1alpha1.GroupVersion.Group, FromApplication(o)
	case *v1alpha1.ApplicationSet:
		root.Group = v1alpha1.GroupVersion.Group
		if root.Children, err = generated(ctx, r, o); err != nil {
			return nil, err
		}
	case *kustomizev1.Kustomization:
		root.Group, root.Children = kustomizev1.GroupVersion.Group, FromInventory(o.Status.Inventory)
	case *helmv2.HelmRelease:
		root.Group, root.Children = helmv2.GroupVersion.Group, FromInventory(o.Status.Inventory)
	}
	seen[kind+"/"+namespace+"/"+name] = true
	for _, n := range root.Children {
		nested, ok := nestedUnits[n.Group+"/"+n.Kind]
		if !ok || depth >= maxNesting || seen[nested+"/"+n.Namespace+"/"+n.Name] {
			continue
		}
		sub, err := unit(ctx, r, nested, n.Namespace, n.Name, seen, depth+1)
		if err != nil {
			n.Message = err.Error()
			continue
		}
		// The nested unit's own status says more than its parent's view.
		n.Sync, n.Health, n.Message, n.Children = sub.Sync, sub.Health, sub.Message, sub.Children
	}
	return root, nil
}

// generated are the Applications an ApplicationSet owns.
func generated(ctx context.Context, r client.Reader, set *v1alpha1.ApplicationSet) ([]*Node, error) {
	apps := &v1alpha1.ApplicationList{}
	if err := r.List(ctx, apps, client.InNamespace(set.Namespace)); err != nil {
		return nil, fmt.Errorf("ApplicationSet %s/%s: its Applications: %w", set.Namespace, set.Name, err)
	}
	nodes := []*Node{}
	for _, a := range apps.Items {
		if ownedBy(a.OwnerReferences, set.UID) {
			nodes = append(nodes, &Node{Group: v1alpha1.GroupVersion.Group, Kind: "Application", Namespace: a.Namespace, Name: a.Name})
		}
	}
	return nodes, nil
}
