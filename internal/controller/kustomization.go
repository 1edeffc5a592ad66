package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
	kustomizev1 "converge.dev/converge/internal/api/fluxcd/kustomize/v1"
	sourcev1 "converge.dev/converge/internal/api/fluxcd/source/v1"
	"converge.dev/converge/internal/cluster"
	"converge.dev/converge/internal/dialect/argocd"
	"converge.dev/converge/internal/dialect/flux"
	"converge.dev/converge/internal/drift"
	"converge.dev/converge/internal/engine"
	"converge.dev/converge/internal/object"
	"converge.dev/converge/internal/plan"
	"converge.dev/converge/internal/redact"
	"converge.dev/converge/internal/source"
	"converge.dev/converge/internal/source/git"
)

// Index keys for the watches that make Kustomizations event-driven.
const (
	sourceIndex    = "converge.dev/sourceRef"
	dependsOnIndex = "converge.dev/dependsOn"
)

// KustomizationReconciler applies Flux Kustomizations with the engine.
// A new artifact of its source, and a dependency becoming Ready, wake it
// at once: dependsOn does not wait for a fixed retry interval.
type KustomizationReconciler struct {
	Client client.Client
	// Reader reads the spec as written, unknown fields included, once per
	// generation. If nil, Client.
	Reader client.Reader
	Engine *engine.Engine
	// Recorder emits Kubernetes Events on Kustomizations. If nil, none.
	Recorder events.EventRecorder
	// RESTConfig is the controller's own; serviceAccountName
	// impersonates with it. If nil, serviceAccountName is an error.
	RESTConfig *rest.Config
	// Concurrency is the number of Kustomizations reconciled at once. If
	// zero, DefaultConcurrency.
	Concurrency int

	mu      sync.Mutex
	remotes map[string]*engine.Engine // by kubeconfig digest
	gate    *gate
	drift   driftPolicies
	fights  drift.Fights
}

// SetupWithManager registers the reconciler and its watches.
func (r *KustomizationReconciler) SetupWithManager(mgr ctrl.Manager) error {
	ctx := context.Background()
	idx := mgr.GetFieldIndexer()
	if err := idx.IndexField(ctx, &kustomizev1.Kustomization{}, sourceIndex, func(o client.Object) []string {
		ks := o.(*kustomizev1.Kustomization)
		return []string{orDefault(ks.Spec.SourceRef.Namespace, ks.Namespace) + "/" + ks.Spec.SourceRef.Name}
	}); err != nil {
		return err
	}
	if err := idx.IndexField(ctx, &kustomizev1.Kustomization{}, dependsOnIndex, func(o client.Object) []string {
		ks := o.(*kustomizev1.Kustomization)
		var out []string
		for _, d := range ks.Spec.DependsOn {
			out = append(out, orDefault(d.Namespace, ks.Namespace)+"/"+d.Name)
		}
		return out
	}); err != nil {
		return err
	}
	b := ctrl.NewControllerManagedBy(mgr).
		For(&kustomizev1.Kustomization{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		WithOptions(workers(r.Concurrency)).
		Watches(&sourcev1.GitRepository{}, handler.EnqueueRequestsFromMapFunc(r.bySource)).
		Watches(&sourcev1.OCIRepository{}, handler.EnqueueRequestsFromMapFunc(r.bySource)).
		Watches(&kustomizev1.Kustomization{}, handler.EnqueueRequestsFromMapFunc(r.byDependency),
			builder.WithPredicates(readyChanged{}))
	c, err := r.gate.build(b, &kustomizev1.Kustomization{}, &kustomizev1.KustomizationList{}, r)
	if err != nil {
		return err
	}
	r.drift = driftPolicies{reader: mgr.GetCache(), writer: mgr.GetClient()}
	return watchDriftPolicies(mgr, c, &kustomizev1.KustomizationList{}, "Kustomization")
}

func (r *KustomizationReconciler) list(ctx context.Context, index, key string) []reconcile.Request {
	var list kustomizev1.KustomizationList
	if err := r.Client.List(ctx, &list, client.MatchingFields{index: key}); err != nil {
		return nil
	}
	out := make([]reconcile.Request, 0, len(list.Items))
	for _, ks := range list.Items {
		out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: ks.Namespace, Name: ks.Name}})
	}
	return out
}

