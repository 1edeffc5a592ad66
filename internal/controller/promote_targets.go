package controller

import (
	"context"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	convergev1 "converge.dev/converge/internal/api/converge/v1alpha1"
	helmv2 "converge.dev/converge/internal/api/fluxcd/helm/v2"
	sourcev1 "converge.dev/converge/internal/api/fluxcd/source/v1"
	"converge.dev/converge/internal/engine"
	"converge.dev/converge/internal/object"
	"converge.dev/converge/internal/plan"
	"converge.dev/converge/internal/render"
	"converge.dev/converge/internal/render/helm"
)

// targetRender is a stage target rendered at a pull request head.
type targetRender struct {
	objects []object.Decoded
	// namespace is given to namespaced objects that name none.
	namespace string
	// admit dry-runs the objects against the cluster's admission.
	admit func(context.Context) error
	// related are the other objects the merge applies with the target:
	// for a HelmRelease, the render of the unit that applies it. They
	// count for risk: auto.
	related []object.Decoded
	// relatedNamespace is given to related objects that name none.
	relatedNamespace string
}

// targetAt renders target t at revision as its reconciler would after
// the merge. An Application or a Kustomization is its unit at revision; a
// HelmRelease is its chart with the values its manifest at revision
// gives it.
func (run *pipelineRun) targetAt(ctx context.Context, t convergev1.StageTarget, revision string) (targetRender, error) {
	if t.Kind == "HelmRelease" {
		return run.helmReleaseAt(ctx, t, revision)
	}
	u, err := run.unitAt(ctx, t, revision)
	if err != nil {
		return targetRender{}, err
	}
	r, err := run.r.Engine.Manifests(ctx, u)
	if err != nil {
		return targetRender{}, fmt.Errorf("%s %s/%s: render at %s: %w", t.Kind, t.Namespace, t.Name, short(revision, 12), err)
	}
	return targetRender{objects: r.Objects, namespace: u.DestNamespace, admit: func(ctx context.Context) error {
		_, err := run.r.Engine.Diff(ctx, u, engine.SyncOptions{})
		return err
	}}, nil
}

