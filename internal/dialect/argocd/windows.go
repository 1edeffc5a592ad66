package argocd

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
)

// WindowTarget is what a sync window is matched against.
type WindowTarget struct {
	// Name is the Application's (or Kustomization's) name.
	Name string
	// Namespace is the destination namespace.
	Namespace string
	// Clusters are the destination's server URL and name.
	Clusters []string
}

// WindowDecision says whether a sync may run now.
type WindowDecision struct {
	Allowed bool
	// Message names the windows that decided, for a condition.
	Message string
	// Next is when the decision may change: a matching window opens or
	// closes. Zero if no window matches.
	Next time.Time
}

// cronParser reads schedules as Argo CD does: five fields, or a
// descriptor such as @daily.
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

type window struct {
	v1alpha1.SyncWindow
	index    int
	schedule cron.Schedule
	duration time.Duration
	loc      *time.Location
}

// active reports whether the window is open at now, and when that
// changes: it is open if it opened less than its duration ago.
func (w window) active(now time.Time) (bool, time.Time) {
	local := now.In(w.loc)
	// The first opening after now-duration, if it is not in the future,
	// is an opening whose window still covers now.
	start := w.schedule.Next(local.Add(-w.duration))
	if start.After(local) {
		return false, start
	}
	// It closes after the last opening up to now.
	for next := w.schedule.Next(start); !next.After(local); next = w.schedule.Next(next) {
		start = next
	}
	return true, start.Add(w.duration)
}

func (w window) String() string {
	return fmt.Sprintf("%s window %d (%q for %s)", w.Kind, w.index, w.Schedule, w.Duration)
}

// matches applies the window's selectors: OR-ed, or AND-ed with
// andOperator; an empty selector list matches nothing on its own.
func (w window) matches(t WindowTarget) bool {
	type sel struct {
		patterns []string
		values   []string
	}
	sels := []sel{{w.Applications, []string{t.Name}}, {w.Namespaces, []string{t.Namespace}}, {w.Clusters, t.Clusters}}
	any, all, used := false, true, 0
	for _, s := range sels {
		if len(s.patterns) == 0 {
			continue
		}
		used++
		hit := false
		for _, v := range s.values {
			if v != "" && anyGlob(s.patterns, v) {
				hit = true
			}
		}
		any = any || hit
		all = all && hit
	}
	if used == 0 {
		return false
	}
	if w.AndOperator {
		return all
	}
	return any
}

// parseWindows checks every window of the project; an unreadable one is
// an error naming its field.
func parseWindows(ws []v1alpha1.SyncWindow) ([]window, error) {
	var out []window
	for i, sw := range ws {
		field := fmt.Sprintf("spec.syncWindows[%d]", i)
		if sw.Kind != "allow" && sw.Kind != "deny" {
			return nil, fmt.Errorf("%s.kind: %q (want allow or deny)", field, sw.Kind)
		}
		sch, err := cronParser.Parse(sw.Schedule)
		if err != nil {
			return nil, fmt.Errorf("%s.schedule: %q: %w", field, sw.Schedule, err)
		}
		d, err := time.ParseDuration(sw.Duration)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("%s.duration: %q is not a positive duration", field, sw.Duration)
		}
		loc := time.UTC
		if sw.TimeZone != "" {
			if loc, err = time.LoadLocation(sw.TimeZone); err != nil {
				return nil, fmt.Errorf("%s.timeZone: %w", field, err)
			}
		}
		out = append(out, window{SyncWindow: sw, index: i, schedule: sch, duration: d, loc: loc})
	}
	return out, nil
}

// CheckWindows decides, as Argo CD does, whether a sync of t may run at
// now under the project's windows:
//   - no matching window: allowed;
//   - an active matching deny window: denied, unless manual and every
//     active deny window allows manual syncs;
//   - else an active matching allow window: allowed;
//   - else matching allow windows, none active: denied, unless manual
//     and one of them allows manual syncs.
func CheckWindows(windows []v1alpha1.SyncWindow, t WindowTarget, manual bool, now time.Time) (WindowDecision, error) {
	ws, err := parseWindows(windows)
	if err != nil {
		return WindowDecision{}, err
	}
	var d WindowDecision
	var activeDeny, activeAllow, inactiveAllow []window
	for _, w := range ws {
		if !w.matches(t) {
			continue
		}
		on, change := w.active(now)
		if d.Next.IsZero() || change.Before(d.Next) {
			d.Next = change
		}
		switch {
		case on && w.Kind == "deny":
			activeDeny = append(activeDeny, w)
		case on:
			activeAllow = append(activeAllow, w)
		default:
			if w.Kind == "allow" {
				inactiveAllow = append(inactiveAllow, w)
			}
		}
	}
	names := func(ws []window) string {
		var s []string
		for _, w := range ws {
			s = append(s, w.String())
		}
		return strings.Join(s, ", ")
	}
	switch {
	case len(activeDeny) > 0:
		manualOK := true
		for _, w := range activeDeny {
			manualOK = manualOK && w.ManualSync
		}
		d.Allowed = manual && manualOK
		d.Message = "sync denied by the active " + names(activeDeny)
	case len(activeAllow) > 0:
		d.Allowed = true
	case len(inactiveAllow) > 0:
		manualOK := false
		for _, w := range inactiveAllow {
			manualOK = manualOK || w.ManualSync
		}
		d.Allowed = manual && manualOK
		d.Message = "sync allowed only in " + names(inactiveAllow) + ", none active now"
	default:
		d.Allowed = true
	}
	if d.Allowed {
		d.Message = ""
	} else if !d.Next.IsZero() {
		d.Message += fmt.Sprintf("; next change at %s", d.Next.UTC().Format(time.RFC3339))
	}
	return d, nil
}
