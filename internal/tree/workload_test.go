package tree

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"converge.dev/converge/internal/health"
	"converge.dev/converge/internal/object"
)

// TestWorkloadTransformKeepsHealth: for every case of gitops-engine's
// built-in health data whose kind Grow reads, the health
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

// BenchmarkWorkloadCachePod prints what the workload cache holds per Pod
// against the whole Pod an ordinary informer would hold (heap bytes of
// 1,000 decoded objects, managedFields already gone):
//
//	go test ./internal/tree -run '^$' -bench WorkloadCachePod -benchtime 1x
func BenchmarkWorkloadCachePod(b *testing.B) {
	data, err := os.ReadFile(filepath.Join("testdata", "pod.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	m, err := object.DecodeMap(data)
	if err != nil {
		b.Fatal(err)
	}
	pod := &unstructured.Unstructured{Object: m}
	const n = 1000
	heap := func(keep func() any) uint64 {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		held := keep()
		runtime.GC()
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(held)
		return (after.HeapAlloc - before.HeapAlloc) / n
	}
	for range b.N {
		whole := heap(func() any {
			out := make([]*unstructured.Unstructured, n)
			for i := range out {
				out[i] = pod.DeepCopy()
			}
			return out
		})
		kept := heap(func() any {
			out := make([]any, n)
			for i := range out {
				out[i], _ = WorkloadTransform(pod.DeepCopy())
			}
			return out
		})
		b.ReportMetric(float64(whole), "whole-B/pod")
		b.ReportMetric(float64(kept), "kept-B/pod")
	}
}