// helmReleaseAt renders a HelmRelease as the pull request head would
// have it. Its manifest lives in Git, applied by a Kustomization or an
// Application (the converge.dev/owner it carries): that unit is rendered
// at revision, and the HelmRelease is read from the render. Its chart
// comes from the revision too when it lives in the pipeline's repository,
// and otherwise from its source as the HelmRelease reconciler loads it;
// its values are valuesFrom's (read live) under the manifest's own.
func (run *pipelineRun) helmReleaseAt(ctx context.Context, t convergev1.StageTarget, revision string) (targetRender, error) {
	name := fmt.Sprintf("HelmRelease %s/%s", t.Namespace, t.Name)
	live := &helmv2.HelmRelease{}
	if err := run.r.Client.Get(ctx, types.NamespacedName{Namespace: t.Namespace, Name: t.Name}, live); err != nil {
		return targetRender{}, fmt.Errorf("%s: %w", name, err)
	}
	parent, err := ownerTarget(live.GetAnnotations()[plan.OwnerAnnotation])
	if err != nil {
		return targetRender{}, fmt.Errorf("%s: %w", name, err)
	}
	pu, err := run.unitAt(ctx, parent, revision)
	if err != nil {
		return targetRender{}, fmt.Errorf("%s: its manifest's unit: %w", name, err)
	}
	pr, err := run.r.Engine.Manifests(ctx, pu)
	if err != nil {
		return targetRender{}, fmt.Errorf("%s: its manifest's %s %s/%s: render at %s: %w", name, parent.Kind, parent.Namespace, parent.Name, short(revision, 12), err)
	}
	var hr *helmv2.HelmRelease
	for _, d := range pr.Objects {
		o := d.Object
		if o.GetKind() != "HelmRelease" || !strings.HasPrefix(o.GetAPIVersion(), helmv2.GroupVersion.Group+"/") ||
			o.GetName() != t.Name || orDefault(o.GetNamespace(), orDefault(pu.DestNamespace, "default")) != t.Namespace {
			continue
		}
		hr = &helmv2.HelmRelease{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, hr); err != nil {
			return targetRender{}, fmt.Errorf("%s (%s): %w", name, d.Source.File, err)
		}
		hr.Namespace = t.Namespace
	}
	if hr == nil {
		return targetRender{}, fmt.Errorf("%s is not in %s %s/%s's render at %s: the merge would remove it", name, parent.Kind, parent.Namespace, parent.Name, short(revision, 12))
	}
	hrr := &HelmReleaseReconciler{Client: run.r.Client}
	req, err := hrr.chartSource(ctx, hr)
	if err != nil {
		return targetRender{}, fmt.Errorf("%s at %s: %w", name, short(revision, 12), err)
	}
	values, err := hrr.valuesFrom(ctx, hr)
	if err == nil {
		values, err = withInline(hr, values)
	}
	if err != nil {
		return targetRender{}, fmt.Errorf("%s at %s: %w", name, short(revision, 12), err)
	}
	release, ns := releaseName(hr)
	out := targetRender{namespace: ns, related: pr.Objects, relatedNamespace: orDefault(pu.DestNamespace, "default")}
	out.admit = func(ctx context.Context) error { return run.r.Engine.Admit(ctx, out.objects, ns) }
	inRepo, err := run.chartInRepo(ctx, req)
	if err != nil {
		return targetRender{}, fmt.Errorf("%s: %w", name, err)
	}
	if inRepo {
		u := engine.Unit{RepoURL: run.p.Spec.Repo.URL, Revision: revision, Path: req.Chart, DestNamespace: ns, Auth: run.auth,
			Render: engine.RenderOptions{Kind: render.Helm, HelmReleaseName: release, HelmValues: values}}
		r, err := run.r.Engine.Render(ctx, u)
		if err != nil {
			return targetRender{}, fmt.Errorf("%s: chart %s at %s: %w", name, req.Chart, short(revision, 12), err)
		}
		out.objects = r.Objects
		return out, nil
	}
	if run.r.charts == nil {
		return targetRender{}, fmt.Errorf("%s: this controller loads no charts", name)
	}
	chrt, err := run.r.charts.load(ctx, req)
	if err != nil {
		return targetRender{}, fmt.Errorf("%s: %w", name, err)
	}
	if out.objects, err = run.r.Engine.RenderChart(ctx, chrt, helm.Options{ReleaseName: release, Namespace: ns, Values: values}); err != nil {
		return targetRender{}, fmt.Errorf("%s: %w", name, err)
	}
	return out, nil
}

// chartInRepo says whether a chart lives in the pipeline's repository,
// where the pull request can change it.
func (run *pipelineRun) chartInRepo(ctx context.Context, req chartRequest) (bool, error) {
	if req.Kind != "GitRepository" {
		return false, nil
	}
	repo := &sourcev1.GitRepository{}
	if err := run.r.Client.Get(ctx, req.Key, repo); err != nil {
		return false, fmt.Errorf("chart source GitRepository %s: %w", req.Key, err)
	}
	return sameRepo(repo.Spec.URL, run.p.Spec.Repo.URL), nil
}

// ownerTarget is the unit named by a converge.dev/owner annotation
// ("flux.NS.NAME" or "argocd.NS.NAME"; a namespace has no dots).
func ownerTarget(owner string) (convergev1.StageTarget, error) {
	kind := map[string]string{"flux": "Kustomization", "argocd": "Application"}
	dialect, rest, _ := strings.Cut(owner, ".")
	ns, n, ok := strings.Cut(rest, ".")
	if kind[dialect] == "" || !ok || ns == "" || n == "" {
		return convergev1.StageTarget{}, fmt.Errorf("its manifest was not applied by a Kustomization or Application converge runs (%s is %q), so its spec at the pull request head cannot be read from Git", plan.OwnerAnnotation, owner)
	}
	return convergev1.StageTarget{Kind: kind[dialect], Namespace: ns, Name: n}, nil
}