func (r *KustomizationReconciler) bySource(ctx context.Context, o client.Object) []reconcile.Request {
	return r.list(ctx, sourceIndex, o.GetNamespace()+"/"+o.GetName())
}

func (r *KustomizationReconciler) byDependency(ctx context.Context, o client.Object) []reconcile.Request {
	return r.list(ctx, dependsOnIndex, o.GetNamespace()+"/"+o.GetName())
}

// readyChanged passes updates that change a Kustomization's Ready
// condition: a dependency that became Ready wakes its dependents.
type readyChanged struct{ predicate.Funcs }

func (readyChanged) Update(e event.UpdateEvent) bool {
	o, ok1 := e.ObjectOld.(*kustomizev1.Kustomization)
	n, ok2 := e.ObjectNew.(*kustomizev1.Kustomization)
	if !ok1 || !ok2 {
		return false
	}
	a, b := meta.FindStatusCondition(o.Status.Conditions, flux.ReadyCondition), meta.FindStatusCondition(n.Status.Conditions, flux.ReadyCondition)
	return (a == nil) != (b == nil) || a != nil && (a.Status != b.Status || a.ObservedGeneration != b.ObservedGeneration) ||
		o.Status.LastAppliedRevision != n.Status.LastAppliedRevision
}

// Reconcile applies one Kustomization.
func (r *KustomizationReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	ks := &kustomizev1.Kustomization{}
	if err := r.Client.Get(ctx, req.NamespacedName, ks); err != nil {
		if apierrors.IsNotFound(err) {
			deleteDriftMetrics("Kustomization", req.Namespace, req.Name)
			r.fights.Forget(flux.UnitName(&kustomizev1.Kustomization{ObjectMeta: metav1.ObjectMeta{Namespace: req.Namespace, Name: req.Name}}))
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if ks.DeletionTimestamp != nil {
		return r.finalize(ctx, ks)
	}
	if ks.Spec.Suspend {
		return ctrl.Result{}, nil
	}
	if err := setFluxFinalizer(ctx, r.Client, ks, true); err != nil {
		return ctrl.Result{}, err
	}
	orig := ks.DeepCopy()
	st := &ks.Status
	st.LastHandledReconcileAt = ks.Annotations[ReconcileRequestAnnotation]
	if ks.Generation != ks.Status.ObservedGeneration {
		// The typed object drops fields it does not know: read the spec
		// as written, once per generation, to name them.
		if err := r.reportUnsupported(ctx, req.NamespacedName, ks); err != nil {
			return ctrl.Result{}, err
		}
	}
	res := r.reconcile(ctx, ks)
	st.ObservedGeneration = ks.Generation
	if !equality.Semantic.DeepEqual(orig.Status, ks.Status) {
		if requeue, err := patchStatus(ctx, r.Client, ks, orig); err != nil || requeue {
			return ctrl.Result{Requeue: requeue}, err
		}
	}
	return res, nil
}

func (r *KustomizationReconciler) reportUnsupported(ctx context.Context, key types.NamespacedName, ks *kustomizev1.Kustomization) error {
	return reportUnsupported(ctx, r.Reader, r.Client, key, kustomizev1.GroupVersion.WithKind("Kustomization"), &ks.Status.Conditions, ks.Generation)
}

// reportUnsupported reads an object's spec as written (typed objects
// drop fields they do not know) and names what converge ignores in an
// UnsupportedFields condition.
func reportUnsupported(ctx context.Context, reader client.Reader, fallback client.Client, key types.NamespacedName,
	gvk schema.GroupVersionKind, conds *[]metav1.Condition, gen int64) error {
	if reader == nil {
		reader = fallback
	}
	raw := &unstructured.Unstructured{}
	raw.SetGroupVersionKind(gvk)
	if err := reader.Get(ctx, key, raw); err != nil {
		return client.IgnoreNotFound(err)
	}
	flux.MarkUnsupported(conds, gen, flux.Unsupported(raw))
	return nil
}

func (r *KustomizationReconciler) reconcile(ctx context.Context, ks *kustomizev1.Kustomization) ctrl.Result {
	st := &ks.Status
	gen := ks.Generation
	interval := flux.Interval(&ks.Spec.Interval, 5*time.Minute)
	retry := flux.Interval(ks.Spec.RetryInterval, interval)
	for _, d := range ks.Spec.DependsOn {
		key := types.NamespacedName{Namespace: orDefault(d.Namespace, ks.Namespace), Name: d.Name}
		dep := &kustomizev1.Kustomization{}
		err := r.Client.Get(ctx, key, dep)
		ready := meta.FindStatusCondition(dep.Status.Conditions, flux.ReadyCondition)
		if err != nil || ready == nil || ready.Status != metav1.ConditionTrue || dep.Status.ObservedGeneration != dep.Generation {
			// No timer: the dependency's Ready event wakes this one.
			flux.MarkFailed(&st.Conditions, gen, flux.DependencyNotReadyReason, fmt.Sprintf("dependency '%s' is not ready", key), false)
			return ctrl.Result{RequeueAfter: retry}
		}
	}
	srcKey := types.NamespacedName{Namespace: orDefault(ks.Spec.SourceRef.Namespace, ks.Namespace), Name: ks.Spec.SourceRef.Name}
	var gitRepo *sourcev1.GitRepository
	var ociRepo *sourcev1.OCIRepository
	var getErr error
	switch ks.Spec.SourceRef.Kind {
	case "OCIRepository":
		ociRepo = &sourcev1.OCIRepository{}
		getErr = r.Client.Get(ctx, srcKey, ociRepo)
	case "GitRepository", "":
		gitRepo = &sourcev1.GitRepository{}
		getErr = r.Client.Get(ctx, srcKey, gitRepo)
	default:
		// Bucket, ExternalArtifact and the rest are Flux sources converge
		// does not serve: saying "not found" would send the user looking
		// for an object that is there.
		flux.MarkFailed(&st.Conditions, gen, flux.InvalidSpecReason,
			fmt.Sprintf("spec.sourceRef.kind %q is not supported by converge (GitRepository and OCIRepository are)", ks.Spec.SourceRef.Kind), true)
		return ctrl.Result{}
	}
	var unitAuth git.Auth
	src, err := flux.SourceOf(gitRepo, ociRepo)
	if getErr != nil || err != nil {
		msg := fmt.Sprintf("Source artifact not found for %s %s", ks.Spec.SourceRef.Kind, srcKey)
		if getErr != nil && !apierrors.IsNotFound(getErr) {
			msg = getErr.Error()
		}
		flux.MarkFailed(&st.Conditions, gen, flux.ArtifactFailedReason, msg, false)
		return ctrl.Result{RequeueAfter: retry}
	}
	if gitRepo != nil {
		// The GitRepository fetched this commit already; its credentials
		// matter again only when the cache lost it.
		if unitAuth, err = flux.GitAuth(ctx, r.Client, gitRepo); err == nil {
			src.Includes, err = gitIncludes(ctx, r.Client, gitRepo)
		}
		if err != nil {
			flux.MarkFailed(&st.Conditions, gen, flux.ArtifactFailedReason, err.Error(), false)
			return ctrl.Result{RequeueAfter: retry}
		}
	}
	vars, err := r.substituteFrom(ctx, ks)
	if err != nil {
		flux.MarkFailed(&st.Conditions, gen, flux.ReconciliationFailedReason, err.Error(), false)
		return ctrl.Result{RequeueAfter: retry}
	}
	ageKeys, err := r.ageKeys(ctx, ks)
	if err != nil {
		flux.MarkFailed(&st.Conditions, gen, flux.ReconciliationFailedReason, err.Error(), false)
		return ctrl.Result{RequeueAfter: retry}
	}
	unit, opts, err := flux.ToUnit(ks, src, vars, ageKeys)
	if err != nil {
		flux.MarkFailed(&st.Conditions, gen, flux.InvalidSpecReason, err.Error(), true)
		return ctrl.Result{}
	}
	unit.Auth = unitAuth
	var overrides unitOverrides
	if unit.Drift, overrides, err = r.drift.forUnit(ctx, ks.Namespace, "Kustomization", ks.Name, ks.Labels, time.Now()); err != nil {
		flux.MarkFailed(&st.Conditions, gen, flux.InvalidSpecReason, err.Error(), false)
		return ctrl.Result{RequeueAfter: retry}
	}
	unit.Drift = unit.Drift.Stop(r.fights.Active(unit.Name, time.Now()))
	if ociRepo != nil {
		if unit.OCIAuth, err = ociAuth(ctx, r.Client, ociRepo); err != nil {
			flux.MarkFailed(&st.Conditions, gen, flux.ArtifactFailedReason, err.Error(), false)
			return ctrl.Result{RequeueAfter: retry}
		}
		if ls := ociRepo.Spec.LayerSelector; ls != nil {
			unit.OCIMediaType = ls.MediaType
		}
	}
	rev := src.Artifact
	if held, wait, err := r.windowHolds(ctx, ks, rev, st, gen); err != nil || held {
		if err != nil {
			flux.MarkFailed(&st.Conditions, gen, flux.InvalidSpecReason, err.Error(), true)
			return ctrl.Result{}
		}
		return ctrl.Result{RequeueAfter: min(wait, interval)}
	}
	st.LastAttemptedRevision = rev
	if meta.FindStatusCondition(st.Conditions, flux.ReadyCondition) == nil {
		flux.SetCondition(&st.Conditions, gen, flux.ReconcilingCondition, metav1.ConditionTrue, flux.ProgressingReason, "Reconciliation in progress")
	}
	eng, err := r.engineFor(ctx, ks)
	if err != nil {
		flux.MarkFailed(&st.Conditions, gen, flux.ReconciliationFailedReason, err.Error(), false)
		return ctrl.Result{RequeueAfter: retry}
	}
	sctx, cancel := context.WithTimeout(ctx, flux.Interval(ks.Spec.Timeout, interval))
	defer cancel()
	rep, err := eng.Sync(sctx, unit, opts)
	if err == nil {
		if err := r.recordDrift(ctx, ks, eng, unit, rep, overrides); err != nil {
			flux.MarkFailed(&st.Conditions, gen, flux.ReconciliationFailedReason, err.Error(), false)
			return ctrl.Result{RequeueAfter: retry}
		}
		interval = overrides.before(interval, time.Now())
		if conflicts := conflictsOf(rep); conflicts != "" {
			if prev := meta.FindStatusCondition(st.Conditions, flux.ReadyCondition); r.Recorder != nil && (prev == nil || prev.Message != conflicts) {
				r.Recorder.Eventf(ks, nil, corev1.EventTypeWarning, flux.OwnershipConflictReason, "Reconcile", "%s", redact.Message(conflicts))
			}
			flux.MarkFailed(&st.Conditions, gen, flux.OwnershipConflictReason, conflicts, false)
			return ctrl.Result{RequeueAfter: retry}
		}
		if rep.Plan.Held != nil {
			// The rest is applied; the deletions wait for a person.
			st.LastAppliedRevision = rev
			st.Inventory = flux.Inventory(rep)
			flux.MarkFailed(&st.Conditions, gen, PruneHeld, rep.Plan.Held.Message(ks.Spec.Path), false)
			return ctrl.Result{RequeueAfter: retry}
		}
		if len(ks.Spec.HealthChecks) > 0 {
			err = eng.WaitHealthy(sctx, healthCheckRefs(ks), 0)
		}
	}
	if err == nil {
		st.LastAppliedRevision = rev
		st.Inventory = flux.Inventory(rep)
		flux.MarkReady(&st.Conditions, gen, flux.ReconciliationSucceededReason, "Applied revision: "+rev)
		return resync(interval)
	}
	reason := flux.ReconciliationFailedReason
	switch {
	case errors.Is(err, source.ErrUnreachable):
		reason = flux.ArtifactFailedReason
	case strings.Contains(err.Error(), "render "):
		reason = flux.BuildFailedReason
	case strings.Contains(err.Error(), "Degraded") || strings.HasPrefix(err.Error(), "health check") || errors.Is(err, context.DeadlineExceeded):
		reason = flux.HealthCheckFailedReason
	}
	// Nothing is pruned on a failure: the engine applies nothing when
	// fetch, render or validation fail, and prunes only after all
	// applies succeeded.
	flux.MarkFailed(&st.Conditions, gen, reason, err.Error(), false)
	return ctrl.Result{RequeueAfter: retry}
}

// SyncWindowsAnnotation on a Kustomization names an AppProject
// ("namespace/name") whose syncWindows apply to it, matched by the
// Kustomization's name and target namespace, as Argo CD matches an
// Application's.
const SyncWindowsAnnotation = "converge.dev/sync-windows"

// windowHolds reports whether the sync windows named by the annotation
// hold this reconcile back, and for how long. A held Kustomization says
// so: Ready=False when a new revision waits, a SyncWindowBlocked
// condition either way.
func (r *KustomizationReconciler) windowHolds(ctx context.Context, ks *kustomizev1.Kustomization, rev string, st *kustomizev1.KustomizationStatus, gen int64) (bool, time.Duration, error) {
	ref, ok := ks.Annotations[SyncWindowsAnnotation]
	if !ok {
		meta.RemoveStatusCondition(&st.Conditions, SyncWindowCondition)
		return false, 0, nil
	}
	ns, name, found := strings.Cut(ref, "/")
	if !found || ns == "" || name == "" {
		return false, 0, fmt.Errorf("annotation %s: %q is not namespace/name of an AppProject", SyncWindowsAnnotation, ref)
	}
	proj := &v1alpha1.AppProject{}
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, proj); err != nil {
		return false, 0, fmt.Errorf("annotation %s: AppProject %s: %w", SyncWindowsAnnotation, ref, err)
	}
	target := argocd.WindowTarget{Name: ks.Name, Namespace: orDefault(ks.Spec.TargetNamespace, ks.Namespace),
		Clusters: []string{argocd.InClusterServer, "in-cluster"}}
	d, err := argocd.CheckWindows(proj.Spec.SyncWindows, target, false, time.Now())
	if err != nil {
		return false, 0, fmt.Errorf("AppProject %s (annotation %s): %w", ref, SyncWindowsAnnotation, err)
	}
	if d.Allowed {
		meta.RemoveStatusCondition(&st.Conditions, SyncWindowCondition)
		return false, 0, nil
	}
	flux.SetCondition(&st.Conditions, gen, SyncWindowCondition, metav1.ConditionTrue, SyncWindowCondition, d.Message)
	if st.LastAppliedRevision != rev {
		flux.MarkFailed(&st.Conditions, gen, SyncWindowCondition, "revision "+rev+" waits: "+d.Message, false)
	}
	wait := time.Minute
	if !d.Next.IsZero() {
		wait = time.Until(d.Next) + time.Second
	}
	return true, wait, nil
}

// PruneHeld names a prune held by the unit's prune budget: the
// Application condition and Event, and the Kustomization's Ready=False
// reason.
const PruneHeld = "PruneHeld"

// conflictsOf names the objects another unit owns; they were not
// touched.
func conflictsOf(rep engine.Report) string {
	var out []string
	for _, s := range rep.Plan.Steps {
		if s.Action == plan.Conflict {
			out = append(out, fmt.Sprintf("%s is %s", s.Ref, s.Reason))
		}
	}
	if len(out) == 0 {
		return ""
	}
	return "refusing to take over objects applied by another unit (\"Do not choose both for the same resources\") or made by hand: " + strings.Join(out, "; ")
}

// finalize applies the deletion policy, then releases the finalizer.
// engine.Delete never deletes a Namespace nor an object another unit
// took over, and waits until what it deleted is gone.
func (r *KustomizationReconciler) finalize(ctx context.Context, ks *kustomizev1.Kustomization) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(ks, flux.Finalizer) {
		return ctrl.Result{}, nil
	}
	if flux.DeletesOnDeletion(ks) {
		dctx, cancel := context.WithTimeout(ctx, flux.Interval(ks.Spec.Timeout, 5*time.Minute))
		defer cancel()
		eng, err := r.engineFor(ctx, ks)
		if err == nil {
			_, err = eng.Delete(dctx, flux.UnitName(ks), engine.DeleteOptions{})
		}
		if err != nil {
			orig := ks.DeepCopy()
			flux.MarkFailed(&ks.Status.Conditions, ks.Generation, "PruneFailed", err.Error(), false)
			if _, perr := patchStatus(ctx, r.Client, ks, orig); perr != nil {
				return ctrl.Result{}, perr
			}
			return ctrl.Result{RequeueAfter: 10 * time.Second}, nil
		}
	}
	return ctrl.Result{}, setFluxFinalizer(ctx, r.Client, ks, false)
}

