package appset

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/intstr"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
)

// RollingSync statuses, as Argo CD names them, and converge's Degraded.
const (
	Waiting     = "Waiting"
	Pending     = "Pending"
	Progressing = "Progressing"
	Healthy     = "Healthy"
	Degraded    = "Degraded"
)

// AppState is a generated Application as RollingSync reads it.
type AppState struct {
	Name   string
	Labels map[string]string
	// Synced and Healthy as Argo CD's status says; Degraded its health;
	// Failed its last sync; Syncing a sync asked for or running.
	Synced, Healthy, Degraded, Failed, Syncing bool
	// Source is the repository and target revision; Revision the commit
	// the Application last compared with ("" if none yet).
	Source, Revision string
	// SyncStarted is when its last sync started; zero while a sync is
	// asked for but not started, or if it never synced.
	SyncStarted time.Time
	// LastHealthy is the last commit it was Synced and Healthy at;
	// RevertedFrom the commit it was reverted from, if the set reverted
	// it to LastHealthy.
	LastHealthy, RevertedFrom string
}

// AppStatus is one Application's place in the rollout.
type AppStatus struct {
	Status, Message string
	// Step is 1-based; 0 for an Application no step selects.
	Step int
}

// Rollout is one round of a RollingSync.
type Rollout struct {
	// Sync are the Applications whose sync to ask for now.
	Sync   []string
	Status map[string]AppStatus
	// Halted says which step failed beyond its budget, and which
	// Applications; nothing after it is touched.
	Halted string
	// Revert are the halted step's Applications to sync back, with the
	// commit for each (Budget.Revert).
	Revert map[string]string
	// Done: every step's Applications are Synced and Healthy (or failed
	// within budget).
	Done bool
	// Recheck is when the next progress deadline falls due (0: none):
	// nothing else may happen by then to start a round.
	Recheck time.Duration
}

// ErrorBudgetAnnotation is how many Applications of one step (N or N%)
// may be Degraded or fail their sync before the rollout halts; the
// default is none.
const ErrorBudgetAnnotation = "converge.dev/rollout-error-budget"

// ProgressDeadlineAnnotation is the window (a Go duration, "10m") within
// which an Application must be Synced and Healthy once its sync
// started; one still progressing after it counts against the error
// budget. The default waits forever, as Argo CD does.
const ProgressDeadlineAnnotation = "converge.dev/rollout-progress-deadline"

// Budget is how much failure one step may have before the rollout halts.
type Budget struct {
	// Failures is N or N% of the step's Applications; "" allows none.
	Failures string
	// Deadline counts an Application still not Synced and Healthy this
	// long after its sync started as failed; 0 never does.
	Deadline time.Duration
	// Now is the time of the round, for Deadline.
	Now time.Time
	// Revert, when the rollout halts at a step, syncs that step's failed
	// Applications back to their LastHealthy commit.
	Revert bool
}

// LastHealthyAnnotation on a generated Application is the last commit
// the set saw it Synced and Healthy at; RevertedAnnotation the commit
// the set reverted it from. The set writes both.
const (
	LastHealthyAnnotation = "converge.dev/last-healthy-revision"
	RevertedAnnotation    = "converge.dev/reverted-from"
	// OnHaltAnnotation is what a halt does: "hold" (the default) or
	// "revert".
	OnHaltAnnotation = "converge.dev/rollout-on-halt"
)

