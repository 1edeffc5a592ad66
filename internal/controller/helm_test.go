package controller

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/repo"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	helmv2 "converge.dev/converge/internal/api/fluxcd/helm/v2"
	sourcev1 "converge.dev/converge/internal/api/fluxcd/source/v1"
	"converge.dev/converge/internal/clustertest"
	"converge.dev/converge/internal/dialect/flux"
	"converge.dev/converge/internal/helmrelease"
)

// helmRepoServer packages testdata/charts/external-dns at each version
// and serves the archives and an index over HTTP on loopback.
func helmRepoServer(t *testing.T, versions ...string) string {
	t.Helper()
	return chartServer(t, "testdata/charts/external-dns", versions...)
}

// chartServer packages the chart in src at each version and serves the
// archives and an index over HTTP on loopback.
func chartServer(t *testing.T, src string, versions ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, v := range versions {
		c, err := loader.LoadDir(src)
		if err != nil {
			t.Fatal(err)
		}
		c.Metadata.Version = v
		if _, err := chartutil.Save(c, dir); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	t.Cleanup(srv.Close)
	idx, err := repo.IndexDirectory(dir, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if err := idx.WriteFile(filepath.Join(dir, "index.yaml"), 0o644); err != nil {
		t.Fatal(err)
	}
	return srv.URL
}

// chartsRepository makes the HelmRepository "charts" in ns, on url.
func chartsRepository(t *testing.T, c client.Client, ns, url string) {
	t.Helper()
	create(t, c, &sourcev1.HelmRepository{ObjectMeta: metav1.ObjectMeta{Name: "charts", Namespace: ns},
		Spec: sourcev1.HelmRepositorySpec{URL: url, Interval: metav1.Duration{Duration: 10 * time.Minute}}})
}

func waitHelmRelease(t *testing.T, c client.Client, ns, name, what string, cond func(*helmv2.HelmRelease) bool) *helmv2.HelmRelease {
	t.Helper()
	hr := &helmv2.HelmRelease{}
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, hr); err != nil {
			return false, nil
		}
		return cond(hr), nil
	})
	if err != nil {
		out, _ := yaml.Marshal(hr.Status)
		t.Fatalf("waiting for HelmRelease %s/%s to be %s: %v\nstatus:\n%s", ns, name, what, err, out)
	}
	return hr
}

func deploymentArgs(c client.Client, ns, name string) string {
	d := &appsv1.Deployment{}
	if err := c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, d); err != nil || len(d.Spec.Template.Spec.Containers) == 0 {
		return ""
	}
	return strings.Join(d.Spec.Template.Spec.Containers[0].Args, " ")
}

