package engine

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"converge.dev/converge/internal/health"
	"converge.dev/converge/internal/object"
)

// WaitHealthy polls objects until each is Healthy (or Suspended), as
// Flux's healthChecks ask. A Degraded object fails at once, unless its
// controller says it is retrying (Reconciling=True, and not Stalled), as
// kstatus reads it; a missing one is waited for. It returns when all are
// healthy or ctx ends.
func (e *Engine) WaitHealthy(ctx context.Context, refs []object.Ref, poll time.Duration) error {
	if poll == 0 {
		poll = 500 * time.Millisecond
	}
	for {
		pending := ""
		for _, ref := range refs {
			live, err := e.o.Cluster.Get(ctx, ref)
			if err != nil {
				return fmt.Errorf("health check %s: %w", ref, err)
			}
			if live == nil {
				pending = ref.String() + " not found"
				continue
			}
			r, ok := e.o.Health.Assess(live)
			if !ok {
				continue
			}
			switch r.Status {
			case health.Healthy, health.Suspended:
			case health.Degraded:
				if Retrying(live) {
					pending = fmt.Sprintf("%s is Degraded, being retried: %s", ref, r.Message)
					continue
				}
				return fmt.Errorf("health check failed: %s is Degraded: %s", ref, r.Message)
			default:
				pending = fmt.Sprintf("%s is %s: %s", ref, r.Status, r.Message)
			}
		}
		if pending == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("health check timed out: %s: %w", pending, ctx.Err())
		case <-time.After(poll):
		}
	}
}

// Retrying reports whether an object's controller says it is still at
// work on a failure: Reconciling=True and not Stalled=True. kstatus,
// which Flux waits with, reads such an object as in progress.
func Retrying(obj *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	reconciling, stalled := false, false
	for _, c := range conds {
		m, ok := c.(map[string]any)
		if !ok || m["status"] != "True" {
			continue
		}
		switch m["type"] {
		case "Reconciling":
			reconciling = true
		case "Stalled":
			stalled = true
		}
	}
	return reconciling && !stalled
}

func retrying(on bool) func(*unstructured.Unstructured) bool {
	if on {
		return Retrying
	}
	return nil
}
