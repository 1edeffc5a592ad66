package controller

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	sourcev1 "converge.dev/converge/internal/api/fluxcd/source/v1"
	"converge.dev/converge/internal/dialect/flux"
	"converge.dev/converge/internal/engine"
	"converge.dev/converge/internal/source/git"
)

// ReconcileRequestAnnotation asks Flux objects for an immediate
// reconcile, as `flux reconcile` sets it.
const ReconcileRequestAnnotation = "reconcile.fluxcd.io/requestedAt"

// GitRepositoryReconciler resolves GitRepositories and publishes the
// revision as the artifact. A failed fetch keeps the last artifact: the
// Kustomizations using it keep the last applied state.
type GitRepositoryReconciler struct {
	Client client.Client
	Engine *engine.Engine
}

// SetupWithManager registers the reconciler.
func (r *GitRepositoryReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&sourcev1.GitRepository{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Complete(r)
}

// Reconcile resolves one GitRepository.
func (r *GitRepositoryReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	raw := &unstructured.Unstructured{}
	raw.SetGroupVersionKind(sourcev1.GroupVersion.WithKind("GitRepository"))
	if err := r.Client.Get(ctx, req.NamespacedName, raw); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	repo := &sourcev1.GitRepository{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(raw.Object, repo); err != nil {
		return ctrl.Result{}, fmt.Errorf("gitrepository %s: %w", req.NamespacedName, err)
	}
	if repo.Spec.Suspend {
		return ctrl.Result{}, nil
	}
	orig := repo.DeepCopy()
	gen := repo.Generation
	st := &repo.Status
	interval := flux.Interval(&repo.Spec.Interval, time.Minute)
	st.LastHandledReconcileAt = repo.Annotations[ReconcileRequestAnnotation]
	if fields := flux.Unsupported(raw); len(fields) > 0 {
		flux.SetCondition(&st.Conditions, gen, "UnsupportedFields", metav1.ConditionTrue, "NotSupported",
			"fields not supported by converge, ignored: "+strings.Join(fields, ", "))
	} else {
		meta.RemoveStatusCondition(&st.Conditions, "UnsupportedFields")
	}

	auth, err := gitAuth(ctx, r.Client, repo)
	if err == nil {
		if repo.Annotations[ReconcileRequestAnnotation] != orig.Status.LastHandledReconcileAt {
			r.Engine.Forget(repo.Spec.URL)
		}
		fctx, cancel := context.WithTimeout(ctx, flux.Interval(repo.Spec.Timeout, time.Minute))
		var commit string
		commit, err = r.Engine.Resolve(fctx, repo.Spec.URL, flux.Revision(repo.Spec.Ref), auth)
		cancel()
		if err == nil {
			rev := flux.ArtifactRevision(repo.Spec.Ref, commit)
			if st.Artifact == nil || st.Artifact.Revision != rev {
				st.Artifact = &sourcev1.Artifact{Revision: rev, Digest: "sha1:" + commit,
					Path:           fmt.Sprintf("gitrepository/%s/%s/%s.tar.gz", repo.Namespace, repo.Name, commit),
					URL:            fmt.Sprintf("converge://gitrepository/%s/%s/%s", repo.Namespace, repo.Name, commit),
					LastUpdateTime: metav1.Now()}
			}
			flux.MarkReady(&st.Conditions, gen, flux.SucceededReason, "stored artifact for revision '"+rev+"'")
			st.ObservedGeneration = gen
		}
	}
	if err != nil {
		// The last artifact stays: consumers keep applying it.
		flux.MarkFailed(&st.Conditions, gen, flux.GitOperationFailedReason, err.Error(), false)
		st.ObservedGeneration = gen
	}
	if !equality.Semantic.DeepEqual(orig.Status, repo.Status) {
		if requeue, perr := patchStatus(ctx, r.Client, repo, orig); perr != nil || requeue {
			return ctrl.Result{Requeue: requeue}, perr
		}
	}
	if err != nil {
		return ctrl.Result{RequeueAfter: min(interval, 30*time.Second)}, nil
	}
	return ctrl.Result{RequeueAfter: interval}, nil
}

// gitAuth reads credentials from spec.secretRef, as Flux names the keys.
func gitAuth(ctx context.Context, c client.Client, repo *sourcev1.GitRepository) (git.Auth, error) {
	if repo.Spec.SecretRef == nil {
		return git.Auth{}, nil
	}
	sec := &corev1.Secret{}
	key := types.NamespacedName{Namespace: repo.Namespace, Name: repo.Spec.SecretRef.Name}
	if err := c.Get(ctx, key, sec); err != nil {
		return git.Auth{}, fmt.Errorf("secretRef %s: %w", key, err)
	}
	d := sec.Data
	return git.Auth{Username: string(d["username"]), Password: string(d["password"]), BearerToken: string(d["bearerToken"]),
		SSHKey: d["identity"], KnownHosts: d["known_hosts"]}, nil
}
