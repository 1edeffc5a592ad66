package controller

import (
	"context"
	"fmt"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	convergev1 "converge.dev/converge/internal/api/converge/v1alpha1"
	"converge.dev/converge/internal/dialect/flux"
	"converge.dev/converge/internal/drift"
	"converge.dev/converge/internal/engine"
)

// DriftedCondition is the condition a unit carries while some of its
// live fields differ from Git in a way no policy rule allows.
const DriftedCondition = "Drifted"

// driftPolicies reads the DriftPolicies that govern a unit: those in
// its namespace whose selector matches its labels.
type driftPolicies struct{ reader client.Reader }

// forUnit returns the merged policy. A cluster without the DriftPolicy
// kind has none. A policy that does not parse is an error naming it, and
// the unit is not compared under a policy it was meant to have.
func (d driftPolicies) forUnit(ctx context.Context, namespace string, unitLabels map[string]string) (drift.Policy, error) {
	if d.reader == nil {
		return drift.Policy{}, nil
	}
	var list convergev1.DriftPolicyList
	if err := d.reader.List(ctx, &list, client.InNamespace(namespace)); err != nil {
		if meta.IsNoMatchError(err) {
			return drift.Policy{}, nil
		}
		return drift.Policy{}, fmt.Errorf("DriftPolicies in %s: %w", namespace, err)
	}
	var picked []convergev1.DriftPolicy
	for _, p := range list.Items {
		sel := labels.Everything()
		if p.Spec.Selector != nil {
			s, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
			if err != nil {
				return drift.Policy{}, fmt.Errorf("DriftPolicy %s/%s: spec.selector: %w", p.Namespace, p.Name, err)
			}
			sel = s
		}
		if sel.Matches(labels.Set(unitLabels)) {
			picked = append(picked, p)
		}
	}
	return engine.DriftPolicyOf(picked)
}

// watchDriftPolicies re-queues the units of a namespace when a
// DriftPolicy there changes, so a new rule holds at once rather than at
// the next resync. A cluster without the kind is not watched (a watch
// that cannot start would stop the whole manager); its units simply
// have no policy.
func watchDriftPolicies(mgr ctrl.Manager, c controller.Controller, list client.ObjectList) error {
	gvk := convergev1.GroupVersion.WithKind("DriftPolicy")
	if _, err := mgr.GetRESTMapper().RESTMapping(gvk.GroupKind(), gvk.Version); err != nil {
		return nil
	}
	units := func(ctx context.Context, p *convergev1.DriftPolicy) []reconcile.Request {
		l := list.DeepCopyObject().(client.ObjectList)
		if err := mgr.GetCache().List(ctx, l, client.InNamespace(p.Namespace)); err != nil {
			return nil
		}
		var out []reconcile.Request
		_ = meta.EachListItem(l, func(o runtime.Object) error {
			obj := o.(client.Object)
			out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: obj.GetNamespace(), Name: obj.GetName()}})
			return nil
		})
		return out
	}
	return c.Watch(source.Kind(mgr.GetCache(), &convergev1.DriftPolicy{}, handler.TypedEnqueueRequestsFromMapFunc(units)))
}

// forbiddenDrift names the fields a policy forbids, for a Warning event;
// empty when there are none.
func forbiddenDrift(items []drift.Item) string {
	var parts []string
	for _, it := range items {
		if it.Action != drift.Revert {
			continue
		}
		if len(parts) == 3 {
			parts = append(parts, "...")
			break
		}
		parts = append(parts, it.String()+" ("+it.Rule+")")
	}
	if len(parts) == 0 {
		return ""
	}
	return "forbidden drift reverted: " + strings.Join(parts, "; ")
}

var driftFields = prometheus.NewGaugeVec(prometheus.GaugeOpts{
	Name: "converge_drift_fields",
	Help: "Drifted live fields of each unit at its last comparison, by category and action.",
}, []string{"kind", "namespace", "name", "category", "action"})

// setDriftMetrics keeps one series per unit, category and action seen.
func setDriftMetrics(kind, namespace, name string, items []drift.Item) {
	driftFields.DeletePartialMatch(prometheus.Labels{"kind": kind, "namespace": namespace, "name": name})
	for _, it := range items {
		driftFields.WithLabelValues(kind, namespace, name, string(it.Category), string(it.Action)).Inc()
	}
}

func deleteDriftMetrics(kind, namespace, name string) {
	driftFields.DeletePartialMatch(prometheus.Labels{"kind": kind, "namespace": namespace, "name": name})
}

// warnForbidden records a Warning event on obj for forbidden drift.
func warnForbidden(rec interface {
	Eventf(regarding runtime.Object, related runtime.Object, eventtype, reason, action, note string, args ...any)
}, obj runtime.Object, items []drift.Item) {
	if msg := forbiddenDrift(items); msg != "" && rec != nil {
		rec.Eventf(obj, nil, corev1.EventTypeWarning, "ForbiddenDrift", "Revert", "%s", msg)
	}
}

// setDriftCondition sets a Flux unit's Drifted condition: True with the
// summary while unexplained drift was found (and taken back), removed
// when there is none.
func setDriftCondition(conds *[]metav1.Condition, gen int64, items []drift.Item) {
	msg := engine.DriftCondition(items, true)
	if msg == "" {
		meta.RemoveStatusCondition(conds, DriftedCondition)
		return
	}
	flux.SetCondition(conds, gen, DriftedCondition, metav1.ConditionTrue, "DriftCorrected", msg)
}

// FieldFightCondition is set while converge has stopped taking fields
// back from a manager that kept rewriting them.
const FieldFightCondition = "FieldFight"

// fightMessage is the FieldFight condition's message; empty removes it.
func fightMessage(fights []drift.Fight) string {
	var parts []string
	for _, f := range fights {
		parts = append(parts, f.String())
	}
	return strings.Join(parts, "; ")
}
