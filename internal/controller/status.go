package controller

import (
	"context"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"converge.dev/converge/internal/dialect/flux"
)

// patchStatus writes obj's status as a merge patch from orig, with an
// optimistic lock: a merge patch replaces whole lists, so a reconcile
// that started from a stale cached copy would erase the conditions a
// newer one wrote. On a conflict it writes nothing and asks for a
// requeue, to look again at the fresh object. A deleted object is fine.
func patchStatus(ctx context.Context, c client.Client, obj, orig client.Object) (requeue bool, err error) {
	err = c.Status().Patch(ctx, obj, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{}))
	switch {
	case apierrors.IsConflict(err):
		return true, nil
	case apierrors.IsNotFound(err):
		return false, nil
	}
	return false, err
}

// setFluxFinalizer adds (on) or removes Flux's finalizer with an
// optimistic lock, if it is not already so. A deleted object is fine.
func setFluxFinalizer(ctx context.Context, c client.Client, obj client.Object, on bool) error {
	if controllerutil.ContainsFinalizer(obj, flux.Finalizer) == on {
		return nil
	}
	patch := client.MergeFromWithOptions(obj.DeepCopyObject().(client.Object), client.MergeFromWithOptimisticLock{})
	if on {
		controllerutil.AddFinalizer(obj, flux.Finalizer)
	} else {
		controllerutil.RemoveFinalizer(obj, flux.Finalizer)
	}
	return client.IgnoreNotFound(c.Patch(ctx, obj, patch))
}
