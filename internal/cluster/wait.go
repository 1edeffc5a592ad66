package cluster

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"

	"converge.dev/converge/internal/object"
)

// WaitEstablished waits until the CRD is Established and its kind is
// served, so that custom resources of it can be applied.
func (c *Client) WaitEstablished(ctx context.Context, name string) error {
	ref := object.Ref{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition", Name: name}
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		crd, err := c.Get(ctx, ref)
		if err != nil || crd == nil {
			return false, err
		}
		conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
		for _, cond := range conds {
			m, _ := cond.(map[string]any)
			if m["type"] == "Established" && m["status"] == "True" {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("%s: not Established: %w", ref, err)
	}
	// Discovery caches the kinds it saw; the new kind must be looked up anew.
	c.resetMu.Lock()
	c.mapper.Reset()
	c.resetMu.Unlock()
	return nil
}
