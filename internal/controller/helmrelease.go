package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"helm.sh/helm/v3/pkg/chart"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	helmv2 "converge.dev/converge/internal/api/fluxcd/helm/v2"
	sourcev1 "converge.dev/converge/internal/api/fluxcd/source/v1"
	"converge.dev/converge/internal/cluster"
	"converge.dev/converge/internal/dialect/flux"
	"converge.dev/converge/internal/engine"
	"converge.dev/converge/internal/helmrelease"
	"converge.dev/converge/internal/render/helm"
)

// HelmReleaseReconciler keeps Helm releases as declared.
type HelmReleaseReconciler struct {
	Client client.Client
	// Reader reads the spec as written, once per generation, to name
	// unsupported fields. If nil, Client.
	Reader client.Reader
	Engine *engine.Engine
	Helm   *helmrelease.Manager
	// RESTConfig is the controller's own; spec.serviceAccountName
	// impersonates with it. If nil, serviceAccountName is an error.
	RESTConfig *rest.Config
	// Concurrency is the number of HelmReleases reconciled at once. If
	// zero, DefaultConcurrency.
	Concurrency int
	charts      *chartLoader

	mu      sync.Mutex
	tenants map[string]tenant
	gate    *gate
}

// tenant is what acts for a HelmRelease with spec.serviceAccountName:
// Helm and the drift engine both impersonate the account, so a tenant's
// release gets the tenant's rights, never the controller's.
type tenant struct {
	helm   *helmrelease.Manager
	engine *engine.Engine
}

// actor returns the Helm manager and engine a HelmRelease acts with.
func (r *HelmReleaseReconciler) actor(hr *helmv2.HelmRelease) (tenant, error) {
	sa := hr.Spec.ServiceAccountName
	if sa == "" {
		return tenant{helm: r.Helm, engine: r.Engine}, nil
	}
	if r.RESTConfig == nil {
		return tenant{}, errors.New("spec.serviceAccountName: the controller has no configuration to impersonate with")
	}
	user := "system:serviceaccount:" + hr.Namespace + ":" + sa
	r.mu.Lock()
	defer r.mu.Unlock()
	if t, ok := r.tenants[user]; ok {
		return t, nil
	}
	cfg := rest.CopyConfig(r.RESTConfig)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
	cc, err := cluster.New(cfg)
	if err != nil {
		return tenant{}, fmt.Errorf("spec.serviceAccountName %s: %w", sa, err)
	}
	t := tenant{helm: helmrelease.New(cfg), engine: r.Engine.Impersonating(cc)}
	if r.tenants == nil {
		r.tenants = map[string]tenant{}
	}
	r.tenants[user] = t
	return t, nil
}

// SetupWithManager registers the reconciler; a repository's new index
// wakes the releases using it.
func (r *HelmReleaseReconciler) SetupWithManager(mgr ctrl.Manager) error {
	b := ctrl.NewControllerManagedBy(mgr).
		For(&helmv2.HelmRelease{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		WithOptions(workers(r.Concurrency)).
		Watches(&sourcev1.HelmRepository{}, handler.EnqueueRequestsFromMapFunc(r.bySource("HelmRepository"))).
		Watches(&sourcev1.HelmChart{}, handler.EnqueueRequestsFromMapFunc(r.bySource("HelmChart"))).
		Watches(&sourcev1.OCIRepository{}, handler.EnqueueRequestsFromMapFunc(r.bySource("OCIRepository"))).
		Watches(&sourcev1.GitRepository{}, handler.EnqueueRequestsFromMapFunc(r.bySource("GitRepository"))).
		// A dependency becoming Ready wakes its dependents at once.
		Watches(&helmv2.HelmRelease{}, handler.EnqueueRequestsFromMapFunc(r.byDependency), builder.WithPredicates(releaseReadyChanged{}))
	_, err := r.gate.build(b, &helmv2.HelmRelease{}, &helmv2.HelmReleaseList{}, r)
	return err
}

func (r *HelmReleaseReconciler) byDependency(ctx context.Context, o client.Object) []reconcile.Request {
	var list helmv2.HelmReleaseList
	if err := r.Client.List(ctx, &list); err != nil {
		return nil
	}
	var out []reconcile.Request
	for _, hr := range list.Items {
		for _, d := range hr.Spec.DependsOn {
			if d.Name == o.GetName() && orDefault(d.Namespace, hr.Namespace) == o.GetNamespace() {
				out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: hr.Namespace, Name: hr.Name}})
			}
		}
	}
	return out
}

