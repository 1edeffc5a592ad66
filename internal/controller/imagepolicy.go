package controller

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	imagev1 "converge.dev/converge/internal/api/fluxcd/image/v1"
	"converge.dev/converge/internal/dialect/flux"
	"converge.dev/converge/internal/engine"
	"converge.dev/converge/internal/imagepolicy"
	"converge.dev/converge/internal/source/oci"
)

// ImagePolicyReconciler picks the latest image of an ImageRepository's
// scan and, if asked, reads its digest.
type ImagePolicyReconciler struct {
	Client client.Client
	Engine *engine.Engine

	tags *imageTags
	gate *gate
}

// SetupWithManager registers the reconciler. A repository's new scan
// (its status) wakes its policies.
func (r *ImagePolicyReconciler) SetupWithManager(mgr ctrl.Manager) error {
	b := ctrl.NewControllerManagedBy(mgr).
		For(&imagev1.ImagePolicy{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Watches(&imagev1.ImageRepository{}, handler.EnqueueRequestsFromMapFunc(r.byRepository))
	_, err := r.gate.build(b, &imagev1.ImagePolicy{}, &imagev1.ImagePolicyList{}, r)
	return err
}

func (r *ImagePolicyReconciler) byRepository(ctx context.Context, o client.Object) []reconcile.Request {
	var list imagev1.ImagePolicyList
	if err := r.Client.List(ctx, &list); err != nil {
		return nil
	}
	var out []reconcile.Request
	for _, p := range list.Items {
		if repositoryOf(&p) == (types.NamespacedName{Namespace: o.GetNamespace(), Name: o.GetName()}) {
			out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: p.Namespace, Name: p.Name}})
		}
	}
	return out
}

func repositoryOf(p *imagev1.ImagePolicy) types.NamespacedName {
	ns := p.Spec.ImageRepositoryRef.Namespace
	if ns == "" {
		ns = p.Namespace
	}
	return types.NamespacedName{Namespace: ns, Name: p.Spec.ImageRepositoryRef.Name}
}

// errPolicy is a spec the policy cannot pick with: it stays failed until
// the spec changes.
var errPolicy = errors.New("invalid policy")

// Reconcile picks one ImagePolicy's image.
func (r *ImagePolicyReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	pol := &imagev1.ImagePolicy{}
	unsupported, err := getFlux(ctx, r.Client, req.NamespacedName, pol)
	if err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if pol.Spec.Suspend {
		return ctrl.Result{}, nil
	}
	orig := pol.DeepCopy()
	st := &pol.Status
	gen := pol.Generation
	st.LastHandledReconcileAt = pol.Annotations[ReconcileRequestAnnotation]
	flux.MarkUnsupported(&st.Conditions, gen, unsupported)

	ref, reason, err := r.pick(ctx, pol)
	var wait bool
	switch {
	case err == nil:
		if st.LatestRef != nil && (st.LatestRef.Tag != ref.Tag || st.LatestRef.Name != ref.Name) {
			st.ObservedPreviousRef = st.LatestRef
		}
		st.LatestRef = ref
		flux.MarkReady(&st.Conditions, gen, flux.SucceededReason, "Latest image tag for "+ref.Name+" resolved to "+ref.Tag)
	case reason == "DependencyNotReady":
		wait = true
		flux.MarkFailed(&st.Conditions, gen, reason, err.Error(), false)
	default:
		// The last pick stays: automations keep it.
		flux.MarkFailed(&st.Conditions, gen, reason, err.Error(), errors.Is(err, errPolicy))
	}
	st.ObservedGeneration = gen
	if !equality.Semantic.DeepEqual(orig.Status, pol.Status) {
		if requeue, perr := patchStatus(ctx, r.Client, pol, orig); perr != nil || requeue {
			return ctrl.Result{Requeue: requeue}, perr
		}
	}
	switch {
	case wait:
		return ctrl.Result{RequeueAfter: 10 * time.Second}, nil
	case err != nil && !errors.Is(err, errPolicy):
		return ctrl.Result{RequeueAfter: 30 * time.Second}, nil
	case err == nil && pol.Spec.DigestReflectionPolicy == imagev1.ReflectAlways:
		// Only a re-read finds a tag pushed again with a new image.
		return resync(flux.Interval(pol.Spec.Interval, 10*time.Minute)), nil
	}
	return ctrl.Result{}, nil
}

