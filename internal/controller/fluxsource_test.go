package controller

import (
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kustomizev1 "converge.dev/converge/internal/api/fluxcd/kustomize/v1"
	"converge.dev/converge/internal/clustertest"
	"converge.dev/converge/internal/dialect/flux"
)

// TestFluxUnservedSourceKind: a Kustomization whose sourceRef is a Flux
// source kind converge does not serve is stalled with a message naming
// the kind; before, it said "Source artifact not found", as if the
// Bucket were missing.
func TestFluxUnservedSourceKind(t *testing.T) {
	c, _ := setup(t)
	ns := clustertest.Namespace(t)
	for _, kind := range []string{"Bucket", "ExternalArtifact"} {
		name := strings.ToLower(kind)
		create(t, c, &kustomizev1.Kustomization{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: kustomizev1.KustomizationSpec{SourceRef: kustomizev1.CrossNamespaceSourceReference{Kind: kind, Name: "artifacts"},
				Path: "./", Prune: true, Interval: metav1.Duration{Duration: time.Minute}}})
		got := waitKustomization(t, c, ns, name, "stalled", func(k *kustomizev1.Kustomization) bool {
			return meta.IsStatusConditionTrue(k.Status.Conditions, flux.StalledCondition)
		})
		want := `spec.sourceRef.kind "` + kind + `" is not supported by converge`
		if msg := readyMessage(got.Status.Conditions); !strings.Contains(msg, want) {
			t.Errorf("%s: Ready says %q, want it to contain %q", kind, msg, want)
		}
	}
}
