package controller

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
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

// driftPolicies reads the DriftPolicies that govern a unit (those in
// its namespace whose selector matches its labels) and its
// DriftOverrides, and settles overrides that expired.
type driftPolicies struct {
	reader client.Reader
	writer client.Client
}

// unitOverrides are one unit's DriftOverrides at one reconcile.
type unitOverrides struct {
	active, expired []convergev1.DriftOverride
}

// forUnit returns the policy for the unit kind/name: its DriftPolicies
// merged, with its active overrides held and those expired (to revert)
// reverted. A cluster without the kinds has none. A policy that does not
// parse is an error naming it, and the unit is not compared under a
// policy it was meant to have.
func (d driftPolicies) forUnit(ctx context.Context, namespace, kind, name string, unitLabels map[string]string, now time.Time) (drift.Policy, unitOverrides, error) {
	pol, err := d.policies(ctx, namespace, unitLabels)
	if err != nil {
		return pol, unitOverrides{}, err
	}
	uo, err := d.overrides(ctx, namespace, kind, name, now)
	if err != nil {
		return pol, uo, err
	}
	for _, o := range uo.active {
		pol.Overrides = append(pol.Overrides, overrideRules(o)...)
	}
	for _, o := range uo.expired {
		switch {
		case o.Status.Phase == overrideExpired:
		case onExpiry(o) == "revert":
			pol.Expired = append(pol.Expired, overrideRules(o)...)
		default:
			// A backport holds the live values until Git has them: the
			// fields stay left alone while its pull request waits.
			pol.Overrides = append(pol.Overrides, overrideRules(o)...)
		}
	}
	return pol, uo, nil
}

// before returns d, or the time until the first active override
// expires (and a second), if that is sooner.
func (uo unitOverrides) before(d time.Duration, now time.Time) time.Duration {
	for _, o := range uo.active {
		if until := o.Spec.Expires.Sub(now) + time.Second; until < d {
			d = until
		}
	}
	return d
}

const (
	overrideActive         = "Active"
	overrideBackporting    = "Backporting"
	overrideBackportFailed = "BackportFailed"
	overrideExpired        = "Expired"
)

func onExpiry(o convergev1.DriftOverride) string {
	if o.Spec.OnExpiry == "" {
		return "revert"
	}
	return o.Spec.OnExpiry
}

// overrideRules are the override's rules, each naming who asked, why and
// until when, which is what an item held by it shows.
func overrideRules(o convergev1.DriftOverride) []drift.Rule {
	origin := fmt.Sprintf("DriftOverride %s by %s until %s: %s", o.Name, orDefault(o.Spec.RequestedBy, "(unknown)"),
		o.Spec.Expires.UTC().Format(time.RFC3339), o.Spec.Reason)
	out := make([]drift.Rule, len(o.Spec.Rules))
	for i, r := range o.Spec.Rules {
		out[i] = engine.DriftRule(r, origin)
	}
	return out
}

func (d driftPolicies) overrides(ctx context.Context, namespace, kind, name string, now time.Time) (unitOverrides, error) {
	var uo unitOverrides
	if d.reader == nil {
		return uo, nil
	}
	var list convergev1.DriftOverrideList
	if err := d.reader.List(ctx, &list, client.InNamespace(namespace)); err != nil {
		if meta.IsNoMatchError(err) {
			return uo, nil
		}
		return uo, fmt.Errorf("DriftOverrides in %s: %w", namespace, err)
	}
	for _, o := range list.Items {
		if o.Spec.Unit.Kind != kind || o.Spec.Unit.Name != name {
			continue
		}
		if now.Before(o.Spec.Expires.Time) {
			uo.active = append(uo.active, o)
		} else {
			uo.expired = append(uo.expired, o)
		}
	}
	return uo, nil
}

// backportFunc opens the backport pull request for the drift only
// picks, and says which one it opened.
type backportFunc func(ctx context.Context, only func(drift.Item) bool) (string, error)

