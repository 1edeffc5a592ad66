package server

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"converge.dev/converge/internal/health"
	"converge.dev/converge/internal/object"
)

// TestWorkloadTransformKeepsHealth: for every case of gitops-engine's
// built-in health data whose kind the workload cache holds, the health
// of the stripped object is the health of the whole one, and what is
// kept is smaller.
func TestWorkloadTransformKeepsHealth(t *testing.T) {
	dir := filepath.Join("..", "..", "..", "shared", "conformance", "builtin-health")
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("conformance data in %s: %v (it lives in ../shared/conformance beside the checkout)", dir, err)
	}
	cases, whole, kept := 0, 0, 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		m, err := object.DecodeMap(data)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		full := &unstructured.Unstructured{Object: m}
		gvk := full.GroupVersionKind()
		if _, ok := workloadKinds[schema.GroupKind{Group: gvk.Group, Kind: gvk.Kind}]; !ok {
			continue
		}
		cases++
		out, err := WorkloadTransform(full.DeepCopy())
		if err != nil {
			t.Fatal(err)
		}
		stripped := out.(*unstructured.Unstructured)
		want, wok := health.Assess(full)
		got, gok := health.Assess(stripped)
		if want != got || wok != gok {
			t.Errorf("%s: stripped %v %+v, whole %v %+v", filepath.Base(f), gok, got, wok, want)
		}
		a, _ := json.Marshal(full.Object)
		b, _ := json.Marshal(stripped.Object)
		whole, kept = whole+len(a), kept+len(b)
	}
	if cases < 30 {
		t.Fatalf("only %d cases of workload kinds", cases)
	}
	if kept >= whole {
		t.Errorf("kept %d bytes of %d", kept, whole)
	}
	t.Logf("%d cases: %d bytes of JSON kept of %d", cases, kept, whole)
}
