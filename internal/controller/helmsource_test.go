package controller

import (
	"context"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	helmregistry "helm.sh/helm/v3/pkg/registry"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	helmv2 "converge.dev/converge/internal/api/fluxcd/helm/v2"
	sourcev1 "converge.dev/converge/internal/api/fluxcd/source/v1"
	"converge.dev/converge/internal/clustertest"
	"converge.dev/converge/internal/gittest"
)

// pushChart packages testdata/charts/external-dns at each version and
// pushes it to host/charts as `helm push` does, with Helm's own registry
// client.
func pushChart(t *testing.T, host string, versions ...string) {
	t.Helper()
	rc, err := helmregistry.NewClient(helmregistry.ClientOptPlainHTTP(),
		helmregistry.ClientOptCredentialsFile(filepath.Join(t.TempDir(), "config.json")))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, v := range versions {
		c, err := loader.LoadDir("testdata/charts/external-dns")
		if err != nil {
			t.Fatal(err)
		}
		c.Metadata.Version = v
		path, err := chartutil.Save(c, dir)
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		// Helm itself writes the "+" of a version as "_" in the tag.
		if _, err := rc.Push(data, host+"/charts/external-dns:"+v); err != nil {
			t.Fatalf("helm push %s: %v", v, err)
		}
	}
}

// TestHelmChartsFromOCI: a HelmRepository of type oci resolves the
// seed's "1.15.x" over a registry's tags, and a chartRef to an
// OCIRepository installs the chart that repository points at.
func TestHelmChartsFromOCI(t *testing.T) {
	c, _ := setup(t)
	ns := clustertest.Namespace(t)
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	pushChart(t, host, "1.15.0", "1.15.2", "1.16.0", "1.16.1+build.7")

	create(t, c, &sourcev1.HelmRepository{ObjectMeta: metav1.ObjectMeta{Name: "registry", Namespace: ns},
		Spec: sourcev1.HelmRepositorySpec{URL: "oci://" + host + "/charts", Type: "oci", Insecure: true, Interval: metav1.Duration{Duration: 10 * time.Minute}}})
	create(t, c, &helmv2.HelmRelease{ObjectMeta: metav1.ObjectMeta{Name: "dns", Namespace: ns},
		Spec: helmv2.HelmReleaseSpec{Interval: metav1.Duration{Duration: 10 * time.Minute},
			Chart: &helmv2.HelmChartTemplate{Spec: helmv2.HelmChartTemplateSpec{Chart: "external-dns", Version: "1.15.x",
				SourceRef: helmv2.CrossNamespaceObjectReference{Kind: "HelmRepository", Name: "registry"}}}}})
	hr := waitHelmRelease(t, c, ns, "dns", "Ready", func(h *helmv2.HelmRelease) bool { return isReady(h.Status.Conditions) })
	if hr.Status.LastAttemptedRevision != "1.15.2" || len(hr.Status.History) != 1 || hr.Status.History[0].ChartVersion != "1.15.2" {
		t.Errorf("from the registry: revision %q history %+v, want 1.15.2", hr.Status.LastAttemptedRevision, hr.Status.History)
	}
	if args := deploymentArgs(c, ns, "dns"); args != "--provider=inmemory --policy=upsert-only" {
		t.Errorf("deployment args %q: the chart from the registry was not installed", args)
	}

	t.Run("chartRef to an OCIRepository", func(t *testing.T) {
		create(t, c, &sourcev1.OCIRepository{ObjectMeta: metav1.ObjectMeta{Name: "dns-chart", Namespace: ns},
			Spec: sourcev1.OCIRepositorySpec{URL: "oci://" + host + "/charts/external-dns", Insecure: true,
				Interval: metav1.Duration{Duration: 10 * time.Minute}, Ref: &sourcev1.OCIRepositoryRef{SemVer: ">=1.16.0"},
				LayerSelector: &sourcev1.OCILayerSelector{MediaType: HelmChartMediaType, Operation: "copy"}}})
		create(t, c, &helmv2.HelmRelease{ObjectMeta: metav1.ObjectMeta{Name: "dns2", Namespace: ns},
			Spec: helmv2.HelmReleaseSpec{Interval: metav1.Duration{Duration: 10 * time.Minute},
				ChartRef: &helmv2.CrossNamespaceObjectReference{Kind: "OCIRepository", Name: "dns-chart"}}})
		hr := waitHelmRelease(t, c, ns, "dns2", "Ready", func(h *helmv2.HelmRelease) bool { return isReady(h.Status.Conditions) })
		if hr.Status.LastAttemptedRevision != "1.16.1+build.7" {
			t.Errorf("chartRef OCIRepository: revision %q, want 1.16.1+build.7 (the tag 1.16.1_build.7)", hr.Status.LastAttemptedRevision)
		}
	})

	t.Run("a missing chart says which and where", func(t *testing.T) {
		create(t, c, &helmv2.HelmRelease{ObjectMeta: metav1.ObjectMeta{Name: "nochart", Namespace: ns},
			Spec: helmv2.HelmReleaseSpec{Interval: metav1.Duration{Duration: 10 * time.Minute},
				Chart: &helmv2.HelmChartTemplate{Spec: helmv2.HelmChartTemplateSpec{Chart: "external-dns", Version: "9.x",
					SourceRef: helmv2.CrossNamespaceObjectReference{Kind: "HelmRepository", Name: "registry"}}}}})
		hr := waitHelmRelease(t, c, ns, "nochart", "failed", func(h *helmv2.HelmRelease) bool { return readyReason(h.Status.Conditions) == "ArtifactFailed" })
		msg := readyMessage(hr.Status.Conditions)
		if !strings.Contains(msg, `chart "external-dns" from HelmRepository `+ns+"/registry") || !strings.Contains(msg, `no tag matches "9.x"`) {
			t.Errorf("message %q does not name the chart, the source and the range", msg)
		}
	})
}

