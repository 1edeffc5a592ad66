// Package controller holds converge's controller-runtime reconcilers: each
// loads a dialect's custom resource, turns it into an engine unit, runs the
// engine and writes the dialect's status back.
package controller

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
	"converge.dev/converge/internal/apply"
	"converge.dev/converge/internal/dialect/argocd"
	"converge.dev/converge/internal/drift"
	"converge.dev/converge/internal/engine"
	"converge.dev/converge/internal/health"
	"converge.dev/converge/internal/object"
	"converge.dev/converge/internal/plan"
	"converge.dev/converge/internal/redact"
	"converge.dev/converge/internal/source/git"
)

// syncTimeout bounds a sync with hooks, waits for health included; a
// sync without hooks runs in steps and has no limit, as in Argo CD: it
// ends when all is healthy or an object is Degraded.
const syncTimeout = 3 * time.Minute

// stepPoll is how soon a sync in steps looks again at the wave it waits
// for. Drift events wake the Application sooner for a spec change; a
// status change (a rollout going on) is seen at this pace.
const stepPoll = 2 * time.Second

// RefreshAnnotation asks for an immediate reconcile, as in Argo CD.
const RefreshAnnotation = argocd.RefreshAnnotation

// ApplicationReconciler reconciles Argo CD Applications.
type ApplicationReconciler struct {
	Client client.Client
	// Reader reads Applications straight from the API server. The cache
	// can lag behind a spec change (selfHeal turned off) while a drift
	// event is already being handled; reading live avoids acting on the
	// old spec. If nil, Client is used.
	Reader client.Reader
	Engine *engine.Engine
	// Interval is how often an Application is compared with Git when
	// nothing else happens. If zero, three minutes; a tenth of it is
	// added at random so that Applications do not move in lockstep.
	Interval time.Duration
	// Concurrency is the number of Applications reconciled at once. If
	// zero, DefaultConcurrency.
	Concurrency int
	// Recorder emits Kubernetes Events on Applications. If nil, none.
	Recorder events.EventRecorder

	live *liveWatches
	gate *gate
	// projects reads AppProjects as they are written, unknown fields
	// included, from the manager's cache: one GET per reconcile was a
	// tenth of a cold start's requests.
	projects client.Reader
	// drift reads the DriftPolicies that govern an Application.
	drift driftPolicies
	// fights remembers the fields converge keeps taking back.
	fights drift.Fights
	// remotes are the engines of registered destination clusters.
	remotes remoteClusters
}

// SetupWithManager registers the reconciler. Status writes do not wake
// it: only spec changes and annotations (refresh) do, plus the interval.
func (r *ApplicationReconciler) SetupWithManager(mgr ctrl.Manager) error {
	registerMetrics()
	b := ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.Application{}, builder.WithPredicates(predicate.Or[client.Object](predicate.GenerationChangedPredicate{}, annotationsChanged{}))).
		WithOptions(workers(r.Concurrency))
	c, err := r.gate.build(b, &v1alpha1.Application{}, &v1alpha1.ApplicationList{}, r)
	if err != nil {
		return err
	}
	r.live = &liveWatches{ctrl: c, cache: mgr.GetCache(), watched: map[schema.GroupVersionKind]bool{}, wrote: r.Engine.Wrote}
	r.projects = mgr.GetCache()
	r.drift = driftPolicies{reader: mgr.GetCache(), writer: mgr.GetClient()}
	if err := watchDriftPolicies(mgr, c, &v1alpha1.ApplicationList{}, "Application"); err != nil {
		return err
	}
	// Another unit refused an object an Application owns: its
	// SharedResourceWarning must say so now, not at its next resync.
	claimed := make(chan event.TypedGenericEvent[*v1alpha1.Application], 64)
	r.Engine.NotifyClaims(func(owner string) {
		reqs := ownerApplication(context.Background(), &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{
			Annotations: map[string]string{plan.OwnerAnnotation: owner}}})
		for _, req := range reqs {
			app := &v1alpha1.Application{ObjectMeta: metav1.ObjectMeta{Namespace: req.Namespace, Name: req.Name}}
			select {
			case claimed <- event.TypedGenericEvent[*v1alpha1.Application]{Object: app}:
			default: // full: the resync will tell
			}
		}
	})
	return c.Watch(source.Channel(claimed, &handler.TypedEnqueueRequestForObject[*v1alpha1.Application]{}))
}