// releaseReadyChanged passes HelmRelease updates that change Ready.
type releaseReadyChanged struct{ predicate.Funcs }

func (releaseReadyChanged) Update(e event.UpdateEvent) bool {
	o, ok1 := e.ObjectOld.(*helmv2.HelmRelease)
	n, ok2 := e.ObjectNew.(*helmv2.HelmRelease)
	if !ok1 || !ok2 {
		return false
	}
	return meta.IsStatusConditionTrue(o.Status.Conditions, flux.ReadyCondition) != meta.IsStatusConditionTrue(n.Status.Conditions, flux.ReadyCondition)
}

// bySource maps a source of the given kind to the releases using it.
func (r *HelmReleaseReconciler) bySource(kind string) handler.MapFunc {
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		var list helmv2.HelmReleaseList
		if err := r.Client.List(ctx, &list); err != nil {
			return nil
		}
		var out []reconcile.Request
		for _, hr := range list.Items {
			var k, name, ns string
			switch {
			case hr.Spec.Chart != nil:
				ref := hr.Spec.Chart.Spec.SourceRef
				k, name, ns = orDefault(ref.Kind, "HelmRepository"), ref.Name, orDefault(ref.Namespace, hr.Namespace)
			case hr.Spec.ChartRef != nil:
				ref := hr.Spec.ChartRef
				k, name, ns = ref.Kind, ref.Name, orDefault(ref.Namespace, hr.Namespace)
			}
			if k == kind && name == o.GetName() && ns == o.GetNamespace() {
				out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: hr.Namespace, Name: hr.Name}})
			}
		}
		return out
	}
}

// sourceReady refuses a HelmRepository that is not Ready; the other
// kinds are checked as their chart is loaded.
func sourceReady(ctx context.Context, c client.Client, req chartRequest) error {
	if req.Kind != "HelmRepository" {
		return nil
	}
	src := &sourcev1.HelmRepository{}
	if err := c.Get(ctx, req.Key, src); err != nil || !meta.IsStatusConditionTrue(src.Status.Conditions, flux.ReadyCondition) {
		return fmt.Errorf("HelmRepository %s is not ready", req.Key)
	}
	return nil
}

// Reconcile keeps one release as declared.
func (r *HelmReleaseReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	hr := &helmv2.HelmRelease{}
	if err := r.Client.Get(ctx, req.NamespacedName, hr); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if hr.DeletionTimestamp != nil {
		if !controllerutil.ContainsFinalizer(hr, flux.Finalizer) {
			return ctrl.Result{}, nil
		}
		name, ns := releaseName(hr)
		act, err := r.actor(hr)
		if err != nil {
			return ctrl.Result{}, err
		}
		if err := act.helm.Uninstall(name, ns, flux.Interval(hr.Spec.Timeout, 5*time.Minute)); err != nil {
			return ctrl.Result{}, err
		}
		return ctrl.Result{}, setFluxFinalizer(ctx, r.Client, hr, false)
	}
	if hr.Spec.Suspend {
		return ctrl.Result{}, nil
	}
	if err := setFluxFinalizer(ctx, r.Client, hr, true); err != nil {
		return ctrl.Result{}, err
	}
	orig := hr.DeepCopy()
	if hr.Status.ObservedGeneration != hr.Generation {
		hr.Status.UpgradeFailures, hr.Status.InstallFailures, hr.Status.Failures = 0, 0, 0 // a new spec gets new chances
		if err := reportUnsupported(ctx, r.Reader, r.Client, req.NamespacedName, helmv2.GroupVersion.WithKind("HelmRelease"),
			&hr.Status.Conditions, hr.Generation); err != nil {
			return ctrl.Result{}, err
		}
	}
	hr.Status.LastHandledReconcileAt = hr.Annotations[ReconcileRequestAnnotation]
	res := r.reconcile(ctx, hr)
	hr.Status.ObservedGeneration = hr.Generation
	if !equality.Semantic.DeepEqual(orig.Status, hr.Status) {
		if requeue, err := patchStatus(ctx, r.Client, hr, orig); err != nil || requeue {
			return ctrl.Result{Requeue: requeue}, err
		}
	}
	return res, nil
}

