package controller

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kustomizev1 "converge.dev/converge/internal/api/fluxcd/kustomize/v1"
	sourcev1 "converge.dev/converge/internal/api/fluxcd/source/v1"
	"converge.dev/converge/internal/clustertest"
	"converge.dev/converge/internal/dialect/flux"
	"converge.dev/converge/internal/gittest"
)

// slowIndex serves a Helm repository whose index answers only after
// delay, so that a HelmRelease applied with its HelmRepository surely
// sees the repository not ready first.
func slowIndex(t *testing.T, target string, delay time.Duration) string {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "index.yaml") {
			time.Sleep(delay)
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestFluxWaitThroughRetries: a Kustomization with wait: true that
// applies a HelmRepository and a HelmRelease together becomes Ready once
// the release is installed. The release is first Ready=False with
// Reconciling=True (its repository is not ready yet): Flux's wait reads
// that as in progress. Before, the Kustomization failed at once with
// "HelmRelease ... is Degraded" and stayed failed for its interval.
func TestFluxWaitThroughRetries(t *testing.T) {
	c, repo := setup(t)
	ns := clustertest.Namespace(t)
	url := slowIndex(t, helmRepoServer(t, "1.16.0"), 3*time.Second)
	repo.Commit("wait", map[string]string{
		"wait/repository.yaml": "apiVersion: source.toolkit.fluxcd.io/v1\nkind: HelmRepository\nmetadata: {name: charts}\n" +
			"spec: {url: \"" + url + "\", interval: 10m}\n",
		"wait/release.yaml": "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata: {name: dns}\n" +
			"spec:\n  interval: 10m\n  chart:\n    spec: {chart: external-dns, sourceRef: {kind: HelmRepository, name: charts}}\n",
	})
	repo.Publish()
	create(t, c, &sourcev1.GitRepository{ObjectMeta: metav1.ObjectMeta{Name: "wait", Namespace: ns},
		Spec: sourcev1.GitRepositorySpec{URL: gittest.FileURL(repo.Bare), Interval: metav1.Duration{Duration: time.Minute}}})
	create(t, c, &kustomizev1.Kustomization{ObjectMeta: metav1.ObjectMeta{Name: "wait", Namespace: ns},
		Spec: kustomizev1.KustomizationSpec{SourceRef: kustomizev1.CrossNamespaceSourceReference{Kind: "GitRepository", Name: "wait"},
			Path: "./wait", TargetNamespace: ns, Prune: true, Wait: true, Interval: metav1.Duration{Duration: 10 * time.Minute},
			Timeout: &metav1.Duration{Duration: time.Minute}}})
	var failures []string
	waitKustomization(t, c, ns, "wait", "Ready", func(k *kustomizev1.Kustomization) bool {
		if r := meta.FindStatusCondition(k.Status.Conditions, flux.ReadyCondition); r != nil && r.Status == metav1.ConditionFalse && strings.Contains(r.Message, "HelmRelease") {
			failures = append(failures, r.Message)
		}
		return isReady(k.Status.Conditions)
	})
	if len(failures) > 0 {
		t.Errorf("the Kustomization failed while its HelmRelease was being retried: %s", failures[0])
	}
	if deploymentArgs(c, ns, "dns") == "" {
		t.Error("the HelmRelease did not install")
	}
}
