package controller

import (
	"context"
	"fmt"
	"sync"
	"time"

	"helm.sh/helm/v3/pkg/repo"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	sourcev1 "converge.dev/converge/internal/api/fluxcd/source/v1"
	"converge.dev/converge/internal/dialect/flux"
	"converge.dev/converge/internal/redact"
	"converge.dev/converge/internal/source/helmrepo"
)

// indexes holds the Helm repository indexes the HelmRepository
// reconciler fetched, for the HelmRelease reconciler.
type indexes struct {
	mu sync.Mutex
	m  map[string]*repo.IndexFile // by repository URL
}

func (i *indexes) get(url string) *repo.IndexFile {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.m[url]
}

func (i *indexes) put(url string, idx *repo.IndexFile) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.m == nil {
		i.m = map[string]*repo.IndexFile{}
	}
	i.m[url] = idx
}

// HelmRepositoryReconciler reads Helm repository indexes.
type HelmRepositoryReconciler struct {
	Client  client.Client
	indexes *indexes
	gate    *gate
}

// SetupWithManager registers the reconciler.
func (r *HelmRepositoryReconciler) SetupWithManager(mgr ctrl.Manager) error {
	b := ctrl.NewControllerManagedBy(mgr).
		For(&sourcev1.HelmRepository{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{})))
	_, err := r.gate.build(b, &sourcev1.HelmRepository{}, &sourcev1.HelmRepositoryList{}, r)
	return err
}

// Reconcile fetches one repository's index.
func (r *HelmRepositoryReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	hr := &sourcev1.HelmRepository{}
	if err := r.Client.Get(ctx, req.NamespacedName, hr); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if hr.Spec.Suspend {
		return ctrl.Result{}, nil
	}
	orig := hr.DeepCopy()
	st := &hr.Status
	interval := flux.Interval(&hr.Spec.Interval, 10*time.Minute)
	var ferr error
	user, pass, cerr := secretCredentials(ctx, r.Client, hr.Namespace, hr.Spec.SecretRef)
	switch {
	case cerr != nil:
		ferr = cerr
		flux.MarkFailed(&st.Conditions, hr.Generation, "AuthenticationFailed", cerr.Error(), false)
	case hr.Spec.Type == "oci":
		flux.MarkReady(&st.Conditions, hr.Generation, flux.SucceededReason, "Helm repositories of type 'oci' do not contain any information in the status.")
	default:
		fctx, cancel := context.WithTimeout(ctx, time.Minute)
		idx, digest, err := helmrepo.Index(fctx, hr.Spec.URL, helmrepo.Credentials{Username: user, Password: pass})
		cancel()
		ferr = err
		if err == nil {
			r.indexes.put(hr.Spec.URL, idx)
			if st.Artifact == nil || st.Artifact.Revision != digest {
				st.Artifact = &sourcev1.Artifact{Revision: digest, Digest: digest, LastUpdateTime: metav1.Now(),
					Path: fmt.Sprintf("helmrepository/%s/%s/index.yaml", hr.Namespace, hr.Name), URL: redact.URL(hr.Spec.URL) + "/index.yaml"}
			}
			st.URL = redact.URL(hr.Spec.URL) + "/index.yaml"
			flux.MarkReady(&st.Conditions, hr.Generation, flux.SucceededReason, "stored artifact: revision '"+digest+"'")
		} else {
			flux.MarkFailed(&st.Conditions, hr.Generation, "IndexationFailed", err.Error(), false)
		}
	}
	st.ObservedGeneration = hr.Generation
	if !equality.Semantic.DeepEqual(orig.Status, hr.Status) {
		if requeue, err := patchStatus(ctx, r.Client, hr, orig); err != nil || requeue {
			return ctrl.Result{Requeue: requeue}, err
		}
	}
	if ferr != nil {
		return ctrl.Result{RequeueAfter: min(interval, 30*time.Second)}, nil
	}
	return ctrl.Result{RequeueAfter: interval}, nil
}

