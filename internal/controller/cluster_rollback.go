package controller

import (
	"context"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	convergev1 "converge.dev/converge/internal/api/converge/v1alpha1"
	"converge.dev/converge/internal/promotion"
	"converge.dev/converge/internal/stage"
)

// ClusterRollbackAnnotation on a rollback Promotion says it makes Git pin
// what a stage's cluster went back to; its value is what was observed.
const ClusterRollbackAnnotation = "converge.dev/cluster-rollback"

// ConditionRolledBackInCluster is the Pipeline condition that is True
// while a stage's cluster runs other digests than Git pins because a
// progressive-delivery controller rolled the update back (the seed's
// §14: Git must still tell the truth).
const ConditionRolledBackInCluster = "RolledBackInCluster"

// rolledBack is a stage's status.rolledBack from this round's read, its
// first sighting and its promotion kept from the last round's.
func rolledBack(prev *convergev1.StageRollback, cr *stage.ClusterRollback, now time.Time) *convergev1.StageRollback {
	if cr == nil {
		return nil
	}
	out := &convergev1.StageRollback{Since: metav1.Time{Time: now}, Message: cr.Why, Pinned: refsOf(cr.Pinned), Running: refsOf(cr.Running)}
	if prev != nil {
		out.Since, out.Promotion = prev.Since, prev.Promotion
	}
	return out
}

func refsOf(arts []promotion.Artifact) []string {
	var out []string
	for _, a := range arts {
		out = append(out, a.Reference())
	}
	return out
}

func rolledBackCondition(p *convergev1.Pipeline) metav1.Condition {
	c := metav1.Condition{Type: ConditionRolledBackInCluster, Status: metav1.ConditionFalse, Reason: "GitMatchesCluster",
		ObservedGeneration: p.Generation, Message: "no stage was rolled back in its cluster"}
	var stages []string
	for _, s := range p.Status.Stages {
		if rb := s.RolledBack; rb != nil {
			msg := fmt.Sprintf("stage %s: %s", s.Name, rb.Message)
			if len(rb.Running) > 0 {
				msg += fmt.Sprintf("; it runs %s while Git pins %s", strings.Join(rb.Running, ", "), strings.Join(rb.Pinned, ", "))
			}
			if rb.Promotion != "" {
				msg += "; promotion " + rb.Promotion + " makes Git match"
			}
			stages = append(stages, msg)
		}
	}
	if len(stages) > 0 {
		c.Status, c.Reason, c.Message = metav1.ConditionTrue, "RolledBackInCluster", strings.Join(stages, "; ")
	}
	return c
}

// proposeGitMatch creates, for each stage rolled back in its cluster
// whose Pipeline consents (onClusterRollback: propose), the rollback
// Promotion that makes Git pin what runs. It goes through the same pull
// request, gates and hold as any rollback. One per sighting: a rollback
// Promotion of that freight created since the sighting began is not
// made again, even if a person closed its pull request.
func (run *pipelineRun) proposeGitMatch(ctx context.Context, list *convergev1.PromotionList) error {
	p := run.p
	for i, s := range p.Spec.Stages {
		cr, ss := run.running[s.Name].Rollback, &p.Status.Stages[i]
		if cr == nil || ss.RolledBack == nil || s.OnClusterRollback != "propose" {
			continue
		}
		if len(cr.Running) == 0 || promotion.SameDigests(promotion.Digests(cr.Running), promotion.Digests(cr.Pinned)) {
			// What runs is not one digest per artifact, and there is
			// nothing honest to write (the message says why); or Git pins
			// it already and the controller has yet to notice.
			continue
		}
		id := promotion.FreightID(cr.Running)
		since := ss.RolledBack.Since.Truncate(time.Second)
		done := ""
		for _, o := range list.Items {
			if o.Spec.Stage == s.Name && o.Spec.Reason == "rollback" && o.Spec.Freight.ID == id && !o.CreationTimestamp.Time.Before(since) {
				done = o.Name
			}
		}
		if done != "" {
			ss.RolledBack.Promotion = done
			continue
		}
		promo := NewPromotion(p, s.Name, "rollback", cr.Running)
		promo.Annotations = map[string]string{ClusterRollbackAnnotation: cr.Why}
		if err := controllerutil.SetOwnerReference(p, promo, run.r.Client.Scheme()); err != nil {
			return err
		}
		if err := run.r.Client.Create(ctx, promo); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("stage %s: create promotion %s to make Git match the cluster: %w", s.Name, promo.Name, err)
		}
		list.Items = append(list.Items, *promo)
		ss.RolledBack.Promotion = promo.Name
	}
	return nil
}