func releaseName(hr *helmv2.HelmRelease) (name, namespace string) {
	namespace = orDefault(hr.Spec.TargetNamespace, hr.Namespace)
	name = hr.Spec.ReleaseName
	if name == "" {
		name = hr.Name
		if hr.Spec.TargetNamespace != "" {
			name = hr.Spec.TargetNamespace + "-" + hr.Name
		}
	}
	return name, namespace
}

func (r *HelmReleaseReconciler) reconcile(ctx context.Context, hr *helmv2.HelmRelease) ctrl.Result {
	st := &hr.Status
	gen := hr.Generation
	interval := flux.Interval(&hr.Spec.Interval, 10*time.Minute)
	for _, d := range hr.Spec.DependsOn {
		key := types.NamespacedName{Namespace: orDefault(d.Namespace, hr.Namespace), Name: d.Name}
		dep := &helmv2.HelmRelease{}
		if err := r.Client.Get(ctx, key, dep); err != nil || !meta.IsStatusConditionTrue(dep.Status.Conditions, flux.ReadyCondition) ||
			dep.Status.ObservedGeneration != dep.Generation {
			flux.MarkFailed(&st.Conditions, gen, flux.DependencyNotReadyReason, fmt.Sprintf("dependency '%s' is not ready", key), false)
			return ctrl.Result{RequeueAfter: 30 * time.Second}
		}
	}
	creq, err := r.chartSource(ctx, hr)
	if err != nil {
		flux.MarkFailed(&st.Conditions, gen, flux.ArtifactFailedReason, err.Error(), false)
		return ctrl.Result{RequeueAfter: 30 * time.Second}
	}
	if err := sourceReady(ctx, r.Client, creq); err != nil {
		flux.MarkFailed(&st.Conditions, gen, flux.ArtifactFailedReason, err.Error(), false)
		return ctrl.Result{RequeueAfter: 30 * time.Second}
	}
	chart, err := r.charts.load(ctx, creq)
	if err != nil {
		flux.MarkFailed(&st.Conditions, gen, flux.ArtifactFailedReason, err.Error(), false)
		return ctrl.Result{RequeueAfter: 30 * time.Second}
	}
	fctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	values, err := r.valuesFrom(ctx, hr)
	if err != nil {
		flux.MarkFailed(&st.Conditions, gen, "InitFailed", err.Error(), false)
		return ctrl.Result{RequeueAfter: 30 * time.Second}
	}
	if values, err = withInline(hr, values); err != nil {
		flux.MarkFailed(&st.Conditions, gen, flux.InvalidSpecReason, err.Error(), true)
		return ctrl.Result{}
	}
	name, ns := releaseName(hr)
	act, err := r.actor(hr)
	if err != nil {
		flux.MarkFailed(&st.Conditions, gen, flux.InvalidSpecReason, err.Error(), true)
		return ctrl.Result{}
	}
	// A new target (targetNamespace or releaseName changed) takes the
	// old release away first, as Flux does: it would otherwise stay
	// installed, unowned.
	if h := st.History; len(h) > 0 && (h[0].Name != name || h[0].Namespace != ns) {
		if err := act.helm.Uninstall(h[0].Name, h[0].Namespace, flux.Interval(hr.Spec.Timeout, 5*time.Minute)); err != nil {
			flux.MarkFailed(&st.Conditions, gen, "UninstallFailed",
				fmt.Sprintf("release target changed to %s/%s: uninstall of the previous release: %v", ns, name, err), false)
			return ctrl.Result{RequeueAfter: 30 * time.Second}
		}
		st.History, st.Inventory = nil, nil
	}
	st.LastAttemptedRevision = chart.Metadata.Version
	retries, rollback := 0, false
	if u := hr.Spec.Upgrade; u != nil && u.Remediation != nil {
		retries = u.Remediation.Retries
		rollback = retries != 0
		if u.Remediation.RemediateLastFailure != nil {
			rollback = *u.Remediation.RemediateLastFailure
		}
	}
	installRetries := 0
	if in := hr.Spec.Install; in != nil && in.Remediation != nil {
		installRetries = in.Remediation.Retries
	}
	opts, err := releaseOptions(hr)
	if err != nil {
		flux.MarkFailed(&st.Conditions, gen, flux.InvalidSpecReason, err.Error(), true)
		return ctrl.Result{}
	}
	if opts.retryUpgrade {
		rollback = false
	}
	if !opts.retryInstall && st.InstallFailures > 0 && installRetries >= 0 && st.InstallFailures > int64(installRetries) {
		flux.MarkFailed(&st.Conditions, gen, "InstallFailed", exhausted(st.Conditions, "install", installRetries), true)
		return ctrl.Result{}
	}
	if !opts.retryUpgrade && st.UpgradeFailures > 0 && retries >= 0 && st.UpgradeFailures > int64(retries) {
		flux.MarkFailed(&st.Conditions, gen, "UpgradeFailed", exhausted(st.Conditions, "upgrade", retries), true)
		return ctrl.Result{}
	}
	out, err := act.helm.Reconcile(fctx, helmrelease.Request{Name: name, Namespace: ns, Chart: chart, Values: values,
		Timeout: flux.Interval(hr.Spec.Timeout, 5*time.Minute), RollbackOnFailure: rollback, Check: r.renderCheck(name, ns),
		CreateNamespace: opts.createNamespace, InstallCRDs: opts.installCRDs, UpgradeCRDs: opts.upgradeCRDs})
	history(act.helm, hr, name, ns)
	if err != nil {
		st.Failures++
		reason := "InstallFailed"
		retry := 10 * time.Second
		// A release that never deployed is still being installed, even
		// when Helm has to retry it as an upgrade (a failed install left
		// under RetryOnFailure): the install's strategy and counts apply.
		if out.Action == "upgrade" && !everDeployed(st.History) {
			out.Action = "install"
		}
		if out.Action == "upgrade" {
			reason = "UpgradeFailed"
			st.UpgradeFailures++
			if opts.retryUpgrade {
				retry = opts.upgradeRetryInterval
			}
		} else {
			st.InstallFailures++
			if opts.retryInstall {
				// RetryOnFailure leaves the failed release as it is and
				// tries again later; no remediation.
				retry = opts.installRetryInterval
			} else if uerr := act.helm.Uninstall(name, ns, 5*time.Minute); uerr == nil {
				st.Inventory = nil
				// Flux remediates a failed install by uninstalling it, so
				// the next attempt starts clean.
				flux.SetCondition(&st.Conditions, gen, "Remediated", metav1.ConditionTrue, "UninstallSucceeded",
					fmt.Sprintf("Helm uninstall of the failed release %s/%s succeeded", ns, name))
			}
		}
		flux.MarkFailed(&st.Conditions, gen, reason, err.Error(), false)
		flux.SetCondition(&st.Conditions, gen, "Released", metav1.ConditionFalse, reason, err.Error())
		if out.Action == "upgrade" && out.RolledBack {
			flux.SetCondition(&st.Conditions, gen, "Remediated", metav1.ConditionTrue, "RollbackSucceeded",
				fmt.Sprintf("Helm rollback to previous release %s/%s.v%d succeeded", ns, name, out.Release.Version))
		}
		return ctrl.Result{RequeueAfter: retry}
	}
	// The chart's source is checked at chart.spec.interval when that is
	// shorter than the release's.
	if c := hr.Spec.Chart; c != nil && c.Spec.Interval != nil && c.Spec.Interval.Duration > 0 && c.Spec.Interval.Duration < interval {
		interval = c.Spec.Interval.Duration
	}
	// Tests run once per release change; a release whose result was
	// never recorded (its status write lost) is tested again.
	tested := meta.FindStatusCondition(st.Conditions, "TestSuccess")
	if t := hr.Spec.Test; t != nil && t.Enable && (out.Action != "unchanged" || tested == nil || tested.ObservedGeneration != gen) {
		if terr := act.helm.Test(fctx, name, ns, flux.Interval(hr.Spec.Timeout, 5*time.Minute)); terr != nil {
			flux.SetCondition(&st.Conditions, gen, "TestSuccess", metav1.ConditionFalse, "TestFailed", terr.Error())
			if !t.IgnoreFailures {
				st.Failures++
				flux.MarkFailed(&st.Conditions, gen, "TestFailed", terr.Error(), false)
				return resync(interval)
			}
		} else {
			flux.SetCondition(&st.Conditions, gen, "TestSuccess", metav1.ConditionTrue, "TestSucceeded",
				fmt.Sprintf("Helm test succeeded for release %s/%s.v%d", ns, name, out.Release.Version))
		}
	} else if t != nil && t.Enable && !t.IgnoreFailures && tested != nil && tested.Status == metav1.ConditionFalse {
		// This release's tests failed and are not run again until it
		// changes: a later reconcile must not call it Ready (green but
		// broken) because nothing new happened.
		flux.MarkFailed(&st.Conditions, gen, "TestFailed", tested.Message, false)
		return resync(interval)
	}
	// An unchanged release keeps the message of the action that made
	// it; when there is none to keep (Ready was False for another
	// reason), the message names that action, as Flux's does: "Helm
	// unchanged" is no action, and install is not an upgrade.
	action := out.Action
	if action == "unchanged" {
		action = "upgrade"
		if out.Release.Version == 1 {
			action = "install"
		}
	}
	msg := fmt.Sprintf("Helm %s succeeded for release %s/%s.v%d with chart %s@%s", action, ns, name, out.Release.Version,
		chart.Metadata.Name, chart.Metadata.Version)
	reason := map[string]string{"install": "InstallSucceeded", "upgrade": "UpgradeSucceeded"}[action]
	if out.Action == "unchanged" {
		if r := meta.FindStatusCondition(st.Conditions, flux.ReadyCondition); r != nil && r.Status == metav1.ConditionTrue {
			msg, reason = r.Message, r.Reason
		}
		if err := helmDrift(ctx, act.engine, hr, out, ns); err != nil {
			flux.MarkFailed(&st.Conditions, gen, "DriftDetectionFailed", err.Error(), false)
			return ctrl.Result{RequeueAfter: 30 * time.Second}
		}
	}
	// An unchanged release has the inventory it had: a resync does not
	// decode its manifest again.
	if out.Action != "unchanged" || st.Inventory == nil {
		inv, err := releaseInventory(act.engine, out.Release, chart)
		if err != nil {
			flux.MarkFailed(&st.Conditions, gen, "InventoryBuildFailed", err.Error(), false)
			return ctrl.Result{RequeueAfter: 30 * time.Second}
		}
		st.Inventory = inv
	}
	flux.MarkReady(&st.Conditions, gen, reason, msg)
	flux.SetCondition(&st.Conditions, gen, "Released", metav1.ConditionTrue, reason, msg)
	meta.RemoveStatusCondition(&st.Conditions, "Remediated")
	st.UpgradeFailures, st.InstallFailures, st.Failures = 0, 0, 0
	return resync(interval)
}