// pick is the policy's latest image: the tag from the repository's
// last scan and, if reflected, its digest.
func (r *ImagePolicyReconciler) pick(ctx context.Context, pol *imagev1.ImagePolicy) (*imagev1.ImageRef, string, error) {
	p := imagepolicy.Policy{}
	switch c := pol.Spec.Policy; {
	case c.SemVer != nil:
		p.SemVer = c.SemVer.Range
	case c.Alphabetical != nil:
		p.Alphabetical = &c.Alphabetical.Order
	case c.Numerical != nil:
		p.Numerical = &c.Numerical.Order
	default:
		return nil, "InvalidPolicy", fmt.Errorf("%w: spec.policy: want one of semver, alphabetical or numerical", errPolicy)
	}
	if f := pol.Spec.FilterTags; f != nil {
		p.Pattern, p.Extract = f.Pattern, f.Extract
	}
	switch pol.Spec.DigestReflectionPolicy {
	case "", imagev1.ReflectNever, imagev1.ReflectIfNotPresent:
	case imagev1.ReflectAlways:
		if pol.Spec.Interval == nil {
			return nil, "InvalidPolicy", fmt.Errorf("%w: spec.interval must be set when spec.digestReflectionPolicy is Always", errPolicy)
		}
	default:
		return nil, "InvalidPolicy", fmt.Errorf("%w: spec.digestReflectionPolicy %q: want Always, IfNotPresent or Never", errPolicy, pol.Spec.DigestReflectionPolicy)
	}
	key := repositoryOf(pol)
	repo := &imagev1.ImageRepository{}
	if err := r.Client.Get(ctx, key, repo); err != nil {
		return nil, "DependencyNotReady", fmt.Errorf("spec.imageRepositoryRef: ImageRepository %s: %w", key, err)
	}
	sc, ok := r.tags.get(key)
	if last := repo.Status.LastScanResult; !ok || last != nil && last.Revision != sc.revision {
		if !meta.IsStatusConditionTrue(repo.Status.Conditions, flux.ReadyCondition) && last == nil {
			return nil, "DependencyNotReady", fmt.Errorf("ImageRepository %s has not been scanned yet", key)
		}
		tags, _, _, err := scanTags(ctx, r.Client, repo)
		if err != nil {
			return nil, "DependencyNotReady", fmt.Errorf("ImageRepository %s: %w", key, err)
		}
		sc = scan{revision: tagsRevision(tags), tags: tags}
		r.tags.set(key, sc)
	}
	tag, err := p.Latest(sc.tags)
	if err != nil {
		if errors.Is(err, imagepolicy.ErrNoCandidate) {
			return nil, "ReconciliationFailed", fmt.Errorf("ImageRepository %s (%d tags): %w", key, len(sc.tags), err)
		}
		return nil, "InvalidPolicy", fmt.Errorf("%w: %w", errPolicy, err)
	}
	ref := &imagev1.ImageRef{Name: repo.Spec.Image, Tag: tag}
	switch pol.Spec.DigestReflectionPolicy {
	case imagev1.ReflectIfNotPresent:
		if last := pol.Status.LatestRef; last != nil && last.Name == ref.Name && last.Tag == tag && last.Digest != "" {
			ref.Digest = last.Digest
			break
		}
		fallthrough
	case imagev1.ReflectAlways:
		auth, err := imageAuth(ctx, r.Client, repo)
		if err != nil {
			return nil, "AuthenticationFailed", fmt.Errorf("ImageRepository %s: %w", key, err)
		}
		dctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		_, d, err := r.Engine.ResolveOCI(dctx, "oci://"+repo.Spec.Image, oci.Ref{Tag: tag}, auth)
		if err != nil {
			return nil, "DigestFailed", fmt.Errorf("digest of %s:%s: %w", repo.Spec.Image, tag, err)
		}
		ref.Digest = d
	}
	return ref, "", nil
}
