package controller

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	helmv2 "converge.dev/converge/internal/api/fluxcd/helm/v2"
	sourcev1 "converge.dev/converge/internal/api/fluxcd/source/v1"
	"converge.dev/converge/internal/clustertest"
)

// crdChart writes a chart whose crds/ folder holds one CRD of group; the
// CRD's description carries note, so a replace can be seen.
func crdChart(t *testing.T, group, note string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "with-crd")
	crd := fmt.Sprintf(`apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gadgets.%[1]s
spec:
  group: %[1]s
  names: {kind: Gadget, plural: gadgets, singular: gadget}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        description: %[2]s
        x-kubernetes-preserve-unknown-fields: true
`, group, note)
	files := map[string]string{
		"Chart.yaml":        "apiVersion: v2\nname: with-crd\nversion: 0.1.0\n",
		"crds/gadget.yaml":  crd,
		"templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\ndata:\n  note: " + note + "\n",
		"templates/hook.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-hook\n  annotations:\n" +
			"    helm.sh/hook: post-install,post-upgrade\ndata:\n  note: " + note + "\n",
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestHelmReleaseCreateNamespaceAndCRDs: install.createNamespace makes
// the target namespace (before, the field was pruned by converge's CRD
// and the install failed on the missing namespace, saying nothing of
// why); the chart's CRDs are created on install and, with upgrade.crds
// CreateReplace, replaced on upgrade.
func TestHelmReleaseCreateNamespaceAndCRDs(t *testing.T) {
	c, _ := setup(t)
	ctx := context.Background()
	ns := clustertest.Namespace(t)
	target := ns + "-new"
	group := strings.ReplaceAll(ns, "-", "") + ".test.converge.dev"
	t.Cleanup(func() {
		_ = c.Delete(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: target}})
		crd := &unstructured.Unstructured{}
		crd.SetGroupVersionKind(apiextensionsv1.SchemeGroupVersion.WithKind("CustomResourceDefinition"))
		crd.SetName("gadgets." + group)
		_ = c.Delete(context.Background(), crd)
	})
	first := chartServer(t, crdChart(t, group, "first"), "0.1.0")
	chartsRepository(t, c, ns, first)
	hr := &helmv2.HelmRelease{ObjectMeta: metav1.ObjectMeta{Name: "gadgets", Namespace: ns},
		Spec: helmv2.HelmReleaseSpec{Chart: &helmv2.HelmChartTemplate{Spec: helmv2.HelmChartTemplateSpec{Chart: "with-crd", Version: "0.1.0",
			SourceRef: helmv2.CrossNamespaceObjectReference{Kind: "HelmRepository", Name: "charts"}}},
			Interval: metav1.Duration{Duration: 10 * time.Minute}, TargetNamespace: target, ReleaseName: "gadgets",
			Install: &helmv2.Install{CreateNamespace: true}}}
	create(t, c, hr)
	got := waitHelmRelease(t, c, ns, "gadgets", "Ready", func(h *helmv2.HelmRelease) bool { return isReady(h.Status.Conditions) })
	cm := &corev1.ConfigMap{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: target, Name: "gadgets"}, cm); err != nil || cm.Data["note"] != "first" {
		t.Fatal("the release's ConfigMap is not in the created namespace")
	}
	crd := &unstructured.Unstructured{}
	crd.SetGroupVersionKind(apiextensionsv1.SchemeGroupVersion.WithKind("CustomResourceDefinition"))
	if err := c.Get(ctx, types.NamespacedName{Name: "gadgets." + group}, crd); err != nil {
		t.Fatalf("the chart's CRD was not created on install: %v", err)
	}
	// The inventory is Flux's: the release's objects placed in its
	// namespace, and the chart's CRDs; not the hook.
	var inv []string
	if got.Status.Inventory != nil {
		for _, e := range got.Status.Inventory.Entries {
			inv = append(inv, e.ID+" "+e.Version)
		}
	}
	want := []string{"_gadgets." + group + "_apiextensions.k8s.io_CustomResourceDefinition v1", target + "_gadgets__ConfigMap v1"}
	if strings.Join(inv, ",") != strings.Join(want, ",") {
		t.Errorf("inventory %q, want %q", inv, want)
	}
	if err := c.Get(ctx, types.NamespacedName{Namespace: target, Name: "gadgets-hook"}, &corev1.ConfigMap{}); err != nil {
		t.Errorf("the post-install hook did not run: %v", err)
	}
	for _, cond := range got.Status.Conditions {
		if cond.Type == "UnsupportedFields" {
			t.Errorf("UnsupportedFields: %s", cond.Message)
		}
	}

	// Version 0.2.0 changes the CRD; upgrade.crds CreateReplace applies it.
	second := chartServer(t, crdChart(t, group, "second"), "0.2.0")
	repo := &sourcev1.HelmRepository{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "charts"}, repo); err != nil {
		t.Fatal(err)
	}
	repo.Spec.URL = second
	if err := c.Update(ctx, repo); err != nil {
		t.Fatal(err)
	}
	updateRelease(t, c, ns, "gadgets", func(hr *helmv2.HelmRelease) {
		hr.Spec.Chart.Spec.Version = "0.2.0"
		hr.Spec.Upgrade = &helmv2.Upgrade{CRDs: "CreateReplace"}
	})
	waitHelmRelease(t, c, ns, "gadgets", "upgraded", func(h *helmv2.HelmRelease) bool {
		return isReady(h.Status.Conditions) && h.Status.LastAttemptedRevision == "0.2.0" && h.Status.ObservedGeneration == h.Generation
	})
	if err := c.Get(ctx, types.NamespacedName{Name: "gadgets." + group}, crd); err != nil {
		t.Fatal(err)
	}
	versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	d, _, _ := unstructured.NestedString(versions[0].(map[string]any), "schema", "openAPIV3Schema", "description")
	if d != "second" {
		t.Errorf("CRD description %q after an upgrade with crds CreateReplace, want second", d)
	}

	// A policy Flux does not define is refused, not guessed at.
	updateRelease(t, c, ns, "gadgets", func(hr *helmv2.HelmRelease) { hr.Spec.Upgrade.CRDs = "Replace" })
	waitHelmRelease(t, c, ns, "gadgets", "refused", func(h *helmv2.HelmRelease) bool {
		return strings.Contains(readyMessage(h.Status.Conditions), `spec.upgrade.crds: "Replace" is not a CRD policy`)
	})
}