// actionOptions are the install and upgrade settings of a HelmRelease.
type actionOptions struct {
	createNamespace                            bool
	installCRDs, upgradeCRDs                   string
	retryInstall, retryUpgrade                 bool
	installRetryInterval, upgradeRetryInterval time.Duration
}

// releaseOptions reads install and upgrade settings, refusing values
// Flux does not define rather than guessing at them.
func releaseOptions(hr *helmv2.HelmRelease) (actionOptions, error) {
	var o actionOptions
	crds := func(field, v string) (string, error) {
		switch v {
		case "", helmrelease.CRDsSkip, helmrelease.CRDsCreate, helmrelease.CRDsCreateReplace:
			return v, nil
		}
		return "", fmt.Errorf("%s: %q is not a CRD policy (Skip, Create or CreateReplace)", field, v)
	}
	strategy := func(field string, s *helmv2.Strategy) (bool, time.Duration, error) {
		if s == nil {
			return false, 0, nil
		}
		switch s.Name {
		case "RemediateOnFailure":
			return false, 0, nil
		case "RetryOnFailure":
			return true, flux.Interval(s.RetryInterval, 5*time.Minute), nil
		}
		return false, 0, fmt.Errorf("%s.name: %q is not a strategy (RemediateOnFailure or RetryOnFailure)", field, s.Name)
	}
	var err error
	if in := hr.Spec.Install; in != nil {
		o.createNamespace = in.CreateNamespace
		if o.installCRDs, err = crds("spec.install.crds", in.CRDs); err != nil {
			return o, err
		}
		if o.retryInstall, o.installRetryInterval, err = strategy("spec.install.strategy", in.Strategy); err != nil {
			return o, err
		}
	}
	if up := hr.Spec.Upgrade; up != nil {
		if o.upgradeCRDs, err = crds("spec.upgrade.crds", up.CRDs); err != nil {
			return o, err
		}
		if o.retryUpgrade, o.upgradeRetryInterval, err = strategy("spec.upgrade.strategy", up.Strategy); err != nil {
			return o, err
		}
	}
	return o, nil
}

