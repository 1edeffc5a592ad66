package controller

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	convergev1 "converge.dev/converge/internal/api/converge/v1alpha1"
	"converge.dev/converge/internal/stage"
)

// RollbackPromotion is the Promotion that takes a stage back through the
// same pull request path: to the freight of the Promotion named to, or,
// if to is empty, to what the stage ran before its last verified
// promotion. It is returned, not created.
func RollbackPromotion(ctx context.Context, c client.Reader, p *convergev1.Pipeline, stageName, to string) (*convergev1.Promotion, error) {
	if _, ok := stage.SpecOf(p, stageName); !ok {
		return nil, fmt.Errorf("pipeline %s/%s has no stage %q", p.Namespace, p.Name, stageName)
	}
	var f convergev1.Freight
	switch {
	case to != "":
		src := &convergev1.Promotion{}
		if err := c.Get(ctx, types.NamespacedName{Namespace: p.Namespace, Name: to}, src); err != nil {
			return nil, fmt.Errorf("promotion %s: %w", to, err)
		}
		if src.Spec.Pipeline != p.Name {
			return nil, fmt.Errorf("promotion %s belongs to pipeline %s, not %s", to, src.Spec.Pipeline, p.Name)
		}
		f = src.Spec.Freight
	default:
		// The stage's promotions, not the Pipeline's status: a Promotion
		// is marked Verified a moment before the Pipeline records it.
		var list convergev1.PromotionList
		if err := c.List(ctx, &list, client.InNamespace(p.Namespace), client.MatchingLabels{PipelineLabel: p.Name}); err != nil {
			return nil, fmt.Errorf("promotions of %s/%s: %w", p.Namespace, p.Name, err)
		}
		var last *convergev1.Promotion
		for i := range list.Items {
			o := &list.Items[i]
			if o.Spec.Stage == stageName && o.Status.Phase == convergev1.PhaseVerified && o.Status.VerifiedAt != nil &&
				(last == nil || o.Status.VerifiedAt.After(last.Status.VerifiedAt.Time)) {
				last = o
			}
		}
		if last == nil {
			return nil, fmt.Errorf("stage %s has no verified promotion to roll back (name one with --to)", stageName)
		}
		if len(last.Status.Previous) == 0 {
			return nil, fmt.Errorf("promotion %s recorded nothing that ran in %s before it: there is nothing to go back to (name one with --to)", last.Name, stageName)
		}
		f.Artifacts = last.Status.Previous
	}
	return NewPromotion(p, stageName, "rollback", artifactsOf(f)), nil
}

// ReleaseHold lifts a stage's hold, so auto-promotion into it resumes.
// Each write carries the Pipeline's resourceVersion; when the controller
// wrote in between, the Pipeline is read again and the release applied
// to what it wrote, so neither write is lost.
func ReleaseHold(ctx context.Context, c client.Client, key types.NamespacedName, stageName string) (*convergev1.StageHold, error) {
	var was *convergev1.StageHold
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		p := &convergev1.Pipeline{}
		if err := c.Get(ctx, key, p); err != nil {
			return err
		}
		for i := range p.Status.Stages {
			s := &p.Status.Stages[i]
			if s.Name != stageName {
				continue
			}
			if s.Hold == nil {
				return fmt.Errorf("stage %s is not held", stageName)
			}
			was, s.Hold = s.Hold, nil
			return c.Status().Update(ctx, p)
		}
		return fmt.Errorf("has no observed stage %q", stageName)
	})
	if err != nil {
		return nil, fmt.Errorf("pipeline %s: release stage %s: %w", key, stageName, err)
	}
	return was, nil
}
