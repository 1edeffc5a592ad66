package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
	"converge.dev/converge/internal/dialect/appset"
	"converge.dev/converge/internal/dialect/argocd"
	"converge.dev/converge/internal/engine"
	"converge.dev/converge/internal/source/git"
)

// appSetFinalizer holds an ApplicationSet with preserveResourcesOnDeletion
// until its Applications have let go of their objects.
const appSetFinalizer = "converge.dev/applicationset-preserve"

// appSetResync is how often a set generates again with nothing else
// happening; cluster Secrets and its Applications wake it sooner.
const appSetResync = 3 * time.Minute

// ApplicationSetReconciler runs Argo CD ApplicationSets: it generates,
// renders, and creates, updates and deletes the set's Applications, as
// its policy allows. A generator that fails, or a round that would delete
// more than the set's deletion limit, deletes nothing until it recovers
// or a person approves (Argo CD #18480; the seed's §17.4).
type ApplicationSetReconciler struct {
	Client client.Client
	// Engine fetches the repositories of git generators.
	Engine *engine.Engine
	gate   *gate
	// listings keeps what forges answered for the generators'
	// requeueAfterSeconds: a set's round runs on every change of its
	// Applications, and must not ask the forge each time.
	listings listings
}

// SetupWithManager registers the reconciler.
func (r *ApplicationSetReconciler) SetupWithManager(mgr ctrl.Manager) error {
	b := ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.ApplicationSet{}, builder.WithPredicates(predicate.Or[client.Object](predicate.GenerationChangedPredicate{}, annotationsChanged{}))).
		Owns(&v1alpha1.Application{}).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.setsInNamespace), builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool {
			return o.GetLabels()[argocd.SecretTypeLabel] == "cluster"
		})))
	_, err := r.gate.build(b, &v1alpha1.ApplicationSet{}, &v1alpha1.ApplicationSetList{}, r)
	return err
}

// setsInNamespace wakes every set beside a cluster Secret that changed.
func (r *ApplicationSetReconciler) setsInNamespace(ctx context.Context, o client.Object) []reconcile.Request {
	var list v1alpha1.ApplicationSetList
	if err := r.Client.List(ctx, &list, client.InNamespace(o.GetNamespace())); err != nil {
		return nil
	}
	var out []reconcile.Request
	for _, s := range list.Items {
		out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: s.Namespace, Name: s.Name}})
	}
	return out
}

