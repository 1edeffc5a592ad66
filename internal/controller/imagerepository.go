package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	imagev1 "converge.dev/converge/internal/api/fluxcd/image/v1"
	"converge.dev/converge/internal/dialect/flux"
	"converge.dev/converge/internal/source/oci"
)

// defaultExclusions leaves cosign's signature tags out, as Flux does when
// spec.exclusionList is empty.
var defaultExclusions = []string{`^.*\.sig$`}

// imageTags holds each ImageRepository's last scan in memory, for its
// ImagePolicies, as Flux's reflector keeps them in its database. A
// policy that finds no scan, or an older one than its repository's
// status reports (after a restart, or when another replica holds the
// repository's shard), scans itself.
type imageTags struct {
	mu   sync.RWMutex
	tags map[types.NamespacedName]scan
}

type scan struct {
	revision string
	tags     []string
}

func (s *imageTags) get(key types.NamespacedName) (scan, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	sc, ok := s.tags[key]
	return sc, ok
}

func (s *imageTags) set(key types.NamespacedName, sc scan) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tags == nil {
		s.tags = map[types.NamespacedName]scan{}
	}
	s.tags[key] = sc
}

// ImageRepositoryReconciler lists an image repository's tags.
type ImageRepositoryReconciler struct {
	Client client.Client

	tags *imageTags
	gate *gate
}

// SetupWithManager registers the reconciler.
func (r *ImageRepositoryReconciler) SetupWithManager(mgr ctrl.Manager) error {
	b := ctrl.NewControllerManagedBy(mgr).
		For(&imagev1.ImageRepository{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{})))
	_, err := r.gate.build(b, &imagev1.ImageRepository{}, &imagev1.ImageRepositoryList{}, r)
	return err
}

// Reconcile scans one ImageRepository. A failed scan keeps the last tags:
// its policies keep their picks.
func (r *ImageRepositoryReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	repo := &imagev1.ImageRepository{}
	unsupported, err := getFlux(ctx, r.Client, req.NamespacedName, repo)
	if err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if repo.Spec.Suspend {
		return ctrl.Result{}, nil
	}
	orig := repo.DeepCopy()
	st := &repo.Status
	gen := repo.Generation
	interval := flux.Interval(&repo.Spec.Interval, 5*time.Minute)
	st.LastHandledReconcileAt = repo.Annotations[ReconcileRequestAnnotation]
	flux.MarkUnsupported(&st.Conditions, gen, unsupported)

	tags, canonical, reason, err := scanTags(ctx, r.Client, repo)
	if err == nil {
		sc := scan{revision: tagsRevision(tags), tags: tags}
		r.tags.set(req.NamespacedName, sc)
		st.CanonicalImageName = canonical
		st.ObservedExclusionList = exclusions(repo)
		// The scan time moves only with the tags: a resync that finds the
		// same tags writes nothing.
		if st.LastScanResult == nil || st.LastScanResult.Revision != sc.revision {
			st.LastScanResult = &imagev1.ScanResult{Revision: sc.revision, TagCount: len(tags), ScanTime: metav1.Now(), LatestTags: latestTags(tags)}
		}
		flux.MarkReady(&st.Conditions, gen, flux.SucceededReason, fmt.Sprintf("successful scan: found %d tags", len(tags)))
	} else {
		flux.MarkFailed(&st.Conditions, gen, reason, err.Error(), reason == "InvalidExclusionList" || reason == "InvalidImage")
	}
	st.ObservedGeneration = gen
	if !equality.Semantic.DeepEqual(orig.Status, repo.Status) {
		if requeue, perr := patchStatus(ctx, r.Client, repo, orig); perr != nil || requeue {
			return ctrl.Result{Requeue: requeue}, perr
		}
	}
	if err != nil {
		return ctrl.Result{RequeueAfter: min(interval, 30*time.Second)}, nil
	}
	return resync(interval), nil
}

// scanTags lists the tags the exclusion list keeps, sorted.
func scanTags(ctx context.Context, c client.Client, repo *imagev1.ImageRepository) (tags []string, canonical, reason string, err error) {
	var excl []*regexp.Regexp
	for i, e := range exclusions(repo) {
		re, err := regexp.Compile(e)
		if err != nil {
			return nil, "", "InvalidExclusionList", fmt.Errorf("spec.exclusionList[%d] %q: %w", i, e, err)
		}
		excl = append(excl, re)
	}
	auth, err := imageAuth(ctx, c, repo)
	if err != nil {
		return nil, "", "AuthenticationFailed", err
	}
	name, err := oci.Repository(repo.Spec.Image, auth)
	if err != nil {
		return nil, "", "InvalidImage", fmt.Errorf("spec.image: %w", err)
	}
	timeout := min(flux.Interval(&repo.Spec.Interval, 5*time.Minute), time.Minute)
	if repo.Spec.Timeout != nil {
		timeout = repo.Spec.Timeout.Duration
	}
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	all, err := oci.Tags(sctx, repo.Spec.Image, auth)
	if err != nil {
		return nil, "", "ScanFailed", err
	}
	for _, t := range all {
		if !matchesAny(excl, t) {
			tags = append(tags, t)
		}
	}
	sort.Strings(tags)
	return tags, name.Name(), "", nil
}

func exclusions(repo *imagev1.ImageRepository) []string {
	if len(repo.Spec.ExclusionList) > 0 {
		return repo.Spec.ExclusionList
	}
	return defaultExclusions
}

func matchesAny(res []*regexp.Regexp, s string) bool {
	for _, re := range res {
		if re.MatchString(s) {
			return true
		}
	}
	return false
}

// tagsRevision is a digest of a sorted tag list.
func tagsRevision(tags []string) string {
	h := sha256.Sum256([]byte(strings.Join(tags, "\n")))
	return "sha256:" + hex.EncodeToString(h[:])
}

// latestTags is up to ten tags in reverse order, as Flux shows them.
func latestTags(tags []string) []string {
	out := make([]string, 0, min(10, len(tags)))
	for i := len(tags) - 1; i >= 0 && len(out) < 10; i-- {
		out = append(out, tags[i])
	}
	return out
}

// imageAuth reads an ImageRepository's registry credentials from its
// dockerconfigjson Secret.
func imageAuth(ctx context.Context, c client.Client, repo *imagev1.ImageRepository) (oci.Auth, error) {
	auth := oci.Auth{Insecure: repo.Spec.Insecure}
	if repo.Spec.SecretRef == nil {
		return auth, nil
	}
	sec := &corev1.Secret{}
	key := types.NamespacedName{Namespace: repo.Namespace, Name: repo.Spec.SecretRef.Name}
	if err := c.Get(ctx, key, sec); err != nil {
		return auth, fmt.Errorf("spec.secretRef %s: %w", key, err)
	}
	data, ok := sec.Data[corev1.DockerConfigJsonKey]
	if !ok {
		return auth, fmt.Errorf("spec.secretRef %s: no %s key", key, corev1.DockerConfigJsonKey)
	}
	a, err := oci.DockerConfigAuth(data, repo.Spec.Image)
	if err != nil {
		return auth, fmt.Errorf("spec.secretRef %s: %w", key, err)
	}
	a.Insecure = auth.Insecure
	return a, nil
}
