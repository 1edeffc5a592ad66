package engine

import (
	"fmt"
	"runtime"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"converge.dev/converge/internal/object"
)

// TestPredictionCacheKeepsWhatResyncsUse: predictions every resync asks
// for survive any number of others passing through; one nobody asked
// for during a whole generation is gone.
func TestPredictionCacheKeepsWhatResyncsUse(t *testing.T) {
	c := predictionCache{newGenerations[string, prediction](predictionGeneration)}
	obj := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "a"}}}
	for i := range 1000 {
		c.put(fmt.Sprintf("hot-%d", i), obj)
	}
	c.put("stale", obj)
	for round := range 5 {
		for i := range 40000 {
			c.put(fmt.Sprintf("cold-%d-%d", round, i), obj)
		}
		for i := range 1000 {
			if c.get(fmt.Sprintf("hot-%d", i)) == nil {
				t.Fatalf("round %d: hot-%d was dropped", round, i)
			}
		}
	}
	if c.get("stale") != nil {
		t.Error("an entry no resync used for two generations is still kept")
	}
	if n := c.entries.len(); n > 2*predictionGeneration {
		t.Errorf("%d entries kept, bound %d", n, 2*predictionGeneration)
	}
}

// BenchmarkSeenObjectsMemory reports the heap that the copies of live
// objects take per object, as an engine keeps one per object it manages:
// a ConfigMap as the API server returns it after an apply, managedFields
// included. Packed (JSON) is what the engine keeps; decoded is what it
// kept before, for comparison.
func BenchmarkSeenObjectsMemory(b *testing.B) {
	const n = 20000
	obj := func(i int) *unstructured.Unstructured {
		o := &unstructured.Unstructured{}
		if err := o.UnmarshalJSON([]byte(fmt.Sprintf(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"u-%04d-%02d","namespace":"fleet",
"uid":"6f1c3e2a-0b7d-4c1e-9a53-%012d","resourceVersion":"%d","creationTimestamp":"2026-12-01T10:00:00Z",
"annotations":{"converge.dev/owner":"kustomize.flux-system.u-%04d"},"labels":{"kustomize.toolkit.fluxcd.io/name":"u-%04d"},
"managedFields":[{"manager":"converge","operation":"Apply","apiVersion":"v1","time":"2026-12-01T10:00:00Z","fieldsType":"FieldsV1",
"fieldsV1":{"f:data":{"f:revision":{}},"f:metadata":{"f:annotations":{"f:converge.dev/owner":{}},"f:labels":{"f:kustomize.toolkit.fluxcd.io/name":{}}}}}]},
"data":{"revision":"commit-%d"}}`, i/20, i%20, i, 1000+i, i/20, i/20, i))); err != nil {
			b.Fatal(err)
		}
		return o
	}
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	for range b.N {
		before := heap()
		decoded := make([]*unstructured.Unstructured, n)
		for i := range n {
			decoded[i] = obj(i)
		}
		mid := heap()
		s := seenObjects{newGenerations[object.Key, seenCopy](seenGeneration)}
		for i := range n {
			s.put(decoded[i])
		}
		decoded = nil
		after := heap()
		if s.entries.len() != n {
			b.Fatalf("%d objects kept, want %d", s.entries.len(), n)
		}
		b.ReportMetric(float64(mid-before)/n, "decoded-B/obj")
		b.ReportMetric(float64(after-before)/n, "packed-B/obj")
	}
}
