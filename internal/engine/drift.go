package engine

import (
	"context"
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"converge.dev/converge/internal/cluster"
	"converge.dev/converge/internal/diff"
	"converge.dev/converge/internal/object"
)

// Drift compares objects someone else manages (a Helm release's
// manifest) with the cluster, through a forced server-side dry run, and
// with correct set applies those that drifted or went missing. Objects
// without a namespace get namespace when their kind is namespaced. It
// returns the drifted objects. Differences the ignore rules name do not
// count, and a correction leaves those fields as they are live.
func (e *Engine) Drift(ctx context.Context, objs []object.Decoded, namespace string, correct bool, ignore []diff.Ignore) ([]object.Ref, error) {
	var drifted []object.Ref
	for _, d := range objs {
		obj := d.Object.DeepCopy()
		known, err := e.place(obj, namespace)
		if err != nil {
			return drifted, err
		}
		if !known {
			continue
		}
		ref := object.RefOf(obj)
		live, err := e.o.Cluster.Get(ctx, ref)
		if err != nil {
			return drifted, err
		}
		changed := live == nil
		if live != nil {
			pred, err := e.o.Cluster.Apply(ctx, obj, cluster.ApplyOptions{DryRun: true, Force: true})
			if err != nil {
				return drifted, fmt.Errorf("%s: drift check: %w", ref, err)
			}
			r, err := diff.Compare(ref.String(), live, pred, ignore)
			if err != nil {
				return drifted, err
			}
			changed = r.Changed
		}
		if !changed {
			continue
		}
		drifted = append(drifted, ref)
		if correct {
			if err := diff.Respect(obj, live, ignore); err != nil {
				return drifted, fmt.Errorf("%s: drift ignore rules: %w", ref, err)
			}
			if _, err := e.o.Cluster.Apply(ctx, obj, cluster.ApplyOptions{Force: true}); err != nil {
				return drifted, fmt.Errorf("%s: correct drift: %w", ref, err)
			}
		}
	}
	return drifted, nil
}

// place gives obj namespace when its kind is namespaced and it names
// none, as Helm does when it installs a release. known is false for a
// kind the cluster does not serve.
func (e *Engine) place(obj *unstructured.Unstructured, namespace string) (known bool, err error) {
	namespaced, err := e.o.Cluster.IsNamespaced(obj.GroupVersionKind())
	if errors.Is(err, cluster.ErrUnknownKind) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if namespaced && obj.GetNamespace() == "" {
		obj.SetNamespace(namespace)
	}
	return true, nil
}

// Placed returns where objs live once installed into namespace: a
// namespaced object without a namespace is in namespace. An object of a
// kind the cluster does not serve keeps the namespace it names, as
// Flux's HelmRelease inventory does.
func (e *Engine) Placed(objs []object.Decoded, namespace string) ([]object.Ref, error) {
	refs := make([]object.Ref, 0, len(objs))
	for _, d := range objs {
		obj := d.Object.DeepCopy()
		if _, err := e.place(obj, namespace); err != nil {
			return nil, fmt.Errorf("%s: %w", d.Source, err)
		}
		refs = append(refs, object.RefOf(obj))
	}
	return refs, nil
}
