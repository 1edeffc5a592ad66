package engine

import (
	"context"
	"fmt"
	"time"

	"converge.dev/converge/internal/health"
	"converge.dev/converge/internal/object"
)

// WaitHealthy polls objects until each is Healthy (or Suspended), as
// Flux's healthChecks ask. A Degraded object fails at once; a missing
// one is waited for. It returns when all are healthy or ctx ends.
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