// everDeployed reports whether a release in the history was deployed.
func everDeployed(h []helmv2.Snapshot) bool {
	for _, s := range h {
		if s.Status == "deployed" || s.Status == "superseded" {
			return true
		}
	}
	return false
}

// exhausted says that retries ran out, keeping the last failure's
// message: without it the user would no longer see why.
func exhausted(conds []metav1.Condition, what string, retries int) string {
	msg := fmt.Sprintf("%s retries exhausted (%d); change the HelmRelease to try again", what, retries)
	prev := meta.FindStatusCondition(conds, flux.ReadyCondition)
	switch {
	case prev == nil || prev.Status != metav1.ConditionFalse || prev.Message == "":
		return msg
	case strings.HasPrefix(prev.Message, msg):
		return prev.Message
	}
	return msg + ". Last failure: " + prev.Message
}

// renderCheck renders the chart in the engine's Helm child first, when
// there is one, so that a chart that would take all memory fails there
// instead of in the controller.
func (r *HelmReleaseReconciler) renderCheck(name, ns string) func(context.Context, *chart.Chart, map[string]any) error {
	child := r.Engine.HelmChild()
	if child == nil {
		return nil
	}
	return func(ctx context.Context, c *chart.Chart, values map[string]any) error {
		return child.Check(ctx, c, values, helm.Options{ReleaseName: name, Namespace: ns})
	}
}

func history(m *helmrelease.Manager, hr *helmv2.HelmRelease, name, ns string) {
	h, err := m.History(name, ns)
	if err != nil {
		return
	}
	hr.Status.History = nil
	for i, rel := range h {
		if i == 5 {
			break
		}
		hr.Status.History = append(hr.Status.History, helmv2.Snapshot{Name: rel.Name, Namespace: rel.Namespace, Version: rel.Version,
			Status: rel.Info.Status.String(), ChartName: rel.Chart.Metadata.Name, ChartVersion: rel.Chart.Metadata.Version})
	}
}
