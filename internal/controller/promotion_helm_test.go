package controller

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apiextensions-apiserver/pkg/apihelpers"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apiextensionsv1client "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset/typed/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	convergev1 "converge.dev/converge/internal/api/converge/v1alpha1"
	kustomizev1 "converge.dev/converge/internal/api/fluxcd/kustomize/v1"
	sourcev1 "converge.dev/converge/internal/api/fluxcd/source/v1"
	"converge.dev/converge/internal/clustertest"
	"converge.dev/converge/internal/forge"
	"converge.dev/converge/internal/promotion"
)

// helmRelease is a HelmRelease manifest as a Flux user keeps it in Git:
// its chart from source (a GitRepository or a HelmRepository), the image
// in its values, where the promotion writes.
func helmRelease(name, ns, chart, sourceKind, sourceName, sourceNS, image string) string {
	return fmt.Sprintf(`apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: %s
  namespace: %s
spec:
  interval: 10m
  chart:
    spec:
      chart: %s
      sourceRef: {kind: %s, name: %s, namespace: %s}
  values:
    # converge promotes this line
    image: "%s"
`, name, ns, chart, sourceKind, sourceName, sourceNS, image)
}

// TestPromotionToHelmRelease: HelmRelease stages are promoted to, not
// only from. dev (an Argo CD Application) moves to a new digest; the
// next stage is a HelmRelease whose chart lives in the deploy repository,
// the one after it a HelmRelease whose chart comes from a Helm
// repository. Each promotion renders the HelmRelease at the pull
// request head (its manifest from the Kustomization that applies it, its
// chart, its values) for the manifest gate, dry-runs the chart's objects
// for the policy gate, merges, and is Verified when the release runs the
// digest; the chart's Flagger Canary passes the progressive gate. The
// tests gate follows CI's commit status on the head
// (testsContext): pending until CI reports, failed on a failure, passed
// on a re-run's success. A head whose values carry a tag without a digest is refused,
// naming the HelmRelease's Deployment and container. helm-git's risk is
// auto: low for the image alone, high once the head adds a Role.
func TestPromotionToHelmRelease(t *testing.T) {
	d1, d2 := digestOf("orders-api 1.0.0"), digestOf("orders-api 1.1.0")
	w := newPromotionWorld(t, d1)
	hns := clustertest.Namespace(t)
	// The chart has a Flagger Canary; the cluster serves its kind (there
	// is no Flagger: the Canary has no phase, so its Deployment is read
	// as it is, and the progressive gate finds it).
	serveKind(t, "flagger.app", "v1beta1", "Canary", "canaries")
	charts := chartServer(t, "testdata/charts/orders", "1.0.0")
	chartFiles := map[string]string{}
	for _, f := range []string{"Chart.yaml", "values.yaml", "templates/deployment.yaml", "templates/canary.yaml"} {
		data, err := os.ReadFile(filepath.Join("testdata/charts/orders", f))
		if err != nil {
			t.Fatal(err)
		}
		chartFiles["charts/orders/"+f] = string(data)
	}
	releases := func(git, repo string) map[string]string {
		return map[string]string{
			"apps/orders-helm/git/release.yaml":  helmRelease("orders-git", hns, "./charts/orders", "GitRepository", "deploy", w.ns, git),
			"apps/orders-helm/repo/release.yaml": helmRelease("orders-repo", hns, "orders", "HelmRepository", "charts", hns, repo),
		}
	}
	files := releases(ordersImage+":1.0.0@"+d1, ordersImage+":1.0.0@"+d1)
	for k, v := range chartFiles {
		files[k] = v
	}
	w.push("helm stages", files)
	// Ask the source for the new commit, as `flux reconcile source git` does.
	src := &sourcev1.GitRepository{}
	src.Namespace, src.Name = w.ns, "deploy"
	patch := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"`+ReconcileRequestAnnotation+`":"`+time.Now().Format(time.RFC3339Nano)+`"}}}`))
	if err := w.c.Patch(t.Context(), src, patch); err != nil {
		t.Fatal(err)
	}
	chartsRepository(t, w.c, hns, charts)
	for _, s := range []string{"git", "repo"} {
		create(t, w.c, &kustomizev1.Kustomization{ObjectMeta: metav1.ObjectMeta{Name: "orders-helm-" + s, Namespace: w.ns},
			Spec: kustomizev1.KustomizationSpec{SourceRef: kustomizev1.CrossNamespaceSourceReference{Kind: "GitRepository", Name: "deploy"},
				Path: "./apps/orders-helm/" + s, Prune: true, Interval: metav1.Duration{Duration: 10 * time.Minute}}})
	}
	values := func(s string) convergev1.StageLocator {
		return convergev1.StageLocator{Path: "apps/orders-helm/" + s + "/release.yaml", Kind: "yaml-path", Field: "spec.values.image"}
	}
	p := w.pipelineObject(0, 0)
	p.Spec.TestsContext = "ci/test"
	p.Spec.Stages = []convergev1.PipelineStage{
		p.Spec.Stages[0],
		{Name: "helm-git", From: "dev", Targets: []convergev1.StageTarget{{Kind: "HelmRelease", Namespace: hns, Name: "orders-git"}},
			Locator: values("git"), Risk: "auto", Bake: &metav1.Duration{}, AutoMerge: true},
		{Name: "helm-repo", From: "helm-git", Targets: []convergev1.StageTarget{{Kind: "HelmRelease", Namespace: hns, Name: "orders-repo"}},
			Locator: values("repo"), Risk: "low", Bake: &metav1.Duration{}, AutoMerge: true},
	}
	create(t, w.c, p)
	w.waitStages(map[string]string{"dev": d1, "helm-git": d1, "helm-repo": d1})

	w.push("ci: orders-api 1.1.0", map[string]string{
		"apps/orders/overlays/dev/kustomization.yaml": overlay("1.1.0", d2),
		promotion.EvidencePath(d2, "build"):           evidence("build", d2, "result: passed\n"),
		promotion.EvidencePath(d2, "scan"):            evidence("scan", d2, "critical: 0\n"),
	})
	w.refresh("orders-dev")
	id := promotion.FreightID([]promotion.Artifact{{Name: "app", Image: ordersImage, Digest: d2}})
	ci := func(head, state, desc string) {
		t.Helper()
		if err := w.g.SetStatus(t.Context(), head, forge.Status{Context: "ci/test", State: state, Description: desc, TargetURL: "https://ci.example.com/run/7"}); err != nil {
			t.Fatal(err)
		}
	}
	for i, s := range []struct{ stage, release string }{{"helm-git", "orders-git"}, {"helm-repo", "orders-repo"}} {
		name := promotionName("orders-api", s.stage, id)
		pr := w.waitPromotion(name, "waiting for CI", 3*time.Minute, func(p *convergev1.Promotion) bool {
			return p.Status.PR != nil && gateOf(p, promotion.GateTests).Phase == "pending"
		})
		if g := gateOf(pr, promotion.GateTests); !strings.Contains(g.Message, "no CI status ci/test on "+pr.Status.PR.Head[:12]) {
			t.Errorf("%s: tests gate before CI reports %+v", s.stage, g)
		}
		if i == 0 {
			// CI fails, then passes on a re-run: the gate follows it.
			ci(pr.Status.PR.Head, forge.StatusFailure, "2 of 40 tests failed")
			pr = w.waitPromotion(name, "refused by CI", time.Minute, func(p *convergev1.Promotion) bool {
				return gateOf(p, promotion.GateTests).Phase == "failed"
			})
			if g := gateOf(pr, promotion.GateTests); !strings.Contains(g.Message, "CI status ci/test on "+pr.Status.PR.Head[:12]+" is failure: 2 of 40 tests failed (https://ci.example.com/run/7)") {
				t.Errorf("tests gate after a CI failure %+v", g)
			}
		}
		ci(pr.Status.PR.Head, forge.StatusSuccess, "40 tests passed")
		pr = w.waitPromotion(name, "Verified", 3*time.Minute, func(p *convergev1.Promotion) bool {
			return p.Status.Phase == convergev1.PhaseVerified
		})
		if i == 0 && (pr.Status.Risk != "low" || pr.Status.RiskReason != "changes only the image reference") {
			t.Errorf("risk: auto on an image-only change: %s (%s)", pr.Status.Risk, pr.Status.RiskReason)
		}
		for _, g := range []string{promotion.GateManifest, promotion.GatePolicy, promotion.GateProgressive} {
			if gateOf(pr, g).Phase != "passed" {
				t.Errorf("%s: %s gate %+v", s.stage, g, gateOf(pr, g))
			}
		}
		st := w.prState(pr.Status.PR.Number)
		if want := "+ image: " + ordersImage + ":1.1.0@" + d2; !strings.Contains(st.Body, want) || !strings.Contains(st.Body, "Deployment "+hns+"/"+s.release) {
			t.Errorf("%s: the pull request body lacks %q for Deployment %s/%s:\n%s", s.stage, want, hns, s.release, st.Body)
		}
		d := &appsv1.Deployment{}
		if err := w.c.Get(t.Context(), types.NamespacedName{Namespace: hns, Name: s.release}, d); err != nil ||
			d.Spec.Template.Spec.Containers[0].Image != ordersImage+":1.1.0@"+d2 {
			t.Errorf("%s: the release's Deployment runs %v (%v)", s.stage, d.Spec.Template.Spec.Containers, err)
		}
	}

	// A manual promotion whose head someone edits to a tag without a
	// digest: the HelmRelease renders it, and the manifest gate names the
	// Deployment and container.
	// (helm-git stops auto-merging first, so the edit wins the race.)
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := w.c.Get(t.Context(), client.ObjectKeyFromObject(p), p); err != nil {
			return err
		}
		p.Spec.Stages[1].AutoMerge = false
		return w.c.Update(t.Context(), p)
	}); err != nil {
		t.Fatal(err)
	}
	d3 := digestOf("orders-api 1.2.0")
	w.push("ci: orders-api 1.2.0", map[string]string{
		"apps/orders/overlays/dev/kustomization.yaml": overlay("1.2.0", d3),
		promotion.EvidencePath(d3, "build"):           evidence("build", d3, "result: passed\n"),
		promotion.EvidencePath(d3, "scan"):            evidence("scan", d3, "critical: 0\n"),
	})
	w.refresh("orders-dev")
	id3 := promotion.FreightID([]promotion.Artifact{{Name: "app", Image: ordersImage, Digest: d3}})
	pr := w.waitPromotion(promotionName("orders-api", "helm-git", id3), "opened a pull request", 2*time.Minute, func(p *convergev1.Promotion) bool {
		return p.Status.PR != nil
	})
	edit := releases(ordersImage+":1.2.0", ordersImage+":1.1.0@"+d2)
	edit["apps/orders-helm/git/role.yaml"] = "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: reader, namespace: " + hns + "}\nrules: []\n"
	w.repo.PushBranch(pr.Status.PR.Branch, "use the tag, and a Role", edit)
	pr = w.waitPromotion(pr.Name, "refused the tag", time.Minute, func(p *convergev1.Promotion) bool {
		return gateOf(p, promotion.GateManifest).Phase == "failed"
	})
	if g := gateOf(pr, promotion.GateManifest); !strings.Contains(g.Message, "Deployment "+hns+"/orders-git container api") || !strings.Contains(g.Message, "tag without a digest") {
		t.Errorf("manifest gate %+v", g)
	}
	// risk: auto sees the Role beside the HelmRelease and the file beyond
	// the locator.
	if pr.Status.Risk != "high" || !strings.Contains(pr.Status.RiskReason, "changes files beyond the image reference: apps/orders-helm/git/role.yaml") ||
		!strings.Contains(pr.Status.RiskReason, "touches Role "+hns+"/reader") {
		t.Errorf("risk: auto with a Role added: %s (%s)", pr.Status.Risk, pr.Status.RiskReason)
	}
	if pr.Status.Phase == convergev1.PhaseConverging || pr.Status.Phase == convergev1.PhaseVerified {
		t.Errorf("a refused head was merged: %s %s", pr.Status.Phase, pr.Status.Message)
	}
}

// waitEstablished waits until the API server serves the CRD's kind.
// serveKind makes the cluster serve a namespaced kind with any fields
// and a status subresource, as the CRD of a controller converge does not
// run would. CRDs are cluster-wide: every test asks for the same one.
func serveKind(t *testing.T, group, version, kind, plural string) {
	t.Helper()
	crd := &apiextensionsv1.CustomResourceDefinition{ObjectMeta: metav1.ObjectMeta{Name: plural + "." + group},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{Group: group, Scope: apiextensionsv1.NamespaceScoped,
			Names: apiextensionsv1.CustomResourceDefinitionNames{Kind: kind, ListKind: kind + "List", Plural: plural, Singular: strings.ToLower(kind)},
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{Name: version, Served: true, Storage: true,
				Subresources: &apiextensionsv1.CustomResourceSubresources{Status: &apiextensionsv1.CustomResourceSubresourceStatus{}},
				Schema:       &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{Type: "object", XPreserveUnknownFields: ptr.To(true)}}}}}}
	crds := apiextensionsclient.NewForConfigOrDie(clustertest.RESTConfig(t)).ApiextensionsV1().CustomResourceDefinitions()
	if _, err := crds.Create(t.Context(), crd, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	waitEstablished(t, crds, crd.Name)
}

func waitEstablished(t *testing.T, crds apiextensionsv1client.CustomResourceDefinitionInterface, name string) {
	t.Helper()
	err := wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		got, err := crds.Get(ctx, name, metav1.GetOptions{})
		return err == nil && apihelpers.IsCRDConditionTrue(got, apiextensionsv1.Established), nil
	})
	if err != nil {
		t.Fatalf("CRD %s never became established", name)
	}
}
