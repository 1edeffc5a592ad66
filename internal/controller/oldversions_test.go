package controller

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	helmv2 "converge.dev/converge/internal/api/fluxcd/helm/v2"
	kustomizev1 "converge.dev/converge/internal/api/fluxcd/kustomize/v1"
	"converge.dev/converge/internal/clustertest"
	"converge.dev/converge/internal/gittest"
)

// TestOlderFluxVersions: manifests written for Flux's older API versions
// (source v1beta2, helm v2beta1, kustomize v1beta2), as many
// repositories still have them, are served and reconciled; a field only
// the old version had is named in UnsupportedFields. Before, the API
// server refused them: the versions did not exist.
func TestOlderFluxVersions(t *testing.T) {
	c, repo := setup(t)
	ctx := context.Background()
	ns := clustertest.Namespace(t)
	repo.Commit("old", map[string]string{"old/cm.yaml": configMapYAML("from-v1beta2", "v1")})
	repo.Publish()
	url := helmRepoServer(t, "1.16.0")
	manifests := `apiVersion: source.toolkit.fluxcd.io/v1beta2
kind: HelmRepository
metadata: {name: charts, namespace: NS}
spec: {interval: 10m, url: "URL"}
---
apiVersion: helm.toolkit.fluxcd.io/v2beta1
kind: HelmRelease
metadata: {name: dns, namespace: NS}
spec:
  interval: 10m
  chart:
    spec:
      chart: external-dns
      valuesFile: values.yaml
      sourceRef: {kind: HelmRepository, name: charts}
  values: {provider: old-api}
---
apiVersion: source.toolkit.fluxcd.io/v1beta2
kind: GitRepository
metadata: {name: old, namespace: NS}
spec: {interval: 1m, url: "GIT", ref: {branch: main}, gitImplementation: go-git}
---
apiVersion: kustomize.toolkit.fluxcd.io/v1beta2
kind: Kustomization
metadata: {name: old, namespace: NS}
spec:
  interval: 1m
  path: ./old
  prune: true
  targetNamespace: NS
  validation: client
  sourceRef: {kind: GitRepository, name: old}
`
	manifests = strings.NewReplacer("NS", ns, "URL", url, "GIT", gittest.FileURL(repo.Bare)).Replace(manifests)
	for _, doc := range strings.Split(manifests, "\n---\n") {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			t.Fatal(err)
		}
		if err := c.Create(ctx, u); err != nil {
			t.Fatalf("create %s %s: %v", u.GetAPIVersion(), u.GetKind(), err)
		}
	}
	// The old version is served with a warning that names the one to use,
	// which kubectl prints on every apply.
	crd := &unstructured.Unstructured{}
	crd.SetGroupVersionKind(schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"})
	if err := c.Get(ctx, types.NamespacedName{Name: "helmreleases.helm.toolkit.fluxcd.io"}, crd); err != nil {
		t.Fatal(err)
	}
	versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	warned := false
	for _, v := range versions {
		m := v.(map[string]any)
		if m["name"] == "v2beta1" && m["served"] == true && m["deprecated"] == true &&
			strings.HasSuffix(fmt.Sprint(m["deprecationWarning"]), "use helm.toolkit.fluxcd.io/v2") {
			warned = true
		}
	}
	if !warned {
		t.Errorf("helm.toolkit.fluxcd.io/v2beta1 is not served as deprecated with a warning naming v2: %v", versions)
	}
	hr := waitHelmRelease(t, c, ns, "dns", "Ready", func(h *helmv2.HelmRelease) bool { return isReady(h.Status.Conditions) })
	if args := deploymentArgs(c, ns, "dns"); !strings.Contains(args, "--provider=old-api") {
		t.Errorf("args %q: the v2beta1 values did not reach the chart", args)
	}
	if u := meta.FindStatusCondition(hr.Status.Conditions, "UnsupportedFields"); u == nil || !strings.Contains(u.Message, "spec.chart.spec.valuesFile") {
		t.Errorf("UnsupportedFields %+v, want spec.chart.spec.valuesFile named", u)
	}
	ks := waitKustomization(t, c, ns, "old", "Ready", func(k *kustomizev1.Kustomization) bool { return isReady(k.Status.Conditions) })
	if configMapValue(c, ns, "from-v1beta2") != "v1" {
		t.Error("the v1beta2 Kustomization applied nothing")
	}
	if u := meta.FindStatusCondition(ks.Status.Conditions, "UnsupportedFields"); u == nil || !strings.Contains(u.Message, "spec.validation") {
		t.Errorf("UnsupportedFields %+v, want spec.validation named", u)
	}
}