// updateRelease changes a HelmRelease, again on a conflict with the
// controller's own writes.
func updateRelease(t *testing.T, c client.Client, ns, name string, change func(*helmv2.HelmRelease)) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		hr := &helmv2.HelmRelease{}
		if err := c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, hr); err != nil {
			return err
		}
		change(hr)
		return c.Update(context.Background(), hr)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestHelmReleaseRetryOnFailure: with install.strategy RetryOnFailure a
// failed install is left as it is (no uninstall) and tried again after
// retryInterval, past the remediation's retries, never stalled, as
// Flux documents the strategy.
func TestHelmReleaseRetryOnFailure(t *testing.T) {
	c, _ := setup(t)
	ctx := context.Background()
	ns := clustertest.Namespace(t)
	chartsRepository(t, c, ns, helmRepoServer(t, "1.16.0"))
	create(t, c, &helmv2.HelmRelease{ObjectMeta: metav1.ObjectMeta{Name: "retry", Namespace: ns},
		Spec: helmv2.HelmReleaseSpec{Chart: &helmv2.HelmChartTemplate{Spec: helmv2.HelmChartTemplateSpec{Chart: "external-dns",
			SourceRef: helmv2.CrossNamespaceObjectReference{Kind: "HelmRepository", Name: "charts"}}},
			Interval: metav1.Duration{Duration: 10 * time.Minute},
			Values:   &apiextensionsv1.JSON{Raw: []byte(`{"replicaCount":"not-a-number"}`)},
			Install: &helmv2.Install{Remediation: &helmv2.Remediation{Retries: 1},
				Strategy: &helmv2.Strategy{Name: "RetryOnFailure", RetryInterval: &metav1.Duration{Duration: time.Second}}}}})
	got := waitHelmRelease(t, c, ns, "retry", "failed three times", func(h *helmv2.HelmRelease) bool { return h.Status.InstallFailures >= 3 })
	if meta.IsStatusConditionTrue(got.Status.Conditions, "Stalled") {
		t.Error("stalled: RetryOnFailure retries for ever")
	}
	if r := meta.FindStatusCondition(got.Status.Conditions, "Remediated"); r != nil {
		t.Errorf("remediated (%s): RetryOnFailure does not remediate", r.Reason)
	}
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "sh.helm.release.v1.retry.v1"}, &corev1.Secret{}); err != nil {
		t.Errorf("the failed release was uninstalled: %v", err)
	}
}
