package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
	"converge.dev/converge/internal/apply"
	"converge.dev/converge/internal/dialect/argocd"
	"converge.dev/converge/internal/engine"
	"converge.dev/converge/internal/redact"
)

// wantSync decides, as Argo CD does: an operation always syncs; automated
// sync runs when Git moved to a revision not yet synced, or, with
// selfHeal, whenever the live state drifted.
func (r *ApplicationReconciler) wantSync(app *v1alpha1.Application, opts argocd.Options, st engine.UnitStatus) (v1alpha1.Operation, bool) {
	if app.Operation != nil && app.Operation.Sync != nil {
		return *app.Operation, true
	}
	if last := app.Status.OperationState; last != nil && last.Phase == "Running" && last.Operation.Sync != nil {
		// A sync in steps (or one a restart cut short) goes on until it
		// ends, whatever the comparison says in between: its last wave
		// may be applied, and so in sync, but not healthy yet.
		return last.Operation, true
	}
	if st.RevertNow() && !pruneStillHeld(app, st) && !revertBackingOff(app, st, r.retryAfter(app)) {
		// A forbid rule (or a policy whose default is revert) takes drift
		// back at once, even without automated sync or selfHeal. The
		// revision is the one applied last, so nothing new is deployed.
		return v1alpha1.Operation{Sync: &v1alpha1.SyncOperation{Revision: st.Revision, Prune: opts.Automated && opts.Sync.Prune},
			InitiatedBy: &v1alpha1.InitiatedBy{Automated: true}}, true
	}
	if !opts.Automated || st.Synced || pruneStillHeld(app, st) {
		return v1alpha1.Operation{}, false
	}
	op := v1alpha1.Operation{Sync: &v1alpha1.SyncOperation{Revision: st.Revision, Prune: opts.Sync.Prune},
		InitiatedBy: &v1alpha1.InitiatedBy{Automated: true}}
	last := app.Status.OperationState
	if last != nil && last.Phase == "Failed" && last.SyncResult != nil && last.SyncResult.Revision == st.Revision {
		// This revision failed before. Argo CD does not retry it without a
		// retry policy; converge also keeps trying under selfHeal, with
		// the default backoff, since selfHeal asks for convergence.
		retry, ok := argocd.RetryPolicy(app)
		switch {
		case ok && !retry.Allows(last.RetryCount):
			return op, false
		case !ok && !opts.SelfHeal:
			return op, false
		}
		if last.FinishedAt != nil && time.Since(last.FinishedAt.Time) < r.retryAfter(app) {
			return op, false // the requeue brings it back when the backoff ends
		}
		return op, true
	}
	if opts.SelfHeal || last == nil || last.SyncResult == nil || last.SyncResult.Revision != st.Revision || pruneApproved(app) {
		return op, true
	}
	return op, false
}

// sync runs one sync operation. While it runs, the operation state on
// the server says Running and what it waits for, as Argo CD shows it;
// orig is kept equal to what the server holds, so the final status
// write replaces the running state.
func (r *ApplicationReconciler) sync(ctx context.Context, dest appCluster, orig, app *v1alpha1.Application, unit engine.Unit, opts argocd.Options, op v1alpha1.Operation, now time.Time) (engine.UnitStatus, error) {
	so := opts.Sync
	if op.Sync != nil {
		so.Prune = so.Prune || op.Sync.Prune
		so.DryRun = op.Sync.DryRun
	}
	so.PruneApproved = deletionApproved(app)
	if opts.CreateNamespace && unit.DestNamespace != "" {
		if err := createNamespace(ctx, dest.client, unit.DestNamespace); err != nil {
			argocd.SetCondition(app, "SyncError", err.Error(), now)
			return engine.UnitStatus{}, err
		}
	}
	// A sync without hooks runs in steps: each reconcile applies the
	// waves that are ready and returns while one rolls out, so no worker
	// waits on it. Only a sync with hooks still waits in one reconcile,
	// bounded by syncTimeout.
	so.Step = !so.DryRun
	sctx, cancel := context.WithTimeout(ctx, syncTimeout)
	defer cancel()
	started := now
	prev := app.Status.OperationState
	continuing := prev != nil && prev.Phase == "Running"
	if continuing {
		started = prev.StartedAt.Time
	} else {
		r.event(app, corev1.EventTypeNormal, "OperationStarted", "Sync", "Initiated sync to %s", orDefault(op.Sync.Revision, "HEAD"))
	}
	var running *runningSync
	if !so.DryRun {
		running = &runningSync{r: r, orig: orig, app: app, op: op, started: started}
		if !continuing {
			// Said only of a sync still going after a moment: most end
			// sooner, and the write was one of every sync's requests.
			running.after(ctx, runningAfter, "sync is running: rendering, validating and applying")
		}
		so.Waiting = func(what string) { running.write(ctx, "waiting for healthy state of "+what) }
	}
	rep, err := dest.engine.Sync(sctx, unit, so)
	if running != nil {
		running.stop()
	}
	argocd.RecordSync(app, op, rep, started, err, time.Now())
	if continuing && prev.SyncResult != nil && app.Status.OperationState.SyncResult != nil {
		// The steps before this one applied the rest.
		res := app.Status.OperationState.SyncResult
		res.Resources = append(append([]v1alpha1.ResourceResult(nil), prev.SyncResult.Resources...), res.Resources...)
	}
	if errors.Is(err, apply.ErrInProgress) {
		state := app.Status.OperationState
		state.Phase, state.FinishedAt, state.RetryCount = "Running", nil, 0
		state.Message = redact.Message(strings.TrimPrefix(err.Error(), "unit "+unit.Name+": sync: "))
		if prev != nil {
			state.RetryCount = prev.RetryCount
		}
		return engine.UnitStatus{}, err
	}
	phase := app.Status.OperationState.Phase
	observeSync(app.Namespace, app.Name, phase, time.Since(now))
	if err != nil {
		r.event(app, corev1.EventTypeWarning, "OperationCompleted", "Sync", "Sync operation to %.12s failed: %v", rep.Revision, err)
	} else {
		r.event(app, corev1.EventTypeNormal, "OperationCompleted", "Sync", "Sync operation to %.12s succeeded: %d changes", rep.Revision, len(rep.Events))
	}
	if err != nil {
		argocd.SetCondition(app, "SyncError", err.Error(), now)
		return engine.UnitStatus{}, err
	}
	argocd.SetCondition(app, "SyncError", "", now)
	for _, f := range r.fights.Took(unit.Name, rep.Drift, unit.Drift.Fight, time.Now()) {
		r.event(app, corev1.EventTypeWarning, FieldFightCondition, "Sync", "%s", f)
	}
	held := ""
	if rep.Plan.Held != nil {
		held = rep.Plan.Held.Message(unit.Path)
		r.event(app, corev1.EventTypeWarning, PruneHeld, "Sync", "%s", held)
	}
	argocd.SetCondition(app, PruneHeld, held, now)
	if app.Operation != nil {
		patch := client.RawPatch(types.MergePatchType, []byte(`{"operation":null}`))
		if err := r.Client.Patch(ctx, app.DeepCopy(), patch); err != nil {
			return engine.UnitStatus{}, fmt.Errorf("clear operation: %w", err)
		}
	}
	st, err := dest.engine.Status(ctx, unit)
	if err != nil {
		argocd.SetCondition(app, "ComparisonError", err.Error(), now)
	}
	return st, err
}