// Roll plans one round: steps in order, each waiting for the one before
// to be Synced and Healthy. Within the active step, OutOfSync
// Applications are synced, at most maxUpdate at a time. More failures in
// a step than the budget allows halt the rollout there.
func Roll(steps []v1alpha1.ApplicationSetRolloutStep, apps []AppState, budget Budget) (Rollout, error) {
	out := Rollout{Status: map[string]AppStatus{}}
	for i, st := range steps {
		for j, e := range st.MatchExpressions {
			if e.Operator != "In" && e.Operator != "NotIn" {
				return Rollout{}, fmt.Errorf("strategy.rollingSync.steps[%d].matchExpressions[%d].operator: %q is not In or NotIn", i, j, e.Operator)
			}
		}
	}
	// Applications of one source that compared different commits: some
	// have not seen the latest one yet, and an earlier step's stale
	// "Synced" would let a later step go first. Wait until they agree.
	revs := map[string]map[string]bool{}
	for _, a := range apps {
		if a.Revision == "" {
			continue
		}
		if revs[a.Source] == nil {
			revs[a.Source] = map[string]bool{}
		}
		revs[a.Source][a.Revision] = true
	}
	for src, rs := range revs {
		if len(rs) > 1 {
			for _, a := range apps {
				out.Status[a.Name] = AppStatus{Status: Waiting, Message: fmt.Sprintf("the Applications of %s compared %d different commits: waiting for them to agree", src, len(rs))}
			}
			return out, nil
		}
	}
	members := make([][]AppState, len(steps))
	for _, a := range apps {
		step := -1
		for i, s := range steps {
			if matches(s.MatchExpressions, a.Labels) {
				step = i
				break
			}
		}
		if step < 0 {
			out.Status[a.Name] = AppStatus{Status: Waiting, Message: "no RollingSync step selects it: the set never syncs it"}
			continue
		}
		members[step] = append(members[step], a)
	}
	active, blocked := -1, -1 // the step being rolled out; the one later steps wait for
	for i, ms := range members {
		sort.Slice(ms, func(a, b int) bool { return ms[a].Name < ms[b].Name })
		if blocked >= 0 {
			for _, a := range ms {
				out.Status[a.Name] = AppStatus{Status: Waiting, Step: i + 1, Message: fmt.Sprintf("waits for step %d", blocked+1)}
			}
			continue
		}
		var failed, pending []string
		progressing := 0
		var toRevert []AppState
		for _, a := range ms {
			progressingNow := a.Syncing || (a.Synced && !a.Healthy)
			late := progressingNow && budget.Deadline > 0 && !a.SyncStarted.IsZero() && budget.Now.Sub(a.SyncStarted) > budget.Deadline
			switch {
			case a.RevertedFrom != "" && (a.Revision == a.RevertedFrom || a.Revision == a.LastHealthy):
				// Reverted, and Git has not moved since: still a failure
				// of this commit, and never synced to it again.
				why := fmt.Sprintf("reverted to %s after %s failed", short(a.LastHealthy), short(a.RevertedFrom))
				failed = append(failed, a.Name+" ("+why+")")
				out.Status[a.Name] = AppStatus{Status: Degraded, Step: i + 1, Message: why}
			case a.Degraded || a.Failed || late:
				toRevert = append(toRevert, a)
				why := "Degraded"
				switch {
				case a.Failed:
					why = "its sync failed"
				case late && !a.Degraded:
					why = fmt.Sprintf("not Synced and Healthy %s after its sync started", budget.Deadline)
				}
				failed = append(failed, a.Name+" ("+why+")")
				out.Status[a.Name] = AppStatus{Status: Degraded, Step: i + 1, Message: why}
			case progressingNow:
				if budget.Deadline > 0 && !a.SyncStarted.IsZero() {
					due := a.SyncStarted.Add(budget.Deadline).Sub(budget.Now) + time.Second
					if out.Recheck == 0 || due < out.Recheck {
						out.Recheck = due
					}
				}
				progressing++
				out.Status[a.Name] = AppStatus{Status: Progressing, Step: i + 1, Message: "syncing, or waiting to be Healthy"}
			case a.Synced && a.Healthy:
				out.Status[a.Name] = AppStatus{Status: Healthy, Step: i + 1, Message: "Synced and Healthy"}
			default:
				pending = append(pending, a.Name)
			}
		}
		allowed, err := limitOf(budget.Failures, len(ms), 0, ErrorBudgetAnnotation)
		if err != nil {
			return Rollout{}, err
		}
		if len(failed) > allowed {
			out.Halted = fmt.Sprintf("step %d: %d of its %d Applications failed (%s), more than the error budget of %d; the steps after it are not touched until they recover",
				i+1, len(failed), len(ms), strings.Join(failed, ", "), allowed)
			if budget.Revert {
				var reverted, cannot []string
				for _, a := range toRevert {
					if a.LastHealthy == "" || a.LastHealthy == a.Revision {
						cannot = append(cannot, a.Name)
						continue
					}
					if out.Revert == nil {
						out.Revert = map[string]string{}
					}
					out.Revert[a.Name] = a.LastHealthy
					reverted = append(reverted, a.Name+" to "+short(a.LastHealthy))
				}
				if len(reverted) > 0 {
					out.Halted += "; reverting " + strings.Join(reverted, ", ")
				}
				if len(cannot) > 0 {
					out.Halted += "; no earlier healthy commit to revert " + strings.Join(cannot, ", ") + " to"
				}
			}
			for _, name := range pending {
				out.Status[name] = AppStatus{Status: Waiting, Step: i + 1, Message: "the rollout is halted at this step"}
			}
			blocked = i
			continue
		}
		maxUpdate, err := limitOf(maxUpdateOf(steps[i]), len(ms), len(ms), fmt.Sprintf("strategy.rollingSync.steps[%d].maxUpdate", i))
		if err != nil {
			return Rollout{}, err
		}
		room := max(maxUpdate-progressing, 0)
		for j, name := range pending {
			if j < room {
				out.Sync = append(out.Sync, name)
				out.Status[name] = AppStatus{Status: Pending, Step: i + 1, Message: "its sync was asked for by the RollingSync"}
			} else {
				out.Status[name] = AppStatus{Status: Waiting, Step: i + 1, Message: fmt.Sprintf("waits: at most %d of step %d sync at once", maxUpdate, i+1)}
			}
		}
		if len(pending) > 0 || progressing > 0 {
			active, blocked = i, i
		}
	}
	out.Done = active < 0 && out.Halted == ""
	return out, nil
}

func short(commit string) string { return commit[:min(len(commit), 7)] }

func maxUpdateOf(s v1alpha1.ApplicationSetRolloutStep) string {
	if s.MaxUpdate == nil {
		return ""
	}
	if s.MaxUpdate.Type == intstr.String {
		return s.MaxUpdate.StrVal
	}
	return strconv.Itoa(int(s.MaxUpdate.IntVal))
}

// limitOf reads "N" or "N%" of n; "" is def.
func limitOf(s string, n, def int, field string) (int, error) {
	if s == "" {
		return def, nil
	}
	if pct, ok := strings.CutSuffix(s, "%"); ok {
		v, err := strconv.ParseFloat(pct, 64)
		if err != nil || v < 0 || v > 100 {
			return 0, fmt.Errorf("%s: %q is not N or N%%", field, s)
		}
		return int(math.Floor(float64(n) * v / 100)), nil
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%s: %q is not N or N%%", field, s)
	}
	return v, nil
}

// matches is Argo CD's step selection: every expression holds (In or
// NotIn over the Application's labels).
func matches(exprs []v1alpha1.ApplicationMatchExpression, labels map[string]string) bool {
	for _, e := range exprs {
		v, has := labels[e.Key]
		in := false
		for _, x := range e.Values {
			in = in || (has && v == x)
		}
		switch e.Operator {
		case "In":
			if !in {
				return false
			}
		case "NotIn":
			if in {
				return false
			}
		default:
			return false
		}
	}
	return true
}
