package controller

import (
	"context"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
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