// TestHelmChartsFromGit: a HelmRelease installs a chart from a folder of
// a GitRepository; a HelmChart with reconcileStrategy Revision makes a
// commit that does not bump the chart's version an upgrade.
func TestHelmChartsFromGit(t *testing.T) {
	c, repo := setup(t)
	ctx := context.Background()
	ns := clustertest.Namespace(t)
	repo.CopyDir("chart", "testdata/charts/external-dns", "charts/external-dns")
	repo.Publish()
	create(t, c, &sourcev1.GitRepository{ObjectMeta: metav1.ObjectMeta{Name: "charts", Namespace: ns},
		Spec: sourcev1.GitRepositorySpec{URL: gittest.FileURL(repo.Bare), Interval: metav1.Duration{Duration: time.Minute}}})
	create(t, c, &helmv2.HelmRelease{ObjectMeta: metav1.ObjectMeta{Name: "dns", Namespace: ns},
		Spec: helmv2.HelmReleaseSpec{Interval: metav1.Duration{Duration: 10 * time.Minute},
			Chart: &helmv2.HelmChartTemplate{Spec: helmv2.HelmChartTemplateSpec{Chart: "./charts/external-dns",
				SourceRef: helmv2.CrossNamespaceObjectReference{Kind: "GitRepository", Name: "charts"}}}}})
	hr := waitHelmRelease(t, c, ns, "dns", "Ready", func(h *helmv2.HelmRelease) bool { return isReady(h.Status.Conditions) })
	if hr.Status.LastAttemptedRevision != "0.0.0" {
		t.Errorf("chart from Git: revision %q, want the Chart.yaml version 0.0.0", hr.Status.LastAttemptedRevision)
	}
	if args := deploymentArgs(c, ns, "dns"); args != "--provider=inmemory --policy=upsert-only" {
		t.Errorf("deployment args %q", args)
	}

	create(t, c, &sourcev1.HelmChart{ObjectMeta: metav1.ObjectMeta{Name: "dns-rev", Namespace: ns},
		Spec: sourcev1.HelmChartSpec{Chart: "charts/external-dns", ReconcileStrategy: "Revision", Interval: metav1.Duration{Duration: 10 * time.Minute},
			SourceRef: sourcev1.LocalHelmChartSourceReference{Kind: "GitRepository", Name: "charts"}}})
	create(t, c, &helmv2.HelmRelease{ObjectMeta: metav1.ObjectMeta{Name: "dns-rev", Namespace: ns},
		Spec: helmv2.HelmReleaseSpec{Interval: metav1.Duration{Duration: 10 * time.Minute},
			ChartRef: &helmv2.CrossNamespaceObjectReference{Kind: "HelmChart", Name: "dns-rev"}}})
	hr = waitHelmRelease(t, c, ns, "dns-rev", "Ready", func(h *helmv2.HelmRelease) bool { return isReady(h.Status.Conditions) })
	first := hr.Status.LastAttemptedRevision
	if !strings.HasPrefix(first, "0.0.0+") || len(first) != len("0.0.0+")+12 {
		t.Fatalf("Revision strategy: revision %q, want 0.0.0+<12 hex of the commit>", first)
	}

	// A commit that changes values but not the version.
	repo.Commit("policy sync", map[string]string{"charts/external-dns/values.yaml": "replicaCount: 1\nprovider: inmemory\npolicy: sync\ntestFails: false\n"})
	repo.Publish()
	gr := &sourcev1.GitRepository{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "charts"}, gr); err != nil {
		t.Fatal(err)
	}
	if err := c.Patch(ctx, gr, rawMerge([]byte(`{"metadata":{"annotations":{"`+ReconcileRequestAnnotation+`":"now"}}}`))); err != nil {
		t.Fatal(err)
	}
	waitHelmRelease(t, c, ns, "dns-rev", "upgraded to the new commit", func(h *helmv2.HelmRelease) bool {
		return h.Status.LastAttemptedRevision != first && isReady(h.Status.Conditions) && deploymentArgs(c, ns, "dns-rev") == "--provider=inmemory --policy=sync"
	})
	// ChartVersion (the default) keeps the release until the version
	// moves, as Flux does.
	if args := deploymentArgs(c, ns, "dns"); args != "--provider=inmemory --policy=upsert-only" {
		t.Errorf("ChartVersion strategy upgraded on a commit without a version bump: args %q", args)
	}
}

func readyReason(conds []metav1.Condition) string {
	if r := meta.FindStatusCondition(conds, "Ready"); r != nil {
		return r.Reason
	}
	return ""
}