// settle records on each override what holds: Active while it does, and
// at expiry what was done. A revert is done when none of its fields
// drifts any more (revertedNow: the items were just taken back). A
// backport opens its pull request once, then holds the fields until Git
// has their live values (merged and synced), and then is Expired.
func (d driftPolicies) settle(ctx context.Context, uo unitOverrides, items []drift.Item, revertedNow bool, backport backportFunc) error {
	if d.writer == nil {
		return nil
	}
	set := func(o convergev1.DriftOverride, phase, msg string) error {
		if o.Status.Phase == phase && o.Status.Message == msg {
			return nil
		}
		orig := o.DeepCopy()
		o.Status.Phase, o.Status.Message = phase, msg
		if err := d.writer.Status().Patch(ctx, &o, client.MergeFrom(orig)); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("DriftOverride %s/%s status: %w", o.Namespace, o.Name, err)
		}
		return nil
	}
	for _, o := range uo.active {
		if err := set(o, overrideActive, fmt.Sprintf("holding until %s", o.Spec.Expires.UTC().Format(time.RFC3339))); err != nil {
			return err
		}
	}
	for _, o := range uo.expired {
		if o.Status.Phase == overrideExpired {
			continue
		}
		origin := overrideRules(o)[0].Origin
		held := func(it drift.Item) bool { return strings.HasPrefix(it.Rule, origin) }
		pending := false
		for _, it := range items {
			pending = pending || (held(it) && !(revertedNow && it.Action == drift.Revert))
		}
		var err error
		switch {
		case onExpiry(o) == "revert" && !pending:
			err = set(o, overrideExpired, "expired; reverted: its fields hold Git's values again")
		case onExpiry(o) == "revert":
		case !pending && o.Status.Phase == overrideBackporting:
			err = set(o, overrideExpired, "expired; backported: Git holds the live values")
		case !pending:
			err = set(o, overrideExpired, "expired; nothing differed from Git, nothing to backport")
		case o.Status.Phase != overrideBackporting && backport != nil:
			pr, berr := backport(ctx, held)
			if berr != nil {
				err = set(o, overrideBackportFailed, "backport failed, tried again at the next comparison: "+berr.Error())
			} else {
				err = set(o, overrideBackporting, "expired; backport "+pr+" opened; its fields stay as they are live until it is merged")
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// policies returns the unit's DriftPolicies merged.
func (d driftPolicies) policies(ctx context.Context, namespace string, unitLabels map[string]string) (drift.Policy, error) {
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
// the next resync, and a unit of kind when one of its DriftOverrides
// does. A cluster without the kind is not watched (a watch
// that cannot start would stop the whole manager); its units simply
// have no policy.
func watchDriftPolicies(mgr ctrl.Manager, c controller.Controller, list client.ObjectList, kind string) error {
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
	if err := c.Watch(source.Kind(mgr.GetCache(), &convergev1.DriftPolicy{}, handler.TypedEnqueueRequestsFromMapFunc(units))); err != nil {
		return err
	}
	// An override wakes its own unit.
	unit := func(_ context.Context, o *convergev1.DriftOverride) []reconcile.Request {
		if o.Spec.Unit.Kind != kind {
			return nil
		}
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.Namespace, Name: o.Spec.Unit.Name}}}
	}
	return c.Watch(source.Kind(mgr.GetCache(), &convergev1.DriftOverride{}, handler.TypedEnqueueRequestsFromMapFunc(unit)))
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

// backportWith opens a unit's backport pull request with eng.
func backportWith(eng *engine.Engine, u engine.Unit) backportFunc {
	return func(ctx context.Context, only func(drift.Item) bool) (string, error) {
		res, err := eng.Backport(ctx, u, engine.BackportOptions{Only: only})
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("pull request #%d %s", res.PR.Number, res.PR.URL), nil
	}
}