// specChanged reports whether the Application's spec on the server is
// newer than app's: one GET of its metadata, made only before an
// automated sync.
func (r *ApplicationReconciler) specChanged(ctx context.Context, app *v1alpha1.Application) bool {
	reader := r.Reader
	if reader == nil {
		reader = r.Client
	}
	meta := &metav1.PartialObjectMetadata{}
	meta.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind("Application"))
	if err := reader.Get(ctx, types.NamespacedName{Namespace: app.Namespace, Name: app.Name}, meta); err != nil {
		return false // the sync's own reads will say what is wrong
	}
	return meta.Generation != app.Generation
}

// conditionMessage is the message of the Application's condition typ,
// or "".
func conditionMessage(app *v1alpha1.Application, typ string) string {
	for _, c := range app.Status.Conditions {
		if c.Type == typ {
			return c.Message
		}
	}
	return ""
}

// runningAfter is how long a sync runs before its operation state says
// Running.
const runningAfter = time.Second

// runningSync writes the Running operation state of a sync in progress,
// when its message changes, at most every two seconds, and never once
// the sync has ended (stop).
type runningSync struct {
	r         *ApplicationReconciler
	orig, app *v1alpha1.Application
	op        v1alpha1.Operation
	started   time.Time

	mu      sync.Mutex // a timer writes while the sync runs
	done    bool
	timer   *time.Timer
	last    time.Time
	lastMsg string
}

// after writes msg in d unless the sync has ended by then.
func (s *runningSync) after(ctx context.Context, d time.Duration, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.timer = time.AfterFunc(d, func() { s.write(ctx, msg) })
}

// stop ends the writes; a write under way is waited for, so orig holds
// what the server holds when the final status is written.
func (s *runningSync) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.done = true
	if s.timer != nil {
		s.timer.Stop()
	}
}

func (s *runningSync) write(ctx context.Context, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done || msg == s.lastMsg || time.Since(s.last) < 2*time.Second {
		return
	}
	s.last, s.lastMsg = time.Now(), msg
	from := s.orig.DeepCopy()
	to := from.DeepCopy()
	to.Status.OperationState = &v1alpha1.OperationState{Operation: s.op, Phase: "Running", Message: redact.Message(msg),
		StartedAt: metav1.NewTime(s.started)}
	if prev := s.app.Status.OperationState; prev != nil {
		to.Status.OperationState.RetryCount = prev.RetryCount
	}
	if err := s.r.Client.Status().Patch(ctx, to, client.MergeFrom(from)); err != nil {
		return // progress only: the final write still says how it ended
	}
	s.orig.Status.OperationState = to.Status.OperationState.DeepCopy()
}

// revertBackingOff: a revert of this revision failed a moment ago; the
// requeue brings it back when the backoff ends, rather than at once.
func revertBackingOff(app *v1alpha1.Application, st engine.UnitStatus, backoff time.Duration) bool {
	last := app.Status.OperationState
	return last != nil && last.Phase == "Failed" && last.SyncResult != nil && last.SyncResult.Revision == st.Revision &&
		last.FinishedAt != nil && time.Since(last.FinishedAt.Time) < backoff
}
