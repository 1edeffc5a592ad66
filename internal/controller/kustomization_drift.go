package controller

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kustomizev1 "converge.dev/converge/internal/api/fluxcd/kustomize/v1"
	"converge.dev/converge/internal/dialect/flux"
	"converge.dev/converge/internal/engine"
)

// recordDrift writes what a Kustomization's sync found: Flux applies
// every interval, so the drift in rep was taken back (fields a policy
// leaves are left out of the apply). It sets status.drift, the Drifted
// and FieldFight conditions, metrics and events, and settles the
// unit's overrides.
func (r *KustomizationReconciler) recordDrift(ctx context.Context, ks *kustomizev1.Kustomization, eng *engine.Engine, unit engine.Unit,
	rep engine.Report, overrides unitOverrides) error {
	st, gen := &ks.Status, ks.Generation
	st.Drift = engine.DriftReport(rep.Drift)
	setDriftCondition(&st.Conditions, gen, rep.Drift)
	setDriftMetrics("Kustomization", ks.Namespace, ks.Name, rep.Drift)
	warnForbidden(r.Recorder, ks, rep.Drift)
	for _, f := range r.fights.Took(unit.Name, rep.Drift, unit.Drift.Fight, time.Now()) {
		if r.Recorder != nil {
			r.Recorder.Eventf(ks, nil, corev1.EventTypeWarning, FieldFightCondition, "Reconcile", "%s", f)
		}
	}
	if msg := fightMessage(r.fights.Active(unit.Name, time.Now())); msg != "" {
		flux.SetCondition(&st.Conditions, gen, FieldFightCondition, metav1.ConditionTrue, FieldFightCondition, msg)
	} else {
		meta.RemoveStatusCondition(&st.Conditions, FieldFightCondition)
	}
	return r.drift.settle(ctx, overrides, rep.Drift, true, backportWith(eng, unit))
}
