package controller

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
	helmv2 "converge.dev/converge/internal/api/fluxcd/helm/v2"
	sourcev1 "converge.dev/converge/internal/api/fluxcd/source/v1"
	"converge.dev/converge/internal/clustertest"
	"converge.dev/converge/internal/dialect/flux"
	"converge.dev/converge/internal/gittest"
)

// bombChart is a chart whose one template repeats a 1 MB value n times:
// 1 MB in Git, n MB rendered. Keys are paths under the chart folder.
func bombChart(n int) map[string]string {
	return map[string]string{
		"Chart.yaml":  "apiVersion: v2\nname: bomb\nversion: 0.1.0\n",
		"values.yaml": "big: " + strings.Repeat("x", 1<<20) + "\n",
		"templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bomb\ndata:\n  big: \"" +
			"{{ range until " + strconv.Itoa(n) + " }}{{ $.Values.big }}{{ end }}\"\n",
	}
}

// TestHelmRenderLimit: a chart that renders 1.5 GB fails, for an
// Application's Helm source and for a HelmRelease, with a condition that
// names the limit. The render runs in a child with a 1 GiB memory limit,
// so the controller keeps running and its memory stays where it was.
func TestHelmRenderLimit(t *testing.T) {
	c, _ := setup(t)
	ensureNamespace(t, c, "argocd")
	permissiveProject(t, c, "anything")
	ns := clustertest.Namespace(t)
	const want = "helm render went over its limit: it needed more than 1024 MiB of memory"

	files := map[string]string{}
	for name, body := range bombChart(1500) {
		files["bomb/"+name] = body
	}
	repo := gittest.NewRepo(t, t.TempDir()+"/bomb.git")
	repo.Commit("bomb", files)
	repo.Publish()
	app := &v1alpha1.Application{
		ObjectMeta: metav1.ObjectMeta{Name: "bomb-" + ns, Namespace: "argocd"},
		Spec: v1alpha1.ApplicationSpec{Project: "anything",
			Source:      &v1alpha1.ApplicationSource{RepoURL: gittest.FileURL(repo.Bare), Path: "bomb"},
			Destination: v1alpha1.ApplicationDestination{Server: "https://kubernetes.default.svc", Namespace: ns}},
	}
	create(t, c, app)
	got := getApp(t, c, app.Name, "a ComparisonError", func(a *v1alpha1.Application) bool { return condition(a, "ComparisonError") != "" })
	if msg := condition(got, "ComparisonError"); !strings.Contains(msg, want) || !strings.Contains(msg, "bomb: helm template") {
		t.Errorf("ComparisonError %q, want it to name the chart and %q", msg, want)
	}

	dir := t.TempDir()
	for name, body := range bombChart(1500) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	url := chartServer(t, dir, "0.1.0")
	create(t, c, &sourcev1.HelmRepository{ObjectMeta: metav1.ObjectMeta{Name: "bombs", Namespace: ns},
		Spec: sourcev1.HelmRepositorySpec{URL: url, Interval: metav1.Duration{Duration: 10 * time.Minute}}})
	create(t, c, &helmv2.HelmRelease{ObjectMeta: metav1.ObjectMeta{Name: "bomb", Namespace: ns},
		Spec: helmv2.HelmReleaseSpec{Interval: metav1.Duration{Duration: 10 * time.Minute},
			Chart: &helmv2.HelmChartTemplate{Spec: helmv2.HelmChartTemplateSpec{Chart: "bomb", Version: "0.1.0",
				SourceRef: helmv2.CrossNamespaceObjectReference{Kind: "HelmRepository", Name: "bombs"}}},
			Values: &apiextensionsv1.JSON{Raw: []byte(`{}`)}}})
	// The failure stays named after the retries run out.
	hr := waitHelmRelease(t, c, ns, "bomb", "failed, naming the limit", func(h *helmv2.HelmRelease) bool {
		r := meta.FindStatusCondition(h.Status.Conditions, flux.ReadyCondition)
		return r != nil && r.Status == metav1.ConditionFalse && r.Reason == "InstallFailed" &&
			strings.Contains(r.Message, "install retries exhausted")
	})
	if r := meta.FindStatusCondition(hr.Status.Conditions, flux.ReadyCondition); !strings.Contains(r.Message, want) {
		t.Errorf("Ready message %q, want it to name %q", r.Message, want)
	}
}
