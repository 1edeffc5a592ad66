package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"converge.dev/converge/internal/cluster"
	"converge.dev/converge/internal/diff"
	"converge.dev/converge/internal/drift"
	"converge.dev/converge/internal/object"
	"converge.dev/converge/internal/plan"
)

// conflictFields returns the fields a server-side apply conflict names,
// nil for any other error.
func conflictFields(err error) []string {
	var se apierrors.APIStatus
	if err == nil || !errors.As(err, &se) || se.Status().Code != 409 || se.Status().Details == nil {
		return nil
	}
	var out []string
	for _, c := range se.Status().Details.Causes {
		if c.Type == metav1.CauseTypeFieldManagerConflict {
			out = append(out, c.Field)
		}
	}
	return out
}

// dryRun sends obj without force. Fields another manager holds are drift,
// not an error: the unit's drift policy decides which of them it leaves
// to that manager (they are left out of what is sent, so they never
// conflict again) and the rest are taken, which a second dry run, forced,
// predicts. sent is what a sync must apply; conflicts are the fields the
// server named. With refuse, a conflict stays an error.
func (e *Engine) dryRun(ctx context.Context, u Unit, obj, live *unstructured.Unstructured, facts *drift.Facts, refuse bool) (sent, pred *unstructured.Unstructured, conflicts []string, err error) {
	pred, err = e.o.Cluster.Apply(ctx, obj, cluster.ApplyOptions{DryRun: true})
	conflicts = conflictFields(err)
	if conflicts == nil || live == nil || refuse {
		return obj, pred, nil, err
	}
	sent, replicas, err := leaveOut(u, obj, live, conflicts, *facts)
	if err != nil {
		return obj, nil, nil, err
	}
	if replicas != nil && replicas.Action != drift.Allow && replicas.Subresource == "scale" && !facts.HPA {
		// An autoscaler other than the HPA's own manager name holds the
		// replicas: an HPA outside the render may still be the one.
		if facts.HPA, err = e.scaledByHPA(ctx, object.RefOf(obj)); err != nil {
			return obj, nil, nil, err
		}
		if facts.HPA {
			if sent, _, err = leaveOut(u, obj, live, conflicts, *facts); err != nil {
				return obj, nil, nil, err
			}
		}
	}
	pred, err = e.o.Cluster.Apply(ctx, sent, cluster.ApplyOptions{DryRun: true, Force: true})
	return sent, pred, conflicts, err
}

// leaveOut returns obj without the conflicting fields the unit's policy
// leaves to their holders (obj itself when there are none), and the
// replicas' item if the replicas conflict.
func leaveOut(u Unit, obj, live *unstructured.Unstructured, conflicts []string, facts drift.Facts) (*unstructured.Unstructured, *drift.Item, error) {
	items, leave, err := drift.Explain(drift.Input{Desired: obj, Live: live, Conflicts: conflicts, Self: cluster.FieldManager,
		Policy: u.Drift, Facts: facts})
	if err != nil {
		return nil, nil, err
	}
	var replicas *drift.Item
	for i := range items {
		if items[i].Path == ".spec.replicas" {
			replicas = &items[i]
		}
	}
	if len(leave) == 0 {
		return obj, replicas, nil
	}
	sent := obj.DeepCopy()
	for _, p := range leave {
		drift.Remove(sent.Object, p)
	}
	return sent, replicas, nil
}

// policyKey identifies what a drift policy decides, for predictions of
// objects with conflicts: another policy may leave other fields out.
func policyKey(p drift.Policy) string {
	var origins []string
	for _, rs := range [][]drift.Rule{p.Allow, p.Forbid, p.Stopped, p.Overrides, p.Expired} {
		for _, r := range rs {
			origins = append(origins, r.Origin)
		}
	}
	data, _ := json.Marshal(struct {
		P                           drift.Policy
		Stopped, Overrides, Expired []drift.Rule
		Origins                     []string
	}{p, p.Stopped, p.Overrides, p.Expired, origins})
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:8])
}