// TestSeedHelmRelease: the seed's §4.2 HelmRelease, unchanged, installs
// external-dns 1.15.2 (1.15.x resolved among 1.15.0, 1.15.2 and 1.16.0)
// from a Helm repository on loopback, into Helm's own storage; drift
// detection corrects a kubectl edit; a failed upgrade is remediated by a
// rollback.
func TestSeedHelmRelease(t *testing.T) {
	c, _ := setup(t)
	ctx := context.Background()
	url := helmRepoServer(t, "1.15.0", "1.15.2", "1.16.0")
	ensureNamespace(t, c, "flux-system")
	ensureNamespace(t, c, "platform-dns")
	create(t, c, &sourcev1.HelmRepository{ObjectMeta: metav1.ObjectMeta{Name: "external-dns", Namespace: "flux-system"},
		Spec: sourcev1.HelmRepositorySpec{URL: url, Interval: metav1.Duration{Duration: 10 * time.Minute}}})
	data, err := os.ReadFile("testdata/flux/seed-4.2.yaml")
	if err != nil {
		t.Fatal(err)
	}
	hr := &helmv2.HelmRelease{}
	if err := yaml.Unmarshal(data, hr); err != nil {
		t.Fatal(err)
	}
	create(t, c, hr)

	hr = waitHelmRelease(t, c, "platform-dns", "external-dns", "Ready", func(h *helmv2.HelmRelease) bool { return isReady(h.Status.Conditions) })
	if hr.Status.LastAttemptedRevision != "1.15.2" || len(hr.Status.History) != 1 || hr.Status.History[0].Status != "deployed" {
		out, _ := yaml.Marshal(hr.Status)
		t.Errorf("status:\n%s", out)
	}
	if args := deploymentArgs(c, "platform-dns", "external-dns"); args != "--provider=aws --policy=sync" {
		t.Errorf("args %q: the HelmRelease's values did not reach the chart", args)
	}
	if cond := meta.FindStatusCondition(hr.Status.Conditions, "UnsupportedFields"); cond != nil {
		t.Errorf("the seed's HelmRelease uses fields converge ignores: %s", cond.Message)
	}
	// What `helm list` reads: the release record in Helm's storage.
	if err := c.Get(ctx, types.NamespacedName{Namespace: "platform-dns", Name: "sh.helm.release.v1.external-dns.v1"}, &corev1.Secret{}); err != nil {
		t.Errorf("Helm's release record: %v", err)
	}
	hist, err := helmrelease.New(clustertest.RESTConfig(t)).History("external-dns", "platform-dns")
	if err != nil || len(hist) != 1 || hist[0].Chart.Metadata.Version != "1.15.2" {
		t.Errorf("helm history: %v %v", hist, err)
	}

	t.Run("driftDetection corrects a kubectl edit", func(t *testing.T) {
		correctedEdit(t, c, hr, `{"mode":"enabled"}`, func(d *appsv1.Deployment) {
			d.Spec.Template.Spec.Containers[0].Args = []string{"--provider=edited-by-hand"}
		})
	})

	t.Run("driftDetection ignore rules keep what another owner sets", func(t *testing.T) {
		// An autoscaler's replicas and a hand edit of the args: the edit
		// is undone, the replicas stay.
		three := int32(3)
		got, d := correctedEdit(t, c, hr, `{"mode":"enabled","ignore":[{"paths":["/spec/replicas"],"target":{"kind":"Deployment"}}]}`,
			func(d *appsv1.Deployment) {
				d.Spec.Replicas = &three
				d.Spec.Template.Spec.Containers[0].Args = []string{"--provider=edited-again"}
			})
		if d.Spec.Replicas == nil || *d.Spec.Replicas != 3 {
			t.Errorf("replicas %v: the ignored field was overwritten by the correction", d.Spec.Replicas)
		}
		if cond := meta.FindStatusCondition(got.Status.Conditions, "UnsupportedFields"); cond != nil {
			t.Errorf("ignore rules reported unsupported: %s", cond.Message)
		}
	})

	t.Run("a failed upgrade is rolled back", func(t *testing.T) {
		patch := client.RawPatch(types.MergePatchType, []byte(`{"spec":{"values":{"replicaCount":"not-a-number","provider":"gcp"},"upgrade":{"remediation":{"retries":1}}}}`))
		if err := c.Patch(ctx, hr, patch); err != nil {
			t.Fatal(err)
		}
		got := waitHelmRelease(t, c, "platform-dns", "external-dns", "remediated", func(h *helmv2.HelmRelease) bool {
			return meta.IsStatusConditionTrue(h.Status.Conditions, "Remediated")
		})
		if r := meta.FindStatusCondition(got.Status.Conditions, flux.ReadyCondition); r == nil || r.Status != metav1.ConditionFalse || r.Reason != "UpgradeFailed" {
			t.Errorf("Ready: %+v", r)
		}
		if len(got.Status.History) == 0 || got.Status.History[0].Status != "deployed" || got.Status.History[0].Version < 3 {
			t.Errorf("history %+v: want the rollback deployed on top", got.Status.History)
		}
		if args := deploymentArgs(c, "platform-dns", "external-dns"); args != "--provider=aws --policy=sync" {
			t.Errorf("after rollback args %q, want the last good release's", args)
		}
	})
}

// correctedEdit sets the seed release's driftDetection, edits its
// Deployment by hand with edit, asks for a reconcile and waits until the
// edited args are corrected; it returns the release and the Deployment.
func correctedEdit(t *testing.T, c client.Client, hr *helmv2.HelmRelease, driftDetection string, edit func(*appsv1.Deployment)) (*helmv2.HelmRelease, *appsv1.Deployment) {
	t.Helper()
	ctx := context.Background()
	if err := c.Patch(ctx, hr, rawMerge([]byte(`{"spec":{"driftDetection":`+driftDetection+`}}`))); err != nil {
		t.Fatal(err)
	}
	got := waitHelmRelease(t, c, "platform-dns", "external-dns", "observed", func(h *helmv2.HelmRelease) bool {
		return h.Status.ObservedGeneration == h.Generation && isReady(h.Status.Conditions)
	})
	key := types.NamespacedName{Namespace: "platform-dns", Name: "external-dns"}
	d := &appsv1.Deployment{}
	// The Deployment's controller may be writing its status after the
	// last correction's rollout: edit again on a conflict, as kubectl
	// edit would ask the user to.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := c.Get(ctx, key, d); err != nil {
			return err
		}
		edit(d)
		return c.Update(ctx, d, client.FieldOwner("kubectl-edit"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Patch(ctx, hr, rawMerge([]byte(`{"metadata":{"annotations":{"`+ReconcileRequestAnnotation+`":"`+t.Name()+`"}}}`))); err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		return deploymentArgs(c, "platform-dns", "external-dns") == "--provider=aws --policy=sync", nil
	})
	if err != nil {
		t.Fatalf("drift not corrected: args %q", deploymentArgs(c, "platform-dns", "external-dns"))
	}
	if err := c.Get(ctx, key, d); err != nil {
		t.Fatal(err)
	}
	return got, d
}

