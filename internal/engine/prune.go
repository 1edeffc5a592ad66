package engine

import (
	"context"
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"converge.dev/converge/internal/cluster"
	"converge.dev/converge/internal/object"
	"converge.dev/converge/internal/plan"
)

// strays lists live objects that carry the unit's owner annotation but
// are not in its inventory, among the kinds and namespaces the unit
// renders or owns: one LIST each. Only the owner annotation qualifies an
// object, so another unit's objects are never among them.
func (e *Engine) strays(ctx context.Context, unit string, desired []object.Decoded, inv []object.Ref) ([]object.Ref, error) {
	type group struct {
		gvk schema.GroupVersionKind
		ns  string
	}
	known := map[object.Key]bool{}
	groups := map[group]bool{}
	for _, r := range inv {
		known[r.Key()] = true
		groups[group{r.GVK(), r.Namespace}] = true
	}
	for _, d := range desired {
		r := object.RefOf(d.Object)
		if plan.IsHook(d.Object) {
			continue
		}
		groups[group{r.GVK(), r.Namespace}] = true
	}
	var out []object.Ref
	for g := range groups {
		if e.o.Live != nil {
			// The index answers without reading the whole namespace,
			// which many units may share.
			if refs, ok := e.o.Live.Owned(ctx, g.gvk, g.ns, unit); ok {
				for _, r := range refs {
					if !known[r.Key()] {
						known[r.Key()] = true
						out = append(out, r)
					}
				}
				continue
			}
		}
		items, err := e.o.Cluster.List(ctx, g.gvk, g.ns)
		if err != nil {
			return nil, fmt.Errorf("look for objects missing from the inventory: %w", err)
		}
		for i := range items {
			r := object.RefOf(&items[i])
			if items[i].GetAnnotations()[plan.OwnerAnnotation] == unit && !known[r.Key()] {
				known[r.Key()] = true
				out = append(out, r)
			}
		}
	}
	return out, nil
}

// keepCRDsInUse turns the pruning of a CRD whose custom resources still
// exist into an orphan: deleting it would delete them all, objects no
// unit may own (seed §11.2).
func (e *Engine) keepCRDsInUse(ctx context.Context, p *plan.Plan) error {
	for i, s := range p.Steps {
		if s.Action != plan.Prune || s.Ref.Group != "apiextensions.k8s.io" || s.Ref.Kind != "CustomResourceDefinition" {
			continue
		}
		group, _, _ := unstructured.NestedString(s.Live.Object, "spec", "group")
		kind, _, _ := unstructured.NestedString(s.Live.Object, "spec", "names", "kind")
		versions, _, _ := unstructured.NestedSlice(s.Live.Object, "spec", "versions")
		version := ""
		for _, v := range versions {
			if m, ok := v.(map[string]any); ok && m["served"] == true {
				version, _ = m["name"].(string)
				break
			}
		}
		if version == "" {
			continue // serves nothing: no custom resource can be read
		}
		items, err := e.o.Cluster.List(ctx, schema.GroupVersionKind{Group: group, Version: version, Kind: kind}, "")
		if err != nil && !errors.Is(err, cluster.ErrUnknownKind) {
			return fmt.Errorf("prune %s: list its custom resources: %w", s.Ref, err)
		}
		if len(items) > 0 {
			p.Steps[i].Action = plan.Orphan
			p.Steps[i].Reason = fmt.Sprintf("no longer in Git; %d %s custom resources still exist (%s first), and deleting the CRD would delete them",
				len(items), kind, object.RefOf(&items[0]))
			p.Steps[i].Diff = ""
		}
	}
	return nil
}
