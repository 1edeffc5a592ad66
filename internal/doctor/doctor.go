// Package doctor runs the seed's §18 checklists against a cluster, its
// converge controller and, when given, the repository: each item passes,
// warns or fails, with the evidence read. It reads; it changes nothing.
package doctor

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	convergev1 "converge.dev/converge/internal/api/converge/v1alpha1"
	sourcev1 "converge.dev/converge/internal/api/fluxcd/source/v1"
	"converge.dev/converge/internal/dialect/flux"
	"converge.dev/converge/internal/units"
)

// Result is an item's verdict.
type Result string

const (
	Pass Result = "pass"
	Warn Result = "warn"
	Fail Result = "fail"
)

// Item is one checklist item and what was found.
type Item struct {
	ID       string   `json:"id"`
	Check    string   `json:"check"`
	Result   Result   `json:"result"`
	Evidence []string `json:"evidence"`
}

// Options say where the controller is.
type Options struct {
	// Client reads the cluster. Required.
	Client client.Reader
	// Namespace and Deployment name the controller; "" is
	// converge-system/converge-controller.
	Namespace, Deployment string
	// Now is the time staleness is judged at; zero is time.Now().
	Now time.Time
}

// Run runs every item.
func Run(ctx context.Context, o Options) ([]Item, error) {
	if o.Namespace == "" {
		o.Namespace = "converge-system"
	}
	if o.Deployment == "" {
		o.Deployment = "converge-controller"
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	d := &appsv1.Deployment{}
	err := o.Client.Get(ctx, types.NamespacedName{Namespace: o.Namespace, Name: o.Deployment}, d)
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("controller Deployment %s/%s: %w", o.Namespace, o.Deployment, err)
	}
	if err != nil {
		d = nil
	}
	items := []Item{controllerRuns(d, o), permissions(ctx, o, d), resources(d), metrics(ctx, o, d)}
	items = append(items, credentials(ctx, o), alerts(ctx, o), override(ctx, o), unitsConverged(ctx, o))
	return items, nil
}

func item(id, check string) Item {
	return Item{ID: id, Check: check, Result: Pass, Evidence: []string{}}
}

func (it *Item) worse(r Result, format string, a ...any) {
	order := map[Result]int{Pass: 0, Warn: 1, Fail: 2}
	if order[r] > order[it.Result] {
		it.Result = r
	}
	it.Evidence = append(it.Evidence, fmt.Sprintf(format, a...))
}

func (it *Item) note(format string, a ...any) {
	it.Evidence = append(it.Evidence, fmt.Sprintf(format, a...))
}

func controllerRuns(d *appsv1.Deployment, o Options) Item {
	it := item("controller", "the converge controller runs in the cluster, available")
	switch {
	case d == nil:
		it.worse(Warn, "no Deployment %s/%s: the controller runs outside the cluster (converge up runs it as a process), or is not installed (converge install)", o.Namespace, o.Deployment)
	case d.Status.AvailableReplicas < 1:
		it.worse(Fail, "Deployment %s/%s has %d available replica(s) of %d", o.Namespace, o.Deployment, d.Status.AvailableReplicas, ptr(d.Spec.Replicas))
	default:
		it.note("Deployment %s/%s: %d available", o.Namespace, o.Deployment, d.Status.AvailableReplicas)
	}
	return it
}

func ptr(p *int32) int32 {
	if p == nil {
		return 1
	}
	return *p
}

// permissions: the controller's ServiceAccount's ClusterRoles grant
// less than everything (the seed's "controller permissions are scoped").
func permissions(ctx context.Context, o Options, d *appsv1.Deployment) Item {
	it := item("permissions", "the controller's permissions are scoped, not cluster-admin")
	if d == nil {
		it.worse(Warn, "no controller Deployment: the permissions are those of whoever runs it (a kubeconfig)")
		return it
	}
	sa := d.Spec.Template.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	bindings := &rbacv1.ClusterRoleBindingList{}
	if err := o.Client.List(ctx, bindings); err != nil {
		it.worse(Warn, "ClusterRoleBindings cannot be read: %v", err)
		return it
	}
	bound := 0
	for _, b := range bindings.Items {
		if !slices.ContainsFunc(b.Subjects, func(s rbacv1.Subject) bool {
			return s.Kind == "ServiceAccount" && s.Name == sa && s.Namespace == d.Namespace
		}) {
			continue
		}
		bound++
		role := &rbacv1.ClusterRole{}
		if err := o.Client.Get(ctx, types.NamespacedName{Name: b.RoleRef.Name}, role); err != nil {
			it.worse(Warn, "ClusterRole %s (binding %s) cannot be read: %v", b.RoleRef.Name, b.Name, err)
			continue
		}
		for _, r := range role.Rules {
			if slices.Contains(r.Verbs, "*") && slices.Contains(r.Resources, "*") && slices.Contains(r.APIGroups, "*") {
				it.worse(Fail, "ClusterRole %s (bound by %s to ServiceAccount %s/%s) allows every verb on every resource of every group: scope it to the kinds the units apply, or let AppProjects and serviceAccountName impersonation narrow each unit", role.Name, b.Name, d.Namespace, sa)
				break
			}
		}
	}
	if bound == 0 {
		it.note("ServiceAccount %s/%s has no ClusterRoleBinding", d.Namespace, sa)
	} else if it.Result == Pass {
		it.note("%d ClusterRoleBinding(s) of ServiceAccount %s/%s, none grants everything", bound, d.Namespace, sa)
	}
	return it
}