func healthCheckRefs(ks *kustomizev1.Kustomization) []object.Ref {
	var out []object.Ref
	for _, h := range ks.Spec.HealthChecks {
		gv, _ := schema.ParseGroupVersion(h.APIVersion)
		out = append(out, object.Ref{Group: gv.Group, Version: gv.Version, Kind: h.Kind,
			Namespace: orDefault(h.Namespace, ks.Namespace), Name: h.Name})
	}
	return out
}

// engineFor returns the engine for the Kustomization's target cluster:
// this one, or the one its kubeConfig Secret names. Remote engines are
// kept per kubeconfig content, so a rotated credential gets a new one.
func (r *KustomizationReconciler) engineFor(ctx context.Context, ks *kustomizev1.Kustomization) (*engine.Engine, error) {
	kc, sa := ks.Spec.KubeConfig, ks.Spec.ServiceAccountName
	if kc == nil && sa == "" {
		return r.Engine, nil
	}
	var cfg *rest.Config
	id := "local"
	if kc != nil {
		sec := &corev1.Secret{}
		key := types.NamespacedName{Namespace: ks.Namespace, Name: kc.SecretRef.Name}
		if err := r.Client.Get(ctx, key, sec); err != nil {
			return nil, fmt.Errorf("kubeConfig secret %s: %w", key, err)
		}
		data, ok := sec.Data[kc.SecretRef.Key]
		if kc.SecretRef.Key == "" {
			if data, ok = sec.Data["value"]; !ok {
				data, ok = sec.Data["value.yaml"]
			}
		}
		if !ok {
			return nil, fmt.Errorf("kubeConfig secret %s: no key %q (nor value, value.yaml)", key, kc.SecretRef.Key)
		}
		sum := sha256.Sum256(data)
		id = hex.EncodeToString(sum[:])
		var err error
		if cfg, err = clientcmd.RESTConfigFromKubeConfig(data); err != nil {
			return nil, fmt.Errorf("kubeConfig secret %s: %w", key, err)
		}
	} else {
		if r.RESTConfig == nil {
			return nil, errors.New("spec.serviceAccountName: the controller has no configuration to impersonate with")
		}
		cfg = rest.CopyConfig(r.RESTConfig)
	}
	if sa != "" {
		// Flux impersonates the account on the target cluster too.
		cfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + ks.Namespace + ":" + sa}
		id += "/" + cfg.Impersonate.UserName
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.remotes[id]; ok {
		return e, nil
	}
	cc, err := cluster.New(cfg)
	if err != nil {
		return nil, err
	}
	if r.remotes == nil {
		r.remotes = map[string]*engine.Engine{}
	}
	e := r.Engine.ForCluster(cc)
	if kc == nil {
		e = r.Engine.Impersonating(cc)
	}
	r.remotes[id] = e
	return e, nil
}