// Reconcile runs one round of a set.
func (r *ApplicationSetReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	set := &v1alpha1.ApplicationSet{}
	if err := r.Client.Get(ctx, req.NamespacedName, set); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	preserve := set.Spec.SyncPolicy != nil && set.Spec.SyncPolicy.PreserveResourcesOnDeletion
	if set.DeletionTimestamp != nil {
		return ctrl.Result{}, r.finalize(ctx, set)
	}
	if preserve != controllerutil.ContainsFinalizer(set, appSetFinalizer) {
		patch := client.MergeFrom(set.DeepCopy())
		if preserve {
			controllerutil.AddFinalizer(set, appSetFinalizer)
		} else {
			controllerutil.RemoveFinalizer(set, appSetFinalizer)
		}
		if err := r.Client.Patch(ctx, set, patch); err != nil {
			return ctrl.Result{}, fmt.Errorf("applicationset %s: finalizer: %w", req, err)
		}
	}
	refresh := set.Annotations[AppSetRefreshAnnotation] != ""
	if refresh {
		// As Argo CD's webhook does: generate from the repositories as
		// they are now, not as last fetched.
		ctx = git.FreshSince(ctx, time.Now())
	}
	orig := set.DeepCopy()
	now := metav1.Now()
	recheck, err := r.round(ctx, set, now, refresh)
	if err != nil {
		setAppSetCondition(set, "ErrorOccurred", "True", "ApplicationGenerationFromParamsError", err.Error(), now)
		setAppSetCondition(set, "ParametersGenerated", "False", "ErrorOccurred", err.Error(), now)
		setAppSetCondition(set, "ResourcesUpToDate", "False", "ErrorOccurred", err.Error(), now)
	}
	if !equality.Semantic.DeepEqual(orig.Status, set.Status) {
		if uerr := r.Client.Status().Update(ctx, set); uerr != nil && !apierrors.IsConflict(uerr) {
			return ctrl.Result{}, fmt.Errorf("applicationset %s: status: %w", req, uerr)
		}
	}
	if refresh {
		patch := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"`+AppSetRefreshAnnotation+`":null}}}`))
		if err := r.Client.Patch(ctx, set, patch); client.IgnoreNotFound(err) != nil {
			return ctrl.Result{}, fmt.Errorf("applicationset %s: clear refresh: %w", req, err)
		}
	}
	if recheck <= 0 || recheck > appSetResync {
		recheck = appSetResync
	}
	return ctrl.Result{RequeueAfter: recheck}, nil
}

// AppSetRefreshAnnotation asks an ApplicationSet to generate again now,
// from fresh repositories, as Argo CD's does.
const AppSetRefreshAnnotation = argocd.AppSetRefreshAnnotation

// round generates, renders, plans and acts. An error while generating or
// rendering comes before any write: nothing is created, updated or
// deleted then.
func (r *ApplicationSetReconciler) round(ctx context.Context, set *v1alpha1.ApplicationSet, now metav1.Time, refresh bool) (time.Duration, error) {
	clusters, err := r.clusters(ctx, set)
	if err != nil {
		return 0, err
	}
	checkout := func(ctx context.Context, repoURL, revision string) (string, error) {
		snap, err := r.Engine.Snapshot(ctx, engine.Unit{RepoURL: repoURL, Revision: revision})
		if err != nil {
			return "", err
		}
		return snap.Dir, nil
	}
	in := r.forgeInputs(set.Namespace, refresh)
	in.Clusters, in.Checkout = clusters, checkout
	gens, err := appset.Generate(ctx, set, in)
	if err != nil {
		return 0, err
	}
	desired := map[string]*unstructured.Unstructured{}
	var names []string
	for _, g := range gens {
		names = append(names, g.Generator)
		for _, p := range g.Params {
			app, err := appset.Render(set, g.Template, p)
			if err != nil {
				return 0, fmt.Errorf("%s: %w", g.Generator, err)
			}
			if _, dup := desired[app.GetName()]; dup {
				return 0, fmt.Errorf("%s: generated Application %s twice: its name must differ by parameter", g.Generator, app.GetName())
			}
			app.SetAnnotations(withSpecHash(app))
			desired[app.GetName()] = app
		}
	}
	// Typed, from the manager's cache: an unstructured list would be read
	// from the API server every round (or cached twice).
	var list v1alpha1.ApplicationList
	if err := r.Client.List(ctx, &list, client.InNamespace(set.Namespace)); err != nil {
		return 0, fmt.Errorf("list Applications: %w", err)
	}
	existing := map[string]*v1alpha1.Application{}
	differs, want := map[string]bool{}, map[string]bool{}
	for i := range list.Items {
		a := &list.Items[i]
		if !metav1.IsControlledBy(a, set) {
			continue
		}
		existing[a.GetName()] = a
		differs[a.GetName()] = desired[a.GetName()] != nil && !sameApp(a, desired[a.GetName()])
	}
	for name := range desired {
		want[name] = true
	}
	policy := appset.Policy{DeletionLimit: set.Annotations[appset.DeletionLimitAnnotation]}
	if sp := set.Spec.SyncPolicy; sp != nil {
		policy.Sync = sp.ApplicationsSync
	}
	plan, err := appset.Decide(differs, want, policy, strings.Join(names, ", "), deletionsApproved(set))
	if err != nil {
		return 0, err
	}
	for _, name := range plan.Create {
		app := desired[name]
		if err := controllerutil.SetControllerReference(set, app, r.Client.Scheme()); err != nil {
			return 0, err
		}
		if err := r.Client.Create(ctx, app); err != nil && !apierrors.IsAlreadyExists(err) {
			return 0, fmt.Errorf("create Application %s: %w", name, err)
		}
	}
	for _, name := range plan.Update {
		if err := r.update(ctx, existing[name], desired[name]); err != nil {
			return 0, fmt.Errorf("update Application %s: %w", name, err)
		}
	}
	if plan.Held == "" {
		for _, name := range plan.Delete {
			if err := r.Client.Delete(ctx, existing[name]); client.IgnoreNotFound(err) != nil {
				return 0, fmt.Errorf("delete Application %s: %w", name, err)
			}
		}
	}
	var recheck time.Duration
	if appset.RollingSync(set) {
		if recheck, err = r.roll(ctx, set, now); err != nil {
			return 0, err
		}
	} else {
		set.Status.ApplicationStatus = nil
	}
	setAppSetCondition(set, "ErrorOccurred", "False", "ApplicationSetUpToDate", "", now)
	setAppSetCondition(set, "ParametersGenerated", "True", "ParametersGenerated", "Successfully generated parameters for all Applications", now)
	if plan.Held != "" {
		setAppSetCondition(set, "DeletionHeld", "True", "DeletionHeld", plan.Held, now)
		setAppSetCondition(set, "ResourcesUpToDate", "False", "DeletionHeld", "deletions held: "+plan.Held, now)
	} else {
		setAppSetCondition(set, "DeletionHeld", "False", "NoDeletionHeld", "", now)
		setAppSetCondition(set, "ResourcesUpToDate", "True", "ApplicationSetUpToDate", "All applications have been generated successfully", now)
	}
	set.Status.Resources = nil
	for _, name := range sortedNames(desired) {
		res := v1alpha1.ApplicationSetResource{Group: v1alpha1.GroupVersion.Group, Version: v1alpha1.GroupVersion.Version, Kind: "Application",
			Namespace: set.Namespace, Name: name}
		if a := existing[name]; a != nil {
			res.Status = a.Status.Sync.Status
			if h := a.Status.Health.Status; h != "" {
				res.Health = &v1alpha1.HealthStatus{Status: h}
			}
		}
		set.Status.Resources = append(set.Status.Resources, res)
	}
	return recheck, nil
}

// roll runs one round of a RollingSync: it asks for the syncs of the
// active step and records where each Application is.
func (r *ApplicationSetReconciler) roll(ctx context.Context, set *v1alpha1.ApplicationSet, now metav1.Time) (time.Duration, error) {
	var list v1alpha1.ApplicationList
	if err := r.Client.List(ctx, &list, client.InNamespace(set.Namespace)); err != nil {
		return 0, fmt.Errorf("list Applications: %w", err)
	}
	var states []appset.AppState
	for i := range list.Items {
		a := &list.Items[i]
		if !metav1.IsControlledBy(a, set) || a.DeletionTimestamp != nil {
			continue
		}
		op := a.Status.OperationState
		source := ""
		if src := a.Spec.Source; src != nil {
			source = src.RepoURL + "@" + src.TargetRevision
		}
		st := appset.AppState{Name: a.Name, Labels: a.Labels, Source: source, Revision: a.Status.Sync.Revision,
			Synced: a.Status.Sync.Status == "Synced", Healthy: a.Status.Health.Status == "Healthy", Degraded: a.Status.Health.Status == "Degraded",
			Failed:  op != nil && (op.Phase == "Failed" || op.Phase == "Error") && a.Status.Sync.Status != "Synced",
			Syncing: a.Operation != nil || (op != nil && op.Phase == "Running")}
		if op != nil && a.Operation == nil {
			// With an operation asked for, operationState is the last one's.
			st.SyncStarted = op.StartedAt.Time
		}
		st.LastHealthy, st.RevertedFrom = a.Annotations[appset.LastHealthyAnnotation], a.Annotations[appset.RevertedAnnotation]
		if st.Synced && st.Healthy && st.Revision != "" && st.Revision != st.LastHealthy && a.Operation == nil {
			// What a halt would revert it to: written once per commit.
			// Healthy at a commit other than the one it was reverted
			// from (and its revert target), it is reverted no more.
			annotations := map[string]any{appset.LastHealthyAnnotation: st.Revision}
			if st.RevertedFrom != "" && st.Revision != st.RevertedFrom {
				annotations[appset.RevertedAnnotation], st.RevertedFrom = nil, ""
			}
			patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": annotations}})
			if err := r.Client.Patch(ctx, a, client.RawPatch(types.MergePatchType, patch)); err != nil {
				return 0, fmt.Errorf("RollingSync: record Application %s healthy at %s: %w", a.Name, st.Revision, err)
			}
			st.LastHealthy = st.Revision
		}
		states = append(states, st)
	}
	budget := appset.Budget{Failures: set.Annotations[appset.ErrorBudgetAnnotation], Now: now.Time}
	switch h := set.Annotations[appset.OnHaltAnnotation]; h {
	case "", "hold":
	case "revert":
		budget.Revert = true
	default:
		return 0, fmt.Errorf("annotation %s: %q is neither hold nor revert", appset.OnHaltAnnotation, h)
	}
	if d := set.Annotations[appset.ProgressDeadlineAnnotation]; d != "" {
		var err error
		if budget.Deadline, err = time.ParseDuration(d); err != nil || budget.Deadline <= 0 {
			return 0, fmt.Errorf("annotation %s: %q is not a positive duration (10m)", appset.ProgressDeadlineAnnotation, d)
		}
	}
	var steps []v1alpha1.ApplicationSetRolloutStep
	if rs := set.Spec.Strategy.RollingSync; rs != nil {
		steps = rs.Steps
	}
	ro, err := appset.Roll(steps, states, budget)
	if err != nil {
		return 0, err
	}
	op, _ := json.Marshal(map[string]any{"operation": v1alpha1.Operation{Sync: &v1alpha1.SyncOperation{Prune: templatePrune(set)},
		InitiatedBy: &v1alpha1.InitiatedBy{Username: "applicationset-controller", Automated: true}}})
	for _, name := range ro.Sync {
		a := &v1alpha1.Application{ObjectMeta: metav1.ObjectMeta{Namespace: set.Namespace, Name: name}}
		if err := r.Client.Patch(ctx, a, client.RawPatch(types.MergePatchType, op)); err != nil {
			return 0, fmt.Errorf("RollingSync: sync Application %s: %w", name, err)
		}
	}
	for _, st := range states {
		to, ok := ro.Revert[st.Name]
		if !ok {
			continue
		}
		// The commit it leaves is recorded with the sync back, so the
		// set never syncs it to that commit again.
		revert, _ := json.Marshal(map[string]any{
			"metadata": map[string]any{"annotations": map[string]string{appset.RevertedAnnotation: st.Revision}},
			"operation": v1alpha1.Operation{Sync: &v1alpha1.SyncOperation{Revision: to, Prune: templatePrune(set)},
				InitiatedBy: &v1alpha1.InitiatedBy{Username: "applicationset-controller", Automated: true}}})
		a := &v1alpha1.Application{ObjectMeta: metav1.ObjectMeta{Namespace: set.Namespace, Name: st.Name}}
		if err := r.Client.Patch(ctx, a, client.RawPatch(types.MergePatchType, revert)); err != nil {
			return 0, fmt.Errorf("RollingSync: revert Application %s to %s: %w", st.Name, to, err)
		}
	}
	revisions := map[string]string{}
	for _, st := range states {
		revisions[st.Name] = st.Revision
	}
	prev := map[string]v1alpha1.ApplicationSetApplicationStatus{}
	for _, s := range set.Status.ApplicationStatus {
		prev[s.Application] = s
	}
	set.Status.ApplicationStatus = nil
	names := make([]string, 0, len(ro.Status))
	for n := range ro.Status {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		st := ro.Status[n]
		e := v1alpha1.ApplicationSetApplicationStatus{Application: n, Status: st.Status, Message: st.Message, Step: strconv.Itoa(st.Step), LastTransitionTime: &now}
		if rev := revisions[n]; rev != "" {
			e.TargetRevisions = []string{rev}
		}
		if p, ok := prev[n]; ok && p.Status == e.Status {
			e.LastTransitionTime = p.LastTransitionTime
		}
		set.Status.ApplicationStatus = append(set.Status.ApplicationStatus, e)
	}
	if ro.Halted != "" {
		setAppSetCondition(set, "RolloutHalted", "True", "ErrorBudgetExceeded", ro.Halted, now)
	} else {
		setAppSetCondition(set, "RolloutHalted", "False", "WithinErrorBudget", "", now)
	}
	if ro.Done {
		setAppSetCondition(set, "RolloutProgressing", "False", "ApplicationSetRolloutComplete", "ApplicationSet Rollout has completed", now)
	} else {
		setAppSetCondition(set, "RolloutProgressing", "True", "ApplicationSetModified", "ApplicationSet is performing rollout of step(s)", now)
	}
	return ro.Recheck, nil
}

// templatePrune is the template's syncPolicy.automated.prune, which a
// RollingSync sync carries (the Applications themselves lose automated).
func templatePrune(set *v1alpha1.ApplicationSet) bool {
	var spec struct {
		SyncPolicy struct {
			Automated struct {
				Prune bool `json:"prune"`
			} `json:"automated"`
		} `json:"syncPolicy"`
	}
	_ = json.Unmarshal(set.Spec.Template.Spec.Raw, &spec)
	return spec.SyncPolicy.Automated.Prune
}

// clusters are the registered clusters the clusters generator sees: one
// per cluster Secret, and the cluster converge runs in unless a Secret
// registers it. A Secret that cannot be read fails the round: the cluster
// it registers may be one the set deploys to, and leaving it out would
// delete its Applications (Argo CD #18480).
func (r *ApplicationSetReconciler) clusters(ctx context.Context, set *v1alpha1.ApplicationSet) ([]appset.Cluster, error) {
	uses := false
	for _, g := range set.Spec.Generators {
		uses = uses || g.Clusters != nil || (g.Matrix != nil && strings.Contains(string(g.Matrix.Raw), `"clusters"`))
	}
	if !uses {
		return nil, nil
	}
	var secrets corev1.SecretList
	if err := r.Client.List(ctx, &secrets, client.InNamespace(set.Namespace), client.MatchingLabels{argocd.SecretTypeLabel: "cluster"}); err != nil {
		return nil, fmt.Errorf("clusters generator: list cluster secrets: %w", err)
	}
	var out []appset.Cluster
	local := true
	for i := range secrets.Items {
		s := &secrets.Items[i]
		c, err := argocd.ClusterOf(s)
		if err != nil {
			return nil, fmt.Errorf("clusters generator: %w", err)
		}
		local = local && c.Server != argocd.InClusterServer
		out = append(out, appset.Cluster{Name: c.Name, Server: c.Server, Project: string(s.Data["project"]), Labels: s.Labels, Annotations: s.Annotations})
	}
	if local {
		out = append(out, appset.Cluster{Name: argocd.InClusterName, Server: argocd.InClusterServer, Local: true})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// specHashAnnotation on a generated Application is the hash of the spec
// the set rendered for it: a template change to a field converge does
// not model (the typed cache drops it) is still seen as a change.
const specHashAnnotation = "converge.dev/applicationset-spec"

func withSpecHash(app *unstructured.Unstructured) map[string]string {
	data, _ := json.Marshal(app.Object["spec"])
	sum := sha256.Sum256(data)
	out := map[string]string{}
	for k, v := range app.GetAnnotations() {
		out[k] = v
	}
	out[specHashAnnotation] = hex.EncodeToString(sum[:8])
	return out
}

// sameApp reports whether a live Application already says what the
// template says: its spec (the hash of what was rendered, and the fields
// converge models, which a hand edit may have changed), and the labels,
// annotations and finalizers the template sets (others, like a refresh
// request, are not the set's).
func sameApp(live *v1alpha1.Application, want *unstructured.Unstructured) bool {
	var spec v1alpha1.ApplicationSpec
	if m, ok := want.Object["spec"].(map[string]any); !ok || runtime.DefaultUnstructuredConverter.FromUnstructured(m, &spec) != nil ||
		!equality.Semantic.DeepEqual(live.Spec, spec) {
		return false
	}
	for k, v := range want.GetLabels() {
		if live.Labels[k] != v {
			return false
		}
	}
	for k, v := range want.GetAnnotations() {
		if live.Annotations[k] != v {
			return false
		}
	}
	for _, f := range want.GetFinalizers() {
		if !controllerutil.ContainsFinalizer(live, f) {
			return false
		}
	}
	return true
}

// update writes the rendered spec, labels, annotations and finalizers
// over the live Application, keeping everything else (its operation, a
// person's annotations).
func (r *ApplicationSetReconciler) update(ctx context.Context, live *v1alpha1.Application, want *unstructured.Unstructured) error {
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(live)
	if err != nil {
		return err
	}
	next := &unstructured.Unstructured{Object: obj}
	next.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind("Application"))
	delete(next.Object, "status") // the status subresource is not written here
	next.Object["spec"] = want.Object["spec"]
	labels, annotations := next.GetLabels(), next.GetAnnotations()
	if labels == nil {
		labels = map[string]string{}
	}
	if annotations == nil {
		annotations = map[string]string{}
	}
	for k, v := range want.GetLabels() {
		labels[k] = v
	}
	for k, v := range want.GetAnnotations() {
		annotations[k] = v
	}
	next.SetLabels(labels)
	next.SetAnnotations(annotations)
	for _, f := range want.GetFinalizers() {
		controllerutil.AddFinalizer(next, f)
	}
	return r.Client.Update(ctx, next)
}

// finalize lets a deleted set's Applications keep their objects when the
// set says preserveResourcesOnDeletion: their resources finalizer goes
// before garbage collection deletes them.
func (r *ApplicationSetReconciler) finalize(ctx context.Context, set *v1alpha1.ApplicationSet) error {
	if !controllerutil.ContainsFinalizer(set, appSetFinalizer) {
		return nil
	}
	var list v1alpha1.ApplicationList
	if err := r.Client.List(ctx, &list, client.InNamespace(set.Namespace)); err != nil {
		return err
	}
	for i := range list.Items {
		a := &list.Items[i]
		if !metav1.IsControlledBy(a, set) {
			continue
		}
		var keep []string
		for _, f := range a.Finalizers {
			if !isResourcesFinalizer(f) {
				keep = append(keep, f)
			}
		}
		if len(keep) == len(a.Finalizers) {
			continue
		}
		patch := client.MergeFrom(a.DeepCopy())
		a.Finalizers = keep
		if err := r.Client.Patch(ctx, a, patch); err != nil {
			return fmt.Errorf("applicationset %s/%s: release Application %s: %w", set.Namespace, set.Name, a.Name, err)
		}
	}
	patch := client.MergeFrom(set.DeepCopy())
	controllerutil.RemoveFinalizer(set, appSetFinalizer)
	return client.IgnoreNotFound(r.Client.Patch(ctx, set, patch))
}

// deletionsApproved reports whether a person approved the held deletions
// after they were held.
func deletionsApproved(set *v1alpha1.ApplicationSet) bool {
	var held *v1alpha1.ApplicationSetCondition
	for i, c := range set.Status.Conditions {
		if c.Type == "DeletionHeld" && c.Status == "True" {
			held = &set.Status.Conditions[i]
		}
	}
	if held == nil || held.LastTransitionTime == nil {
		return false
	}
	t, err := time.Parse(time.RFC3339, set.Annotations[appset.DeletionApprovedAnnotation])
	return err == nil && t.After(held.LastTransitionTime.Time)
}

// setAppSetCondition sets a condition in Argo CD's shape; its time moves
// only when its status does.
func setAppSetCondition(set *v1alpha1.ApplicationSet, typ, status, reason, msg string, now metav1.Time) {
	for i := range set.Status.Conditions {
		c := &set.Status.Conditions[i]
		if c.Type != typ {
			continue
		}
		if c.Status != status {
			c.LastTransitionTime = &now
		}
		c.Status, c.Reason, c.Message = status, reason, msg
		return
	}
	set.Status.Conditions = append(set.Status.Conditions, v1alpha1.ApplicationSetCondition{Type: typ, Status: status, Reason: reason, Message: msg, LastTransitionTime: &now})
}

func sortedNames(m map[string]*unstructured.Unstructured) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
