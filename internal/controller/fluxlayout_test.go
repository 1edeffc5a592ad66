package controller

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kustomizev1 "converge.dev/converge/internal/api/fluxcd/kustomize/v1"
	sourcev1 "converge.dev/converge/internal/api/fluxcd/source/v1"
	"converge.dev/converge/internal/clustertest"
	"converge.dev/converge/internal/gittest"
)

// TestFluxPlainPathWithKustomizeSubfolders: the layout of Flux's
// fleet repositories. A plain path whose sub-folder holds its own
// kustomization.yaml builds that sub-folder with kustomize, as Flux's
// generated kustomization does; before, converge read the sub-folder's
// kustomization.yaml as a manifest and failed with "Kustomization: field
// metadata.name is missing". The ignore pattern written with "./"
// leaves flux-system out, as it does in Flux.
func TestFluxPlainPathWithKustomizeSubfolders(t *testing.T) {
	c, repo := setup(t)
	ns := clustertest.Namespace(t)
	repo.Commit("fleet", map[string]string{
		"clusters/production/apps.yaml":                                configMapYAML("apps", "v1"),
		"clusters/production/infra/kustomization.yaml":                 "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamePrefix: infra-\nresources: [cm.yaml]\n",
		"clusters/production/infra/cm.yaml":                            configMapYAML("config", "v1"),
		"clusters/production/infra/unlisted.yaml":                      configMapYAML("unlisted", "v1"),
		"clusters/production/flux-system/kustomization.yaml":           "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [gotk-sync.yaml]\n",
		"clusters/production/flux-system/gotk-sync.yaml":               configMapYAML("flux-system", "v1"),
		"clusters/production/nested/more/deeper.yaml":                  configMapYAML("deeper", "v1"),
		"clusters/production/nested/more/kustomize/kustomization.yaml": "resources: [cm.yaml]\nnameSuffix: -k\n",
		"clusters/production/nested/more/kustomize/cm.yaml":            configMapYAML("nested", "v1"),
	})
	repo.Publish()
	ignore := "./clusters/**/flux-system/\n"
	create(t, c, &sourcev1.GitRepository{ObjectMeta: metav1.ObjectMeta{Name: "fleet", Namespace: ns},
		Spec: sourcev1.GitRepositorySpec{URL: gittest.FileURL(repo.Bare), Interval: metav1.Duration{Duration: time.Minute}, Ignore: &ignore}})
	create(t, c, &kustomizev1.Kustomization{ObjectMeta: metav1.ObjectMeta{Name: "fleet", Namespace: ns},
		Spec: kustomizev1.KustomizationSpec{SourceRef: kustomizev1.CrossNamespaceSourceReference{Kind: "GitRepository", Name: "fleet"},
			Path: "./clusters/production", TargetNamespace: ns, Prune: true, Interval: metav1.Duration{Duration: time.Minute}}})
	waitKustomization(t, c, ns, "fleet", "Ready", func(k *kustomizev1.Kustomization) bool { return isReady(k.Status.Conditions) })
	for name, want := range map[string]string{
		"apps": "v1", "infra-config": "v1", "deeper": "v1", "nested-k": "v1",
		"unlisted": "", "config": "", "flux-system": "",
	} {
		if got := configMapValue(c, ns, name); got != want {
			t.Errorf("ConfigMap %s: value %q, want %q", name, got, want)
		}
	}
}