// resources: every controller container sets CPU and memory requests
// and a memory limit.
func resources(d *appsv1.Deployment) Item {
	it := item("resources", "the controller's containers set requests and limits")
	if d == nil {
		it.worse(Warn, "no controller Deployment to read")
		return it
	}
	for _, c := range d.Spec.Template.Spec.Containers {
		for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			if _, ok := c.Resources.Requests[r]; !ok {
				it.worse(Fail, "container %s requests no %s", c.Name, r)
			}
		}
		if _, ok := c.Resources.Limits[corev1.ResourceMemory]; !ok {
			it.worse(Warn, "container %s has no memory limit: a large render can take the node's memory", c.Name)
		}
	}
	if it.Result == Pass {
		it.note("every container requests CPU and memory, and limits memory")
	}
	return it
}

// metrics: something scrapes the controller's metrics: a ServiceMonitor
// or PodMonitor in its namespace, or prometheus.io/scrape on its pods.
func metrics(ctx context.Context, o Options, d *appsv1.Deployment) Item {
	it := item("metrics", "the controller's metrics are scraped")
	if d != nil && d.Spec.Template.Annotations["prometheus.io/scrape"] == "true" {
		it.note("the controller's pods carry prometheus.io/scrape: \"true\"")
		return it
	}
	for _, kind := range []string{"ServiceMonitor", "PodMonitor"} {
		list := &unstructured.UnstructuredList{}
		list.SetGroupVersionKind(schema.GroupVersionKind{Group: "monitoring.coreos.com", Version: "v1", Kind: kind + "List"})
		err := o.Client.List(ctx, list, client.InNamespace(o.Namespace))
		if err == nil && len(list.Items) > 0 {
			it.note("%s %s/%s", kind, o.Namespace, list.Items[0].GetName())
			return it
		}
	}
	it.worse(Warn, "no ServiceMonitor or PodMonitor in %s and no prometheus.io/scrape annotation: sync failures and drift are counted but nobody reads the counts", o.Namespace)
	return it
}

// credentials: every GitRepository's secretRef exists, and its last
// fetch is recent.
func credentials(ctx context.Context, o Options) Item {
	it := item("credentials", "repository credentials exist and are not stale")
	repos := &sourcev1.GitRepositoryList{}
	if err := o.Client.List(ctx, repos); err != nil {
		it.worse(Warn, "GitRepositories cannot be read: %v", err)
		return it
	}
	for _, r := range repos.Items {
		name := r.Namespace + "/" + r.Name
		if r.Spec.SecretRef != nil {
			sec := &corev1.Secret{}
			if err := o.Client.Get(ctx, types.NamespacedName{Namespace: r.Namespace, Name: r.Spec.SecretRef.Name}, sec); err != nil {
				it.worse(Fail, "GitRepository %s: secretRef %s: %v", name, r.Spec.SecretRef.Name, err)
				continue
			}
		}
		ready := apimeta.FindStatusCondition(r.Status.Conditions, "Ready")
		interval := r.Spec.Interval.Duration
		switch {
		case ready == nil:
			it.worse(Warn, "GitRepository %s has never been fetched", name)
		case ready.Status != "True":
			it.worse(Fail, "GitRepository %s cannot fetch: %s", name, ready.Message)
		case r.Status.Artifact != nil && interval > 0 && o.Now.Sub(r.Status.Artifact.LastUpdateTime.Time) > 10*interval && o.Now.Sub(ready.LastTransitionTime.Time) > 10*interval:
			it.worse(Warn, "GitRepository %s: last new revision %s ago, ten intervals of %s", name, o.Now.Sub(r.Status.Artifact.LastUpdateTime.Time).Round(time.Minute), interval)
		}
	}
	if it.Result == Pass {
		it.note("%d GitRepositories, each fetching with its credentials", len(repos.Items))
	}
	return it
}