func (r *ApplicationReconciler) interval() time.Duration {
	d := r.Interval
	if d == 0 {
		d = 3 * time.Minute
	}
	return d + time.Duration(rand.Int64N(int64(d)/10+1))
}

// Reconcile compares one Application with Git, syncs it when its policy
// or an operation says so, and writes Argo CD's status.
func (r *ApplicationReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	reader := r.Reader
	if reader == nil {
		reader = r.Client
	}
	raw := &unstructured.Unstructured{}
	raw.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind("Application"))
	if err := reader.Get(ctx, req.NamespacedName, raw); err != nil {
		if apierrors.IsNotFound(err) {
			deleteAppInfo(req.Namespace, req.Name)
			deleteDriftMetrics("Application", req.Namespace, req.Name)
			r.fights.Forget(argocd.UnitName(&v1alpha1.Application{ObjectMeta: metav1.ObjectMeta{Namespace: req.Namespace, Name: req.Name}}))
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	app := &v1alpha1.Application{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(raw.Object, app); err != nil {
		return ctrl.Result{}, fmt.Errorf("application %s: %w", req.NamespacedName, err)
	}
	orig := app.DeepCopy()
	now := time.Now()
	if app.DeletionTimestamp != nil {
		return r.finalize(ctx, orig, app, now)
	}
	if _, ok := app.Annotations[RefreshAnnotation]; ok {
		// A refresh (by hand or from a push) must see the remote as it is
		// now, not a revision resolved before it was asked for; one
		// resolved since serves every Application refreshed at once.
		ctx = git.FreshSince(ctx, now)
	}

	unsupported := ""
	fields := argocd.Unsupported(raw)
	// The project's fields count too: one converge ignores would let the
	// Application do more than its project allows in Argo CD.
	rawProj := &unstructured.Unstructured{}
	rawProj.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind("AppProject"))
	projKey := types.NamespacedName{Namespace: app.Namespace, Name: projectName(app)}
	err := r.projects.Get(ctx, projKey, rawProj)
	if apierrors.IsNotFound(err) {
		// Not in the cache (yet): a project made a moment ago is read
		// from the API server, as it always was.
		err = r.Client.Get(ctx, projKey, rawProj)
	}
	if err == nil {
		for _, f := range argocd.ProjectUnsupported(rawProj) {
			fields = append(fields, "AppProject "+rawProj.GetName()+" "+f)
		}
	}
	if len(fields) > 0 {
		unsupported = "fields not supported by converge, ignored: " + strings.Join(fields, ", ")
	}
	argocd.SetCondition(app, "UnsupportedFields", unsupported, now)

	res, err := r.reconcile(ctx, orig, app, now, argocd.Refused(raw))
	setAppInfo(app.Namespace, app.Name, app.Spec.Project, app.Status.Sync.Status, app.Status.Health.Status)
	if perr := r.writeStatus(ctx, orig, app); perr != nil {
		return ctrl.Result{}, perr
	}
	if r.clearRefresh(ctx, app) != nil {
		return ctrl.Result{Requeue: true}, nil
	}
	return res, err
}

// refused, if not nil, names a source converge cannot render: the
// Application is then an InvalidSpecError, and nothing is synced.
func (r *ApplicationReconciler) reconcile(ctx context.Context, orig, app *v1alpha1.Application, now time.Time, refused error) (ctrl.Result, error) {
	unit, opts, err := argocd.ToUnit(app)
	if err == nil {
		err = refused
	}
	var dest appCluster
	if err == nil {
		dest, err = r.clusterFor(ctx, app)
	}
	var proj *v1alpha1.AppProject
	if err == nil {
		proj, err = r.project(ctx, app)
	}
	if err == nil {
		err = argocd.Permits(proj, app, dest.Cluster)
	}
	var overrides unitOverrides
	if err == nil {
		unit.Drift, overrides, err = r.drift.forUnit(ctx, app.Namespace, "Application", app.Name, app.Labels, now)
		unit.Drift = unit.Drift.Stop(r.fights.Active(unit.Name, now))
	}
	if err != nil {
		argocd.SetCondition(app, "InvalidSpecError", err.Error(), now)
		app.Status.Sync.Status = argocd.Unknown
		return resync(r.interval()), nil
	}
	argocd.SetCondition(app, "InvalidSpecError", "", now)

	eng := dest.engine
	st, err := eng.Status(ctx, unit)
	if err != nil {
		argocd.SetCondition(app, "ComparisonError", err.Error(), now)
		app.Status.Sync.Status = argocd.Unknown
		return ctrl.Result{RequeueAfter: r.retryAfter(app)}, nil
	}
	argocd.SetCondition(app, "ComparisonError", "", now)
	if dest.InCluster() {
		// The watches are this cluster's; a remote one is compared at
		// the interval.
		r.watchLive(ctx, st)
	}
	if err := checkKinds(proj, st); err != nil {
		argocd.SetCondition(app, "InvalidSpecError", err.Error(), now)
		argocd.WriteStatus(app, st, now)
		return resync(r.interval()), nil
	}

	op, sync := r.wantSync(app, opts, st)
	glass := ""
	if sync && automatedOp(op) && dest.BreakGlass != "" {
		// A person holds this cluster: automation waits, a manual sync
		// still runs.
		glass = fmt.Sprintf("automated sync to cluster %s is paused: %s (annotation %s on cluster secret %s/%s)",
			dest.Name, dest.BreakGlass, argocd.BreakGlassAnnotation, app.Namespace, dest.Secret)
		sync = false
	}
	argocd.SetCondition(app, BreakGlassCondition, glass, now)
	if sync {
		d, err := argocd.CheckWindows(proj.Spec.SyncWindows, windowTarget(app, dest.Cluster), !automatedOp(op), now)
		if err != nil {
			argocd.SetCondition(app, "InvalidSpecError", fmt.Sprintf("project %s: %v", proj.Name, err), now)
			argocd.WriteStatus(app, st, now)
			return resync(r.interval()), nil
		}
		argocd.SetCondition(app, SyncWindowCondition, d.Message, now)
		if !d.Allowed {
			// A manual operation stays in place and runs when a window
			// lets it; automated sync tries again then.
			argocd.WriteStatus(app, st, now)
			wait := r.interval()
			if !d.Next.IsZero() && time.Until(d.Next) < wait {
				wait = time.Until(d.Next) + time.Second
			}
			return ctrl.Result{RequeueAfter: wait}, nil
		}
	} else {
		argocd.SetCondition(app, SyncWindowCondition, "", now)
	}
	if sync && automatedOp(op) && r.specChanged(ctx, app) {
		// The spec changed while this comparison ran (selfHeal or
		// automated turned off, say): decide again on the new spec
		// rather than sync on the old one.
		return ctrl.Result{Requeue: true}, nil
	}
	if sync && st.RevertNow() {
		warnForbidden(r.Recorder, app, st.Drift)
	}
	if sync {
		if op.Sync != nil && op.Sync.Revision != "" {
			// An operation names its revision (`argocd app sync
			// --revision`, a rollback to a history entry): that revision
			// is synced, not the target.
			unit.Revision = op.Sync.Revision
		}
		synced, err := r.sync(ctx, dest, orig, app, unit, opts, op, now)
		if errors.Is(err, apply.ErrInProgress) {
			// A wave is rolling out: the operation says Running and what
			// it waits for, and the next step comes when it is healthy.
			argocd.WriteStatus(app, st, now)
			return ctrl.Result{RequeueAfter: stepPoll}, nil
		}
		if err != nil {
			// The comparison made before the failed sync still says what
			// Git wants and what runs: OutOfSync at the new revision, never
			// the Synced of the last sync that worked.
			argocd.WriteStatus(app, st, now)
			return ctrl.Result{RequeueAfter: r.retryAfter(app)}, nil
		}
		st = synced
	}
	argocd.WriteStatus(app, st, now)
	setDriftMetrics("Application", app.Namespace, app.Name, st.Drift)
	argocd.SetCondition(app, FieldFightCondition, fightMessage(r.fights.Active(unit.Name, now)), now)
	if err := r.drift.settle(ctx, overrides, st.Drift, false, backportWith(eng, unit)); err != nil {
		return ctrl.Result{}, err
	}
	shared := sharedResources(st, eng.ClaimsOn(unit.Name))
	if shared != "" && shared != conditionMessage(app, "SharedResourceWarning") {
		r.event(app, corev1.EventTypeWarning, "SharedResourceWarning", "Compare", "%s", shared)
	}
	argocd.SetCondition(app, "SharedResourceWarning", shared, now)
	// An override's expiry must be acted on when it comes, not at the
	// next resync.
	interval := overrides.before(r.interval(), now)
	if pruneStillHeld(app, st) {
		return resync(interval), nil // a person must act; nothing to retry
	}
	if glass != "" {
		// Held by a person: look for the lift now and then, not at the
		// pace of a sync in progress.
		return resync(min(interval, 10*time.Second)), nil
	}
	if !st.Synced || (st.Health != health.Healthy && st.Health != health.Suspended) {
		// Still converging: look again soon rather than at the interval.
		return ctrl.Result{RequeueAfter: 2 * time.Second}, nil
	}
	return resync(interval), nil
}

// watchLive makes sure every kind the Application manages is watched.
// A kind that cannot be watched falls back to polling.
func (r *ApplicationReconciler) watchLive(ctx context.Context, st engine.UnitStatus) {
	if r.live == nil {
		return
	}
	for _, o := range st.Objects {
		r.live.ensure(ctx, o.Ref.GVK())
	}
}

// BreakGlassCondition says an automated sync waits because its
// destination cluster's Secret carries the break-glass annotation.
const BreakGlassCondition = "BreakGlass"

// SyncWindowCondition says which of the project's sync windows holds a
// sync back, and until when.
const SyncWindowCondition = "SyncWindowBlocked"

func automatedOp(op v1alpha1.Operation) bool {
	return op.InitiatedBy != nil && op.InitiatedBy.Automated
}

// windowTarget is what the project's sync windows match an Application
// by: its name, its destination namespace, and its cluster's URL and name.
func windowTarget(app *v1alpha1.Application, dest argocd.Cluster) argocd.WindowTarget {
	return argocd.WindowTarget{Name: app.Name, Namespace: app.Spec.Destination.Namespace, Clusters: []string{dest.Server, dest.Name}}
}

// pruneStillHeld reports whether the Application's only difference from
// Git is a prune its budget holds, with no approval since: syncing again
// would hold again, so automated sync waits for a person, or for Git.
func pruneStillHeld(app *v1alpha1.Application, st engine.UnitStatus) bool {
	last := app.Status.OperationState
	if heldCondition(app) == nil || pruneApproved(app) || last == nil || last.SyncResult == nil || last.SyncResult.Revision != st.Revision {
		return false
	}
	for _, o := range st.Objects {
		if o.InGit && o.Sync != "Synced" {
			return false // something in Git needs applying
		}
	}
	return true
}

// pruneApproved reports whether a person approved the Application's held
// prune after it was held.
func pruneApproved(app *v1alpha1.Application) bool {
	c := heldCondition(app)
	if c == nil {
		return false
	}
	t, err := time.Parse(time.RFC3339, app.Annotations[plan.PruneApprovedAnnotation])
	return err == nil && t.After(c.LastTransitionTime.Time)
}

// heldCondition is the Application's PruneHeld condition, nil if none.
func heldCondition(app *v1alpha1.Application) *v1alpha1.ApplicationCondition {
	for i, c := range app.Status.Conditions {
		if c.Type == PruneHeld && c.LastTransitionTime != nil {
			return &app.Status.Conditions[i]
		}
	}
	return nil
}

func (r *ApplicationReconciler) event(app *v1alpha1.Application, typ, reason, action, note string, args ...any) {
	if r.Recorder != nil {
		r.Recorder.Eventf(app, nil, typ, reason, action, "%s", redact.Message(fmt.Sprintf(note, args...)))
	}
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// retryAfter backs off after failures, by the Application's retry policy
// or else 5s, 10s, 20s ... up to 3 minutes.
func (r *ApplicationReconciler) retryAfter(app *v1alpha1.Application) time.Duration {
	n := int64(0)
	if s := app.Status.OperationState; s != nil {
		n = s.RetryCount
	}
	retry, ok := argocd.RetryPolicy(app)
	if !ok {
		retry = argocd.Retry{Duration: 5 * time.Second, MaxDuration: 3 * time.Minute, Factor: 2}
	}
	return retry.Backoff(n)
}

// checkKinds applies the project's resource white- and blacklists to
// everything the Application would apply, hooks included.
func checkKinds(proj *v1alpha1.AppProject, st engine.UnitStatus) error {
	var refs []object.Ref
	for _, o := range st.Objects {
		if o.InGit {
			refs = append(refs, o.Ref)
		}
	}
	refs = append(refs, st.Hooks...)
	return argocd.PermitsKinds(proj, refs)
}

// projectName is the Application's project; Argo CD reads an empty one
// as "default".
func projectName(app *v1alpha1.Application) string {
	if app.Spec.Project == "" {
		return DefaultProject
	}
	return app.Spec.Project
}

// DefaultProject is the AppProject Argo CD creates for itself, and
// converge too, on first use, in the namespace of the Application that
// asks for it: it permits any source, destination and kind.
const DefaultProject = "default"

func (r *ApplicationReconciler) project(ctx context.Context, app *v1alpha1.Application) (*v1alpha1.AppProject, error) {
	name := projectName(app)
	proj := &v1alpha1.AppProject{}
	key := types.NamespacedName{Namespace: app.Namespace, Name: name}
	err := r.Client.Get(ctx, key, proj)
	if apierrors.IsNotFound(err) && name == DefaultProject {
		def := &v1alpha1.AppProject{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: app.Namespace},
			Spec: v1alpha1.AppProjectSpec{SourceRepos: []string{"*"},
				Destinations:             []v1alpha1.ApplicationDestination{{Server: "*", Namespace: "*", Name: "*"}},
				ClusterResourceWhitelist: []metav1.GroupKind{{Group: "*", Kind: "*"}}}}
		if err := r.Client.Create(ctx, def); err != nil && !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("create the default project: %w", err)
		}
		// The cache may not hold it yet; it is what was just written.
		if err := r.Client.Get(ctx, key, proj); err != nil {
			return def, nil
		}
		return proj, nil
	}
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("application references project %s which does not exist", name)
	}
	return proj, err
}

