package apply

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"converge.dev/converge/internal/health"
	"converge.dev/converge/internal/object"
	"converge.dev/converge/internal/plan"
)

// HookResult is how one hook ended.
type HookResult struct {
	Ref   object.Ref
	Phase plan.Phase
	// Succeeded is false for a hook that failed.
	Succeeded bool
	Message   string
	// Deleted is true when the hook's delete policy removed it.
	Deleted bool
}

// startHook creates the hook afresh. Under BeforeHookCreation (the
// default) the object left by the previous sync is deleted first, and
// awaited, so a Job's immutable template never blocks the next run.
func startHook(ctx context.Context, t Target, s plan.Step, poll time.Duration) error {
	if plan.HasDeletePolicy(s.Desired, plan.BeforeHookCreation) {
		live, err := t.Get(ctx, s.Ref)
		if err != nil {
			return err
		}
		if live != nil {
			if err := t.Delete(ctx, s.Ref, live.GetUID()); err != nil {
				return err
			}
			if err := waitGone(ctx, t, s.Ref, string(live.GetUID()), poll); err != nil {
				return err
			}
		}
	}
	_, err := t.Apply(ctx, s.Desired)
	return err
}

func waitGone(ctx context.Context, t Target, ref object.Ref, uid string, poll time.Duration) error {
	for {
		live, err := t.Get(ctx, ref)
		if err != nil {
			return err
		}
		if live == nil || string(live.GetUID()) != uid {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the previous %s to be deleted: %w", ref, ctx.Err())
		case <-time.After(poll):
		}
	}
}

// awaitHooks waits until every hook of a stage has completed: Healthy
// (a Job that succeeded, a Pod that exited 0) or any kind without a
// health rule counts as success, Degraded as failure. Delete policies are
// applied as each hook completes. A failed hook fails the stage, after
// all of its hooks have completed.
func awaitHooks(ctx context.Context, t Target, hooks []plan.Step, poll time.Duration, assess func(*unstructured.Unstructured) (health.Result, bool), res *Result) error {
	pending := map[int]bool{}
	for i := range hooks {
		pending[i] = true
	}
	var failed *StepError
	for len(pending) > 0 {
		for i := range hooks {
			if !pending[i] {
				continue
			}
			s := hooks[i]
			live, err := t.Get(ctx, s.Ref)
			if err != nil {
				return &StepError{s, err}
			}
			var r HookResult
			var hr health.Result
			var ok bool
			if live != nil {
				hr, ok = assess(live)
			}
			switch {
			case live == nil:
				r = HookResult{Ref: s.Ref, Phase: s.Hook, Message: "deleted before it completed"}
			case !ok, hr.Status == health.Healthy, hr.Status == health.Suspended:
				r = HookResult{Ref: s.Ref, Phase: s.Hook, Succeeded: true, Message: hr.Message}
			case hr.Status == health.Degraded:
				r = HookResult{Ref: s.Ref, Phase: s.Hook, Message: hr.Message}
			default:
				continue
			}
			delete(pending, i)
			if live != nil && (r.Succeeded && plan.HasDeletePolicy(s.Desired, plan.HookSucceeded) ||
				!r.Succeeded && plan.HasDeletePolicy(s.Desired, plan.HookFailed)) {
				if err := t.Delete(ctx, s.Ref, live.GetUID()); err != nil {
					return &StepError{s, err}
				}
				r.Deleted = true
			}
			res.Hooks = append(res.Hooks, r)
			if !r.Succeeded && failed == nil {
				failed = &StepError{s, fmt.Errorf("%s hook %s failed: %s", s.Hook, s.Ref, r.Message)}
			}
		}
		if len(pending) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for hooks: %w", ctx.Err())
		case <-time.After(poll):
		}
	}
	if failed != nil {
		return failed
	}
	return nil
}