// TestHelmReleaseValuesFromDependsOnUninstall: valuesFrom merges a
// ConfigMap's values.yaml and a Secret key set at a target path;
// dependsOn holds a release until its dependency is Ready; deleting a
// HelmRelease uninstalls its release.
func TestHelmReleaseValuesFromDependsOnUninstall(t *testing.T) {
	c, _ := setup(t)
	ctx := context.Background()
	ns := clustertest.Namespace(t)
	url := helmRepoServer(t, "1.16.0")
	chartsRepository(t, c, ns, url)
	create(t, c, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "app-values", Namespace: ns},
		Data: map[string]string{"values.yaml": "provider: from-configmap\npolicy: upsert\n"}})
	create(t, c, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "app-secret", Namespace: ns},
		StringData: map[string]string{"policy": "sync-from-secret"}})
	chart := helmv2.HelmChartTemplate{Spec: helmv2.HelmChartTemplateSpec{Chart: "external-dns",
		SourceRef: helmv2.CrossNamespaceObjectReference{Kind: "HelmRepository", Name: "charts"}}}
	app := &helmv2.HelmRelease{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: ns},
		Spec: helmv2.HelmReleaseSpec{Chart: &chart, Interval: metav1.Duration{Duration: 10 * time.Minute},
			DependsOn: []helmv2.DependencyReference{{Name: "base"}},
			ValuesFrom: []helmv2.ValuesReference{{Kind: "ConfigMap", Name: "app-values"},
				{Kind: "Secret", Name: "app-secret", ValuesKey: "policy", TargetPath: "policy"},
				{Kind: "ConfigMap", Name: "absent", Optional: true}}}}
	create(t, c, app)
	waitHelmRelease(t, c, ns, "app", "waiting for base", func(h *helmv2.HelmRelease) bool {
		r := meta.FindStatusCondition(h.Status.Conditions, flux.ReadyCondition)
		return r != nil && r.Reason == flux.DependencyNotReadyReason
	})
	if args := deploymentArgs(c, ns, "app"); args != "" {
		t.Fatalf("app installed before its dependency: %q", args)
	}
	create(t, c, &helmv2.HelmRelease{ObjectMeta: metav1.ObjectMeta{Name: "base", Namespace: ns},
		Spec: helmv2.HelmReleaseSpec{Chart: &chart, Interval: metav1.Duration{Duration: 10 * time.Minute}}})
	waitHelmRelease(t, c, ns, "app", "Ready", func(h *helmv2.HelmRelease) bool { return isReady(h.Status.Conditions) })
	if args := deploymentArgs(c, ns, "app"); args != "--provider=from-configmap --policy=sync-from-secret" {
		t.Errorf("args %q", args)
	}

	if err := c.Delete(ctx, app); err != nil {
		t.Fatal(err)
	}
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		gone := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "app"}, &helmv2.HelmRelease{}) != nil &&
			c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "app"}, &appsv1.Deployment{}) != nil &&
			c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "sh.helm.release.v1.app.v1"}, &corev1.Secret{}) != nil
		return gone, nil
	})
	if err != nil {
		t.Fatal("deleting the HelmRelease did not uninstall its release within a minute")
	}
	if deploymentArgs(c, ns, "base") == "" {
		t.Error("uninstalling app touched base")
	}
}

// TestHelmReleaseInstallRemediation: a failed install is uninstalled and
// retried install.remediation.retries times, then stalls until the spec
// changes; an unknown field is named.
func TestHelmReleaseInstallRemediation(t *testing.T) {
	c, _ := setup(t)
	ns := clustertest.Namespace(t)
	url := helmRepoServer(t, "1.16.0")
	chartsRepository(t, c, ns, url)
	bad := &helmv2.HelmRelease{ObjectMeta: metav1.ObjectMeta{Name: "bad", Namespace: ns},
		Spec: helmv2.HelmReleaseSpec{Chart: &helmv2.HelmChartTemplate{Spec: helmv2.HelmChartTemplateSpec{Chart: "external-dns",
			SourceRef: helmv2.CrossNamespaceObjectReference{Kind: "HelmRepository", Name: "charts"}}},
			Interval: metav1.Duration{Duration: 10 * time.Minute},
			Values:   &apiextensionsv1.JSON{Raw: []byte(`{"replicaCount":"not-a-number"}`)},
			Install:  &helmv2.Install{Remediation: &helmv2.Remediation{Retries: 1}}}}
	create(t, c, bad)
	got := waitHelmRelease(t, c, ns, "bad", "stalled", func(h *helmv2.HelmRelease) bool {
		return meta.IsStatusConditionTrue(h.Status.Conditions, flux.StalledCondition)
	})
	if got.Status.InstallFailures != 2 {
		t.Errorf("installFailures %d, want 2 (one try, one retry)", got.Status.InstallFailures)
	}
	if r := meta.FindStatusCondition(got.Status.Conditions, "Remediated"); r == nil || r.Reason != "UninstallSucceeded" {
		t.Errorf("Remediated: %+v", r)
	}
	if err := c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "sh.helm.release.v1.bad.v1"}, &corev1.Secret{}); err == nil {
		t.Error("the failed release was not uninstalled")
	}
}