// alerts: units in production have a drift and sync-failure alert: a
// PrometheusRule on converge's metrics, or a Flux Alert that converge
// can send (its status Ready: a Provider that exists and is usable).
func alerts(ctx context.Context, o Options) Item {
	it := item("alerts", "drift and sync-failure alerts exist for high-risk units")
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(schema.GroupVersionKind{Group: "notification.toolkit.fluxcd.io", Version: "v1beta3", Kind: "AlertList"})
	err := o.Client.List(ctx, list)
	rules := &unstructured.UnstructuredList{}
	rules.SetGroupVersionKind(schema.GroupVersionKind{Group: "monitoring.coreos.com", Version: "v1", Kind: "PrometheusRuleList"})
	_ = o.Client.List(ctx, rules) // none served: none
	for _, r := range rules.Items {
		if strings.Contains(fmt.Sprint(r.Object["spec"]), "converge_") {
			it.note("PrometheusRule %s/%s alerts on converge's metrics", r.GetNamespace(), r.GetName())
			return it
		}
	}
	if err == nil && len(list.Items) > 0 {
		var broken []string
		for _, a := range list.Items {
			ready := flux.ReadyOf(a.Object)
			if ready != nil && ready.Status == metav1.ConditionTrue {
				it.note("Flux Alert %s/%s sends sync failures to its Provider (drift that heals is alerted only by a PrometheusRule on converge_drift_fields)", a.GetNamespace(), a.GetName())
				return it
			}
			msg := ""
			if ready != nil {
				msg = ready.Message
			}
			broken = append(broken, fmt.Sprintf("%s/%s (%s)", a.GetNamespace(), a.GetName(), orNone(msg)))
		}
		it.worse(Warn, "%d Flux Alert(s), none usable: %s", len(list.Items), strings.Join(broken, "; "))
		return it
	}
	it.worse(Warn, "no PrometheusRule alerts on converge's metrics (converge_drift_fields, converge_app_sync_total{phase=\"Failed\"}) and no Flux Alert: a failed sync or a drift in production pages nobody")
	return it
}

func orNone(s string) string {
	if s == "" {
		return "no status yet"
	}
	return s
}

// override: an emergency override procedure exists: converge's
// DriftOverride kind is served, and a DriftPolicy says which drift is
// allowed.
func override(ctx context.Context, o Options) Item {
	it := item("override", "an emergency override procedure exists")
	ov := &convergev1.DriftOverrideList{}
	if err := o.Client.List(ctx, ov); err != nil {
		it.worse(Fail, "DriftOverrides are not served (%v): install converge's CRDs, so an incident can hold a manual fix (converge override)", err)
		return it
	}
	it.note("DriftOverride is served: converge override holds a manual fix for a bounded time, then reverts or backports it")
	pol := &convergev1.DriftPolicyList{}
	if err := o.Client.List(ctx, pol); err == nil && len(pol.Items) == 0 {
		it.worse(Warn, "no DriftPolicy: self-healing units revert every manual change, and nothing says which drift is allowed")
	} else if err == nil {
		it.note("%d DriftPolicy(ies)", len(pol.Items))
	}
	return it
}

// unitsConverged: every unit is in sync and healthy (the application
// checklist read from the cluster).
func unitsConverged(ctx context.Context, o Options) Item {
	it := item("units", "every unit is in sync and healthy")
	var bad []string
	total := 0
	for _, t := range units.Types {
		if t.Name == "GitRepository" || t.Name == "OCIRepository" || t.Name == "HelmRepository" {
			continue
		}
		objs, err := listUnits(ctx, o.Client, t)
		if err != nil {
			continue
		}
		for _, s := range objs {
			total++
			if s.Sync != "Synced" || (s.Health != "Healthy" && s.Health != "Suspended") {
				bad = append(bad, fmt.Sprintf("%s %s/%s: %s %s %s", s.Kind, s.Namespace, s.Name, s.Sync, s.Health, s.Message))
			}
		}
	}
	sort.Strings(bad)
	for _, b := range bad {
		it.worse(Fail, "%s", b)
	}
	if len(bad) == 0 {
		it.note("%d unit(s), all Synced and Healthy", total)
	}
	return it
}

// listUnits summarises every unit of type t; an unserved kind has none.
func listUnits(ctx context.Context, c client.Reader, t units.Type) ([]units.Summary, error) {
	list := &unstructured.UnstructuredList{}
	gvk := t.GVK
	list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
	if err := c.List(ctx, list); err != nil {
		return nil, err
	}
	var out []units.Summary
	for _, u := range list.Items {
		obj := t.New()
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, obj); err != nil {
			continue
		}
		out = append(out, t.Summarize(obj))
	}
	return out, nil
}
