package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	sourcev1 "converge.dev/converge/internal/api/fluxcd/source/v1"
	"converge.dev/converge/internal/dialect/flux"
	"converge.dev/converge/internal/engine"
)

// ReconcileRequestAnnotation asks Flux objects for an immediate
// reconcile, as `flux reconcile` sets it.
const ReconcileRequestAnnotation = flux.ReconcileRequestAnnotation

// GitRepositoryReconciler resolves GitRepositories and publishes the
// revision as the artifact. A failed fetch keeps the last artifact: the
// Kustomizations using it keep the last applied state.
type GitRepositoryReconciler struct {
	Client client.Client
	Engine *engine.Engine

	gate *gate
}

// SetupWithManager registers the reconciler.
func (r *GitRepositoryReconciler) SetupWithManager(mgr ctrl.Manager) error {
	b := ctrl.NewControllerManagedBy(mgr).
		For(&sourcev1.GitRepository{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		// An included repository's new artifact makes a new artifact of
		// the repositories including it.
		Watches(&sourcev1.GitRepository{}, handler.EnqueueRequestsFromMapFunc(r.byInclude))
	_, err := r.gate.build(b, &sourcev1.GitRepository{}, &sourcev1.GitRepositoryList{}, r)
	return err
}

func (r *GitRepositoryReconciler) byInclude(ctx context.Context, o client.Object) []reconcile.Request {
	var list sourcev1.GitRepositoryList
	if err := r.Client.List(ctx, &list, client.InNamespace(o.GetNamespace())); err != nil {
		return nil
	}
	var out []reconcile.Request
	for _, repo := range list.Items {
		for _, inc := range repo.Spec.Include {
			if inc.Repository.Name == o.GetName() {
				out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: repo.Namespace, Name: repo.Name}})
				break
			}
		}
	}
	return out
}

// errIncludeUnavailable is an included repository without a Ready
// artifact.
var errIncludeUnavailable = errors.New("include unavailable")

// included returns the artifacts of the repositories repo includes, in
// order; each must be Ready.
func (r *GitRepositoryReconciler) included(ctx context.Context, repo *sourcev1.GitRepository) ([]*sourcev1.Artifact, error) {
	var out []*sourcev1.Artifact
	for i, inc := range repo.Spec.Include {
		key := types.NamespacedName{Namespace: repo.Namespace, Name: inc.Repository.Name}
		if key.Name == repo.Name {
			return nil, fmt.Errorf("spec.include[%d]: a GitRepository cannot include itself", i)
		}
		dep := &sourcev1.GitRepository{}
		if err := r.Client.Get(ctx, key, dep); err != nil {
			return nil, fmt.Errorf("spec.include[%d] GitRepository %s: %w: %w", i, key, errIncludeUnavailable, err)
		}
		if dep.Status.Artifact == nil || !meta.IsStatusConditionTrue(dep.Status.Conditions, flux.ReadyCondition) {
			return nil, fmt.Errorf("spec.include[%d] GitRepository %s: %w: it has no Ready artifact", i, key, errIncludeUnavailable)
		}
		out = append(out, dep.Status.Artifact.DeepCopy())
	}
	return out, nil
}

// gitIncludes translates repo's includes for the engine, at the
// revisions repo last published in status.includedArtifacts.
func gitIncludes(ctx context.Context, c client.Client, repo *sourcev1.GitRepository) ([]engine.Include, error) {
	if len(repo.Spec.Include) == 0 {
		return nil, nil
	}
	if len(repo.Status.IncludedArtifacts) != len(repo.Spec.Include) {
		return nil, fmt.Errorf("GitRepository %s/%s has not published its includes yet", repo.Namespace, repo.Name)
	}
	out := make([]engine.Include, len(repo.Spec.Include))
	for i, inc := range repo.Spec.Include {
		key := types.NamespacedName{Namespace: repo.Namespace, Name: inc.Repository.Name}
		dep := &sourcev1.GitRepository{}
		if err := c.Get(ctx, key, dep); err != nil {
			return nil, fmt.Errorf("GitRepository %s/%s spec.include[%d] %s: %w", repo.Namespace, repo.Name, i, key, err)
		}
		auth, err := flux.GitAuth(ctx, c, dep)
		if err != nil {
			return nil, fmt.Errorf("GitRepository %s: %w", key, err)
		}
		out[i] = engine.Include{RepoURL: dep.Spec.URL, Revision: flux.CommitOf(repo.Status.IncludedArtifacts[i].Revision), Auth: auth,
			FromPath: inc.FromPath, ToPath: orDefault(inc.ToPath, inc.Repository.Name)}
	}
	return out, nil
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
	flux.MarkUnsupported(&st.Conditions, gen, flux.Unsupported(raw))

	auth, err := flux.GitAuth(ctx, r.Client, repo)
	if err == nil {
		if repo.Annotations[ReconcileRequestAnnotation] != orig.Status.LastHandledReconcileAt {
			r.Engine.Forget(repo.Spec.URL)
		}
		fctx, cancel := context.WithTimeout(ctx, flux.Interval(repo.Spec.Timeout, time.Minute))
		var commit string
		commit, err = r.Engine.Resolve(fctx, repo.Spec.URL, flux.Revision(repo.Spec.Ref), auth)
		cancel()
		var included []*sourcev1.Artifact
		if err == nil {
			included, err = r.included(ctx, repo)
		}
		if err == nil {
			rev := flux.ArtifactRevision(repo.Spec.Ref, commit)
			digest := "sha1:" + commit
			if len(included) > 0 {
				// Flux keeps the revision and changes the digest when an
				// included artifact moves; consumers are woken by it.
				h := sha256.New()
				h.Write([]byte(commit))
				for _, a := range included {
					h.Write([]byte("\x00" + a.Revision))
				}
				digest = "sha256:" + hex.EncodeToString(h.Sum(nil))
			}
			if st.Artifact == nil || st.Artifact.Revision != rev || st.Artifact.Digest != digest {
				st.Artifact = &sourcev1.Artifact{Revision: rev, Digest: digest,
					Path:           fmt.Sprintf("gitrepository/%s/%s/%s.tar.gz", repo.Namespace, repo.Name, commit),
					URL:            fmt.Sprintf("converge://gitrepository/%s/%s/%s", repo.Namespace, repo.Name, commit),
					LastUpdateTime: metav1.Now()}
			}
			st.IncludedArtifacts = included
			meta.RemoveStatusCondition(&st.Conditions, "IncludeUnavailable")
			flux.MarkReady(&st.Conditions, gen, flux.SucceededReason, "stored artifact for revision '"+rev+"'")
			st.ObservedGeneration = gen
		}
	}
	if err != nil {
		// The last artifact stays: consumers keep applying it.
		reason := flux.GitOperationFailedReason
		if errors.Is(err, errIncludeUnavailable) {
			reason = "IncludeUnavailable"
			flux.SetCondition(&st.Conditions, gen, "IncludeUnavailable", metav1.ConditionTrue, "IncludeUnavailable", err.Error())
		}
		flux.MarkFailed(&st.Conditions, gen, reason, err.Error(), false)
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
