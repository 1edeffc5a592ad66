// Package apply executes a plan on a small Target interface, stage by
// stage: foundations (Namespaces, CRDs), then each sync wave, then
// prunes. It is level-based and idempotent: running it again after a
// failure applies what is still different and nothing else. It does not
// log; it returns what it did.
package apply

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"converge.dev/converge/internal/health"
	"converge.dev/converge/internal/object"
	"converge.dev/converge/internal/plan"
)

// Target is what apply needs from a cluster.
type Target interface {
	Apply(ctx context.Context, obj *unstructured.Unstructured) (*unstructured.Unstructured, error)
	Delete(ctx context.Context, ref object.Ref, uid types.UID) error
	Get(ctx context.Context, ref object.Ref) (*unstructured.Unstructured, error)
	WaitEstablished(ctx context.Context, crdName string) error
}

// Options configure Run.
type Options struct {
	// Wait holds each wave until its objects are healthy before the next
	// starts, and the last wave before Run returns. A Degraded object
	// stops the sync.
	Wait bool
	// Poll is the interval between health checks. If zero, 500ms.
	Poll time.Duration
	// Health assesses objects. If nil, health.Assess (the built-in rules).
	Health func(*unstructured.Unstructured) (health.Result, bool)
	// WaitMultiStepOnly applies Wait only to a sync of more than one
	// step (several waves, or any hook), as Argo CD does: a sync of one
	// wave and no hooks ends once applied, and health is reported apart.
	// If false, Wait awaits every sync, as Flux's wait does.
	WaitMultiStepOnly bool
	// Waiting, if set, is told what a wave waits for at each poll
	// ("Deployment/ns/web: Progressing ..."), so that a caller can show a
	// running sync's progress.
	Waiting func(what string)
	// Step makes Run a step function for a plan without hooks: it applies
	// stages until one is not yet healthy and returns ErrInProgress at
	// once, instead of polling until it is. Run again on the next plan,
	// it finds the stages before unchanged and healthy, and goes on from
	// there. A controller then holds no worker while a wave rolls out. A
	// plan with hooks is run to its end as without Step: a hook is
	// created anew on each run, so its run cannot be cut in steps.
	Step bool
	// Retrying, if set, says that a Degraded object is still being
	// retried by its own controller, so the wait goes on (until ctx
	// ends) instead of failing at once. Flux's wait does this, through
	// kstatus: Ready=False with Reconciling=True is in progress. If nil,
	// Degraded always fails at once.
	Retrying func(*unstructured.Unstructured) bool
}

// Event records one thing Run did, in order.
type Event struct {
	Ref    object.Ref
	Action plan.Action
	Wave   int
	At     time.Time
}

// Result is what Run did.
type Result struct {
	Events []Event
	// Hooks are the hooks that ran, in the order they completed.
	Hooks []HookResult
}

// ErrInProgress is a stage of a Step run that is not healthy yet; the
// error's text says what it waits for.
var ErrInProgress = errors.New("in progress")

// StepError is a failed step; Source names the file it came from.
type StepError struct {
	Step plan.Step
	Err  error
}

func (e *StepError) Error() string {
	if e.Step.Source.File != "" {
		return fmt.Sprintf("%s: %v", e.Step.Source, e.Err)
	}
	return e.Err.Error()
}

func (e *StepError) Unwrap() error { return e.Err }

// Run executes p on t. Hooks run in their phases: PreSync before
// anything else, Sync inside their wave, PostSync once everything else
// is applied and healthy. Each hook is awaited until it completes. If any
// step fails, the SyncFail hooks run and the first error is returned.
func Run(ctx context.Context, t Target, p plan.Plan, o Options) (Result, error) {
	if o.Poll == 0 {
		o.Poll = 500 * time.Millisecond
	}
	if o.Health == nil {
		o.Health = health.Assess
	}
	var res Result
	var main, fail [][]plan.Step
	for _, st := range stages(p) {
		if st[0].Action == plan.Hook && st[0].Hook == plan.SyncFail {
			fail = append(fail, st)
		} else {
			main = append(main, st)
		}
	}
	// PostSync hooks run only on a healthy sync, so the stages before
	// them are awaited even when the caller did not ask to wait.
	wait := o.Wait || p.HasHooks(plan.PostSync)
	if o.WaitMultiStepOnly && !multiStep(main) {
		wait = false
	}
	if o.Step && hasHooks(p) {
		o.Step = false
	}
	err := run(ctx, t, main, wait, o, &res)
	if err != nil && len(fail) > 0 {
		fctx := ctx
		if ctx.Err() != nil { // the sync timed out: SyncFail still gets its chance
			var cancel context.CancelFunc
			fctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), syncFailTimeout)
			defer cancel()
		}
		if ferr := run(fctx, t, fail, true, o, &res); ferr != nil {
			err = errors.Join(err, fmt.Errorf("SyncFail hooks: %w", ferr))
		}
	}
	return res, err
}

// syncFailTimeout bounds SyncFail hooks that run after the sync's own
// context has ended.
const syncFailTimeout = 2 * time.Minute

func hasHooks(p plan.Plan) bool {
	for _, s := range p.Steps {
		if s.Action == plan.Hook {
			return true
		}
	}
	return false
}

// multiStep reports whether the stages hold more than one wave of
// objects, or any hook; the prunes' own stage does not count.
func multiStep(stages [][]plan.Step) bool {
	n := 0
	for _, st := range stages {
		for _, s := range st {
			if s.Action == plan.Hook {
				return true
			}
		}
		if st[0].Action != plan.Prune && st[0].Action != plan.Orphan {
			n++
		}
	}
	return n > 1
}

