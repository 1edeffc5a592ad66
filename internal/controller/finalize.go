package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
	"converge.dev/converge/internal/dialect/argocd"
	"converge.dev/converge/internal/engine"
	"converge.dev/converge/internal/plan"
)

// ResourcesFinalizer is Argo CD's cascading-deletion finalizer. Its
// background and foreground variants mean the same to converge: the
// Application goes once its objects are gone.
const ResourcesFinalizer = "resources-finalizer.argocd.argoproj.io"

// DeletionApprovedAnnotation approves pruning (Prune=confirm) and
// deleting (Delete=confirm) objects created before its timestamp.
const DeletionApprovedAnnotation = "argocd.argoproj.io/deletion-approved"

// deletionApproved parses the approval; a missing or unreadable one
// approves nothing.
func deletionApproved(app *v1alpha1.Application) time.Time {
	v := app.Annotations[DeletionApprovedAnnotation]
	for _, layout := range []string{time.RFC3339Nano, time.RFC3339} {
		if t, err := time.Parse(layout, v); err == nil {
			return t
		}
	}
	return time.Time{}
}

func isResourcesFinalizer(f string) bool {
	return f == ResourcesFinalizer || strings.HasPrefix(f, ResourcesFinalizer+"/")
}

// finalize runs a deleted Application's cascading deletion when it holds
// the resources finalizer, then releases the finalizer. Without it the
// objects stay, as in Argo CD, and converge has nothing to do.
func (r *ApplicationReconciler) finalize(ctx context.Context, orig, app *v1alpha1.Application, now time.Time) (ctrl.Result, error) {
	var keep []string
	found := false
	for _, f := range app.Finalizers {
		if isResourcesFinalizer(f) {
			found = true
			continue
		}
		keep = append(keep, f)
	}
	if !found {
		return ctrl.Result{}, nil
	}
	dest, err := r.clusterFor(ctx, app)
	if err != nil {
		// Its objects are in a cluster converge cannot reach: nothing is
		// deleted, and the finalizer stays until the cluster is
		// registered again, or a person removes it.
		argocd.SetCondition(app, "DeletionError", fmt.Sprintf("%v (to let the Application go without deleting its objects, remove the finalizer %s)", err, ResourcesFinalizer), now)
		if werr := r.writeStatus(ctx, orig, app); werr != nil {
			return ctrl.Result{}, werr
		}
		return ctrl.Result{RequeueAfter: r.retryAfter(app)}, nil
	}
	eng := dest.engine
	dctx, cancel := context.WithTimeout(ctx, syncTimeout)
	defer cancel()
	// PreDelete hooks run before anything is deleted, PostDelete hooks
	// once everything is gone, as in Argo CD, from the revision last
	// synced. A hook that fails, or cannot be rendered, holds the
	// deletion: a backup Job must not be skipped silently.
	unit, _, uerr := argocd.ToUnit(app)
	if uerr == nil && app.Status.Sync.Revision != "" {
		unit.Revision = app.Status.Sync.Revision
	}
	hookErr := func(ph plan.Phase, err error) (ctrl.Result, error) {
		argocd.SetCondition(app, "DeletionError", fmt.Sprintf("%v (to delete without the %s hooks, remove the finalizer %s)", err, ph, ResourcesFinalizer), now)
		r.event(app, corev1.EventTypeWarning, "DeletionHookFailed", "Delete", "%s hooks: %v", ph, err)
		if werr := r.writeStatus(ctx, orig, app); werr != nil {
			return ctrl.Result{}, werr
		}
		return ctrl.Result{RequeueAfter: r.retryAfter(app)}, nil
	}
	if uerr == nil {
		if _, err := eng.RunDeletionHooks(dctx, unit, plan.PreDelete); err != nil {
			return hookErr(plan.PreDelete, err)
		}
	}
	rep, err := eng.Delete(dctx, argocd.UnitName(app), engine.DeleteOptions{Approved: deletionApproved(app)})
	if err == nil && uerr == nil {
		if _, herr := eng.RunDeletionHooks(dctx, unit, plan.PostDelete); herr != nil {
			return hookErr(plan.PostDelete, herr)
		}
	}
	if err != nil {
		argocd.SetCondition(app, "DeletionError", err.Error(), now)
		if werr := r.writeStatus(ctx, orig, app); werr != nil {
			return ctrl.Result{}, werr
		}
		if errors.Is(err, engine.ErrAwaitingApproval) {
			r.event(app, corev1.EventTypeNormal, "DeletionAwaitingApproval", "Delete",
				"Deletion waits for approval (annotation %s): %v", DeletionApprovedAnnotation, err)
			return ctrl.Result{}, nil // the approval annotation wakes it
		}
		return ctrl.Result{RequeueAfter: r.retryAfter(app)}, nil
	}
	for _, k := range rep.Kept {
		r.event(app, corev1.EventTypeNormal, "ResourceKept", "Delete", "%s kept: %s", k.Ref, k.Reason)
	}
	r.event(app, corev1.EventTypeNormal, "ResourceDeleted", "Delete", "Deleted %d objects", len(rep.Deleted))
	// Merge patch of the whole list, guarded by resourceVersion, so a
	// finalizer someone added meanwhile is never dropped.
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"finalizers": keep, "resourceVersion": app.ResourceVersion}})
	if err := r.Client.Patch(ctx, app, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return ctrl.Result{}, fmt.Errorf("application %s/%s: release finalizer: %w", app.Namespace, app.Name, client.IgnoreNotFound(err))
	}
	deleteAppInfo(app.Namespace, app.Name)
	return ctrl.Result{}, nil
}
