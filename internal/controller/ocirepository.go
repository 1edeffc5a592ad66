package controller

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	sourcev1 "converge.dev/converge/internal/api/fluxcd/source/v1"
	"converge.dev/converge/internal/dialect/flux"
	"converge.dev/converge/internal/engine"
	"converge.dev/converge/internal/redact"
	"converge.dev/converge/internal/source/oci"
)

// OCIRepositoryReconciler resolves OCIRepositories and publishes the
// artifact's digest; like GitRepository, a failure keeps the last one.
type OCIRepositoryReconciler struct {
	Client client.Client
	Engine *engine.Engine

	gate *gate
}

// SetupWithManager registers the reconciler.
func (r *OCIRepositoryReconciler) SetupWithManager(mgr ctrl.Manager) error {
	b := ctrl.NewControllerManagedBy(mgr).
		For(&sourcev1.OCIRepository{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{})))
	_, err := r.gate.build(b, &sourcev1.OCIRepository{}, &sourcev1.OCIRepositoryList{}, r)
	return err
}

// Reconcile resolves one OCIRepository.
func (r *OCIRepositoryReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	repo := &sourcev1.OCIRepository{}
	if err := r.Client.Get(ctx, req.NamespacedName, repo); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if repo.Spec.Suspend {
		return ctrl.Result{}, nil
	}
	orig := repo.DeepCopy()
	st := &repo.Status
	interval := flux.Interval(&repo.Spec.Interval, 5*time.Minute)
	auth, err := r.auth(ctx, repo)
	if err == nil {
		var ref oci.Ref
		if p := repo.Spec.Ref; p != nil {
			ref = oci.Ref{Tag: p.Tag, SemVer: p.SemVer, Digest: p.Digest}
		}
		fctx, cancel := context.WithTimeout(ctx, time.Minute)
		var tag, digest string
		tag, digest, err = r.Engine.ResolveOCI(fctx, repo.Spec.URL, ref, auth)
		cancel()
		if err == nil {
			rev := digest
			if tag != "" {
				rev = tag + "@" + digest
			}
			if st.Artifact == nil || st.Artifact.Revision != rev {
				st.Artifact = &sourcev1.Artifact{Revision: rev, Digest: digest, LastUpdateTime: metav1.Now(),
					Path: fmt.Sprintf("ocirepository/%s/%s/%s.tar.gz", repo.Namespace, repo.Name, digest), URL: redact.URL(repo.Spec.URL)}
			}
			st.URL = redact.URL(repo.Spec.URL)
			flux.MarkReady(&st.Conditions, repo.Generation, flux.SucceededReason, "stored artifact for digest '"+rev+"'")
		}
	}
	if err != nil {
		flux.MarkFailed(&st.Conditions, repo.Generation, "OCIPullFailed", err.Error(), false)
	}
	st.ObservedGeneration = repo.Generation
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

func (r *OCIRepositoryReconciler) auth(ctx context.Context, repo *sourcev1.OCIRepository) (oci.Auth, error) {
	return ociAuth(ctx, r.Client, repo)
}

// ociAuth reads an OCIRepository's credentials (username and password
// keys of its secretRef).
func ociAuth(ctx context.Context, c client.Client, repo *sourcev1.OCIRepository) (oci.Auth, error) {
	a := oci.Auth{Insecure: repo.Spec.Insecure}
	var err error
	a.Username, a.Password, err = secretCredentials(ctx, c, repo.Namespace, repo.Spec.SecretRef)
	return a, err
}
