package engine

import (
	"context"
	"errors"
	"fmt"

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
		namespaced, err := e.o.Cluster.IsNamespaced(obj.GroupVersionKind())
		if errors.Is(err, cluster.ErrUnknownKind) {
			continue
		}
		if err != nil {
			return drifted, err
		}
		if namespaced && obj.GetNamespace() == "" {
			obj.SetNamespace(namespace)
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