// hpaTargets returns the objects the unit's HorizontalPodAutoscalers
// scale, so that a policy's HPATargets sees an HPA from the same render
// before it has ever scaled anything.
func hpaTargets(desired []object.Decoded) map[object.Key]bool {
	out := map[object.Key]bool{}
	for _, d := range desired {
		o := d.Object
		if o.GetKind() != "HorizontalPodAutoscaler" || o.GroupVersionKind().Group != "autoscaling" {
			continue
		}
		api, _, _ := unstructured.NestedString(o.Object, "spec", "scaleTargetRef", "apiVersion")
		kind, _, _ := unstructured.NestedString(o.Object, "spec", "scaleTargetRef", "kind")
		name, _, _ := unstructured.NestedString(o.Object, "spec", "scaleTargetRef", "name")
		gv, err := schema.ParseGroupVersion(api)
		if err != nil {
			continue // the server refuses such an HPA
		}
		out[object.Key{Group: gv.Group, Kind: kind, Namespace: o.GetNamespace(), Name: name}] = true
	}
	return out
}

// scaledByHPA reports whether a live HorizontalPodAutoscaler scales the
// object. It is read only when another manager holds the object's
// replicas, the one question it answers: an HPA outside the unit's
// render still owns them.
func (e *Engine) scaledByHPA(ctx context.Context, ref object.Ref) (bool, error) {
	hpas, err := e.o.Cluster.List(ctx, schema.GroupVersionKind{Group: "autoscaling", Version: "v2", Kind: "HorizontalPodAutoscaler"}, ref.Namespace)
	if errors.Is(err, cluster.ErrUnknownKind) || apierrors.IsForbidden(err) {
		// No HPAs served, or none this identity may read: the evidence
		// is only what managedFields say.
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("%s: HorizontalPodAutoscalers: %w", ref, err)
	}
	ds := make([]object.Decoded, len(hpas))
	for i := range hpas {
		ds[i] = object.Decoded{Object: &hpas[i]}
	}
	return hpaTargets(ds)[ref.Key()], nil
}

// explanation is what validate learned for explain.
type explanation struct {
	// original holds the rendered object where a field was left out of
	// what is sent.
	original  map[object.Key]*unstructured.Unstructured
	conflicts map[object.Key][]string
	hpa       map[object.Key]bool
}

// explain returns the unit's drifted fields, from the plan's steps: an
// object it applies or leaves unchanged, compared with what is live, and
// an object the unit applied that this engine saw live and is gone now.
// sameRevision says the plan's revision is the one the unit applied
// last, so that a difference no other manager explains is drift rather
// than a change in Git.
func (e *Engine) explain(u Unit, p plan.Plan, predicted map[object.Key]*unstructured.Unstructured, x explanation, inventory []object.Ref, sameRevision bool) ([]drift.Item, error) {
	applied := map[object.Key]bool{}
	for _, r := range inventory {
		applied[r.Key()] = true
	}
	var items []drift.Item
	for _, s := range p.Steps {
		key := s.Ref.Key()
		switch {
		case s.Action == plan.Create && applied[key] && e.seen.wasGone(key):
			// Only an object this engine saw live counts as deleted: one
			// a sync in waves has not created yet is in the write-ahead
			// inventory too.
			if it := drift.Deleted(s.Ref, u.Drift); it.Action != drift.Ignore {
				items = append(items, it)
			}
		case (s.Action == plan.Update || s.Action == plan.Unchanged) && s.Live != nil && s.Desired != nil:
			desired := s.Desired
			if o := x.original[key]; o != nil {
				desired = o
			}
			its, _, err := drift.Explain(drift.Input{Desired: desired, Live: s.Live, Predicted: predicted[key], Conflicts: x.conflicts[key],
				SameRevision: sameRevision, Self: cluster.FieldManager, Policy: u.Drift, Facts: drift.Facts{HPA: x.hpa[key]}})
			if err != nil {
				return nil, err
			}
			if len(its) > 0 && len(u.Ignore) > 0 {
				ignored, err := diff.IgnoredPointers(s.Live, s.Live, u.Ignore)
				if err != nil {
					return nil, fmt.Errorf("%s: ignoreDifferences: %w", s.Ref, err)
				}
				kept := its[:0]
				for _, it := range its {
					if !it.Under(s.Live.Object, ignored) {
						kept = append(kept, it)
					}
				}
				its = kept
			}
			items = append(items, its...)
		}
	}
	drift.Sort(items)
	return items, nil
}