// TestHelmReleaseChartRef: a HelmChart resolves the version range, and a
// HelmRelease naming it with chartRef installs that version.
func TestHelmReleaseChartRef(t *testing.T) {
	c, _ := setup(t)
	ns := clustertest.Namespace(t)
	url := helmRepoServer(t, "1.15.0", "1.15.2", "1.16.0")
	chartsRepository(t, c, ns, url)
	create(t, c, &sourcev1.HelmChart{ObjectMeta: metav1.ObjectMeta{Name: "external-dns", Namespace: ns},
		Spec: sourcev1.HelmChartSpec{Chart: "external-dns", Version: "~1.15.0", Interval: metav1.Duration{Duration: 10 * time.Minute},
			SourceRef: sourcev1.LocalHelmChartSourceReference{Kind: "HelmRepository", Name: "charts"}}})
	create(t, c, &helmv2.HelmRelease{ObjectMeta: metav1.ObjectMeta{Name: "dns", Namespace: ns},
		Spec: helmv2.HelmReleaseSpec{ChartRef: &helmv2.CrossNamespaceObjectReference{Kind: "HelmChart", Name: "external-dns"},
			Interval: metav1.Duration{Duration: 10 * time.Minute}}})
	hr := waitHelmRelease(t, c, ns, "dns", "Ready", func(h *helmv2.HelmRelease) bool { return isReady(h.Status.Conditions) })
	if hr.Status.LastAttemptedRevision != "1.15.2" || len(hr.Status.History) != 1 || hr.Status.History[0].ChartVersion != "1.15.2" {
		t.Errorf("status: revision %q history %+v, want 1.15.2", hr.Status.LastAttemptedRevision, hr.Status.History)
	}
	if cond := meta.FindStatusCondition(hr.Status.Conditions, "UnsupportedFields"); cond != nil {
		t.Errorf("chartRef reported unsupported: %s", cond.Message)
	}
}

// TestHelmReleaseTest: spec.test runs the chart's test hooks after an
// install; a passing test is TestSuccess, a failing one makes the
// release Ready=False TestFailed.
func TestHelmReleaseTest(t *testing.T) {
	c, _ := setup(t)
	ns := clustertest.Namespace(t)
	url := helmRepoServer(t, "1.16.0")
	chartsRepository(t, c, ns, url)
	release := func(name, values string) {
		create(t, c, &helmv2.HelmRelease{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: helmv2.HelmReleaseSpec{Chart: &helmv2.HelmChartTemplate{Spec: helmv2.HelmChartTemplateSpec{Chart: "external-dns",
				SourceRef: helmv2.CrossNamespaceObjectReference{Kind: "HelmRepository", Name: "charts"}}},
				Interval: metav1.Duration{Duration: 10 * time.Minute}, Values: &apiextensionsv1.JSON{Raw: []byte(values)},
				Test: &helmv2.Test{Enable: true}, Timeout: &metav1.Duration{Duration: time.Minute}}})
	}
	release("passes", `{}`)
	release("fails", `{"testFails":true}`)
	ok := waitHelmRelease(t, c, ns, "passes", "tested", func(h *helmv2.HelmRelease) bool {
		return meta.IsStatusConditionTrue(h.Status.Conditions, "TestSuccess")
	})
	if !isReady(ok.Status.Conditions) {
		t.Errorf("passing test, not Ready: %+v", ok.Status.Conditions)
	}
	bad := waitHelmRelease(t, c, ns, "fails", "test failed", func(h *helmv2.HelmRelease) bool {
		r := meta.FindStatusCondition(h.Status.Conditions, flux.ReadyCondition)
		return r != nil && r.Reason == "TestFailed"
	})
	if meta.IsStatusConditionTrue(bad.Status.Conditions, "TestSuccess") {
		t.Error("a failing test reported success")
	}
}
