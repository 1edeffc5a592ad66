package health

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestNoStatusIsNotInvented: a reconciled kind without status yet is
// Progressing, but a configuration kind of the same operator, which
// never gets a status, has no health: calling it Progressing would hold
// a sync wave forever.
func TestNoStatusIsNotInvented(t *testing.T) {
	for _, tc := range []struct {
		apiVersion, kind string
		want             Status // "" means no health
	}{
		{"cert-manager.io/v1", "Certificate", Progressing},
		{"monitoring.coreos.com/v1", "Prometheus", Progressing},
		{"monitoring.coreos.com/v1", "ServiceMonitor", ""},
		{"monitoring.coreos.com/v1", "PrometheusRule", ""},
		{"gateway.networking.k8s.io/v1beta1", "ReferenceGrant", ""},
		{"keda.sh/v1alpha1", "TriggerAuthentication", ""},
		{"argoproj.io/v1alpha1", "AppProject", ""},
		{"snapshot.storage.k8s.io/v1", "VolumeSnapshotClass", ""},
		{"example.com/v1", "Widget", ""},
		{"storage.cnrm.cloud.google.com/v1beta1", "StorageBucket", Progressing},
	} {
		obj := &unstructured.Unstructured{Object: map[string]any{"apiVersion": tc.apiVersion, "kind": tc.kind,
			"metadata": map[string]any{"name": "x"}}}
		got, ok := Assess(obj)
		if tc.want == "" && ok {
			t.Errorf("%s %s without status: %s, want no health", tc.apiVersion, tc.kind, got.Status)
		}
		if tc.want != "" && (!ok || got.Status != tc.want) {
			t.Errorf("%s %s without status: %v %s, want %s", tc.apiVersion, tc.kind, ok, got.Status, tc.want)
		}
	}
}