func createNamespace(ctx context.Context, c client.Client, name string) error {
	// The unit may take over the Namespace it asked for, if its Git
	// holds one too: it did not make it by hand.
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{plan.AdoptAnnotation: "true"}}}
	if err := c.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", name, err)
	}
	return nil
}

// reconciledAtRefresh is how stale status.reconciledAt may grow when
// nothing else in the status changed. Writing it on every comparison
// would make a steady-state resync cost one write per Application per
// interval; instead it moves with every real change, and at least hourly
// to show the controller is alive.
const reconciledAtRefresh = time.Hour

// writeStatus patches the status subresource when it changed, and only
// then.
func (r *ApplicationReconciler) writeStatus(ctx context.Context, orig, app *v1alpha1.Application) error {
	if prev := orig.Status.ReconciledAt; prev != nil && app.Status.ReconciledAt != nil &&
		app.Status.ReconciledAt.Sub(prev.Time) < reconciledAtRefresh {
		st := app.Status.DeepCopy()
		st.ReconciledAt = prev
		if equality.Semantic.DeepEqual(*st, orig.Status) {
			return nil
		}
	}
	if equality.Semantic.DeepEqual(app.Status, orig.Status) {
		return nil
	}
	if err := r.Client.Status().Patch(ctx, app, client.MergeFrom(orig)); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("application %s/%s: write status: %w", app.Namespace, app.Name, err)
	}
	return nil
}

// clearRefresh removes the refresh annotation once it has been honoured.
func (r *ApplicationReconciler) clearRefresh(ctx context.Context, app *v1alpha1.Application) error {
	if _, ok := app.Annotations[RefreshAnnotation]; !ok {
		return nil
	}
	patch := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"`+RefreshAnnotation+`":null}}}`))
	return r.Client.Patch(ctx, app.DeepCopy(), patch)
}

// sharedResources names the objects another unit (another Application, a
// Flux Kustomization) applied: they are left alone, and said so, as Argo
// CD's SharedResourceWarning does.
func sharedResources(st engine.UnitStatus, claimed []string) string {
	out := claimed
	for _, o := range st.Objects {
		if o.Sync == "Conflict" {
			out = append(out, fmt.Sprintf("%s was not applied: %s", o.Ref, o.Message))
		}
	}
	if len(out) == 0 {
		return ""
	}
	return "shared with another unit or made by hand: " + strings.Join(out, "; ")
}
