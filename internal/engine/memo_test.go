package engine

import (
	"fmt"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestPredictionCacheKeepsWhatResyncsUse: predictions every resync asks
// for survive any number of others passing through; one nobody asked
// for during a whole generation is gone.
func TestPredictionCacheKeepsWhatResyncsUse(t *testing.T) {
	c := predictionCache{newGenerations[string, prediction](predictionGeneration)}
	obj := &unstructured.Unstructured{}
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