// HelmChartReconciler resolves a chart in its source (a HelmRepository,
// by name and version range; a GitRepository, by path) and publishes
// its version as the artifact revision.
type HelmChartReconciler struct {
	Client client.Client
	charts *chartLoader
	gate   *gate
}

// SetupWithManager registers the reconciler; a source's new artifact
// wakes the charts using it.
func (r *HelmChartReconciler) SetupWithManager(mgr ctrl.Manager) error {
	b := ctrl.NewControllerManagedBy(mgr).
		For(&sourcev1.HelmChart{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Watches(&sourcev1.HelmRepository{}, handler.EnqueueRequestsFromMapFunc(r.bySource("HelmRepository"))).
		Watches(&sourcev1.GitRepository{}, handler.EnqueueRequestsFromMapFunc(r.bySource("GitRepository")))
	_, err := r.gate.build(b, &sourcev1.HelmChart{}, &sourcev1.HelmChartList{}, r)
	return err
}

func (r *HelmChartReconciler) bySource(kind string) handler.MapFunc {
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		var list sourcev1.HelmChartList
		if err := r.Client.List(ctx, &list, client.InNamespace(o.GetNamespace())); err != nil {
			return nil
		}
		var out []reconcile.Request
		for _, hc := range list.Items {
			if orDefault(hc.Spec.SourceRef.Kind, "HelmRepository") == kind && hc.Spec.SourceRef.Name == o.GetName() {
				out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: hc.Namespace, Name: hc.Name}})
			}
		}
		return out
	}
}

// Reconcile resolves one HelmChart.
func (r *HelmChartReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	hc := &sourcev1.HelmChart{}
	if err := r.Client.Get(ctx, req.NamespacedName, hc); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if hc.Spec.Suspend {
		return ctrl.Result{}, nil
	}
	orig := hc.DeepCopy()
	st := &hc.Status
	interval := flux.Interval(&hc.Spec.Interval, 10*time.Minute)
	err := r.resolve(ctx, hc)
	if err != nil {
		flux.MarkFailed(&st.Conditions, hc.Generation, "ChartPullFailed", err.Error(), false)
	}
	st.ObservedGeneration = hc.Generation
	if !equality.Semantic.DeepEqual(orig.Status, hc.Status) {
		if requeue, perr := patchStatus(ctx, r.Client, hc, orig); perr != nil || requeue {
			return ctrl.Result{Requeue: requeue}, perr
		}
	}
	if err != nil {
		return ctrl.Result{RequeueAfter: 30 * time.Second}, nil
	}
	return ctrl.Result{RequeueAfter: interval}, nil
}

func (r *HelmChartReconciler) resolve(ctx context.Context, hc *sourcev1.HelmChart) error {
	kind := orDefault(hc.Spec.SourceRef.Kind, "HelmRepository")
	if kind != "HelmRepository" && kind != "GitRepository" {
		return fmt.Errorf("spec.sourceRef.kind %q is not supported (HelmRepository and GitRepository are)", kind)
	}
	creq := chartRequest{Kind: kind, Key: types.NamespacedName{Namespace: hc.Namespace, Name: hc.Spec.SourceRef.Name},
		Chart: hc.Spec.Chart, Version: hc.Spec.Version, Strategy: hc.Spec.ReconcileStrategy}
	name, v, err := r.charts.version(ctx, creq)
	if err != nil {
		return err
	}
	if a := hc.Status.Artifact; a == nil || a.Revision != v {
		hc.Status.Artifact = &sourcev1.Artifact{Revision: v, LastUpdateTime: metav1.Now(),
			Path: fmt.Sprintf("helmchart/%s/%s/%s-%s.tgz", hc.Namespace, hc.Name, name, v),
			URL:  fmt.Sprintf("converge://helmchart/%s/%s/%s-%s.tgz", hc.Namespace, hc.Name, name, v)}
	}
	flux.MarkReady(&hc.Status.Conditions, hc.Generation, flux.SucceededReason,
		fmt.Sprintf("pulled '%s' chart with version '%s'", name, v))
	return nil
}