func run(ctx context.Context, t Target, stages [][]plan.Step, wait bool, o Options, res *Result) error {
	poll := o.Poll
	for _, stage := range stages {
		var hooks []plan.Step
		// What the server returned for each apply: the object at its
		// new version, which the wait judges first instead of reading
		// it back.
		applied := map[object.Key]*unstructured.Unstructured{}
		for _, s := range stage {
			switch s.Action {
			case plan.Create, plan.Update:
				out, err := t.Apply(ctx, s.Desired)
				if err != nil {
					return &StepError{s, err}
				}
				if out != nil {
					applied[s.Ref.Key()] = out
				}
				res.Events = append(res.Events, Event{s.Ref, s.Action, s.Wave, time.Now()})
				if s.Ref.Group == "apiextensions.k8s.io" && s.Ref.Kind == "CustomResourceDefinition" {
					if err := t.WaitEstablished(ctx, s.Ref.Name); err != nil {
						return &StepError{s, err}
					}
				}
			case plan.Prune:
				if err := t.Delete(ctx, s.Ref, s.Live.GetUID()); err != nil {
					return &StepError{s, err}
				}
				res.Events = append(res.Events, Event{s.Ref, s.Action, s.Wave, time.Now()})
			case plan.Hook:
				if err := startHook(ctx, t, s, poll); err != nil {
					return &StepError{s, err}
				}
				res.Events = append(res.Events, Event{s.Ref, s.Action, s.Wave, time.Now()})
				hooks = append(hooks, s)
			}
		}
		if len(hooks) > 0 {
			if err := awaitHooks(ctx, t, hooks, poll, o.Health, res); err != nil {
				return err
			}
		}
		if wait {
			if err := waitHealthy(ctx, t, stage, applied, poll, o.Step, o.Health, o.Retrying, o.Waiting); err != nil {
				return err
			}
		}
	}
	return nil
}

// stages cuts the ordered plan where the wave or the foundation boundary
// changes; prunes form the last stage.
func stages(p plan.Plan) [][]plan.Step {
	var out [][]plan.Step
	key := func(s plan.Step) string {
		switch {
		case s.Hook != "" && s.Hook != plan.Sync:
			return fmt.Sprint(s.Hook, " wave ", s.Wave)
		case s.Hook == plan.Sync:
			return fmt.Sprint("wave ", s.Wave)
		case s.Action == plan.Prune || s.Action == plan.Orphan:
			return "prune"
		case object.IsFoundation(s.Ref):
			return "foundation"
		}
		return fmt.Sprint("wave ", s.Wave)
	}
	for i, s := range p.Steps {
		if i == 0 || key(s) != key(p.Steps[i-1]) {
			out = append(out, nil)
		}
		out[len(out)-1] = append(out[len(out)-1], s)
	}
	return out
}

// waitHealthy polls every applied or unchanged object of a stage until
// each is Healthy or Suspended (or has no health rule). Degraded fails at
// once: the next wave must not start on top of a broken one.
//
// An unchanged object is first judged by the live copy the plan read a
// moment ago, and an applied one by what the server returned for the
// apply: a sync reads an object again only when it is not yet healthy.
// Health rules judge a status behind the object's generation as
// Progressing, so the returned copy, whose status the object's
// controller has not updated yet, is never taken for the result.
func waitHealthy(ctx context.Context, t Target, stage []plan.Step, applied map[object.Key]*unstructured.Unstructured, poll time.Duration, once bool, assess func(*unstructured.Unstructured) (health.Result, bool), retrying func(*unstructured.Unstructured) bool, waiting func(string)) error {
	for first := true; ; first = false {
		pending := ""
		for _, s := range stage {
			if s.Action == plan.Prune || s.Action == plan.Orphan || s.Action == plan.Conflict || s.Action == plan.Hook || s.Action == plan.Untouched {
				continue
			}
			live := s.Live
			if a := applied[s.Ref.Key()]; first && a != nil {
				live = a
			} else if !first || s.Action != plan.Unchanged || live == nil {
				var err error
				if live, err = t.Get(ctx, s.Ref); err != nil {
					if ctx.Err() != nil {
						// The deadline passed mid-read: say what was
						// awaited, not that a read failed.
						return fmt.Errorf("waiting for health: %w (last: %s)", ctx.Err(), orDefault(pending, s.Ref.String()+": not yet healthy"))
					}
					return &StepError{s, err}
				}
			}
			if live == nil {
				pending = fmt.Sprintf("%s: Missing", s.Ref)
				continue
			}
			r, ok := assess(live)
			if !ok {
				continue
			}
			switch r.Status {
			case health.Degraded:
				if retrying != nil && retrying(live) {
					pending = fmt.Sprintf("%s: Degraded, being retried: %s", s.Ref, r.Message)
					continue
				}
				return &StepError{s, fmt.Errorf("%s is Degraded: %s", s.Ref, r.Message)}
			case health.Healthy, health.Suspended:
			default:
				pending = fmt.Sprintf("%s: %s %s", s.Ref, r.Status, r.Message)
			}
		}
		if pending == "" {
			return nil
		}
		if waiting != nil {
			waiting(pending)
		}
		if once {
			return fmt.Errorf("%w: waiting for %s", ErrInProgress, pending)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for health: %w (last: %s)", ctx.Err(), pending)
		case <-time.After(poll):
		}
	}
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
