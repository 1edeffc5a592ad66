package promotion

import (
	"fmt"
	"time"
)

// Observation is what is known of one stage's live state over time: the
// bake clock. It is persisted (in the Pipeline's status), so a restart
// continues it rather than starting it again or, worse, trusting a time
// nobody watched.
type Observation struct {
	// Digests are the artifacts' digests running in the stage, by
	// artifact name; empty when the stage runs no pinned digest.
	Digests map[string]string `json:"digests,omitempty"`
	// Healthy is the last health seen.
	Healthy bool `json:"healthy,omitempty"`
	// HealthySince is when "these digests live and Healthy" began to
	// hold without a break; nil when it does not hold.
	HealthySince *time.Time `json:"healthySince,omitempty"`
	// UnhealthySince is when health dropped, while within the grace
	// period; nil when healthy.
	UnhealthySince *time.Time `json:"unhealthySince,omitempty"`
	// ObservedAt is the last observation.
	ObservedAt time.Time `json:"observedAt"`
	// Reset says why the clock last started again.
	Reset string `json:"reset,omitempty"`
}

// Seen is one live read of a stage.
type Seen struct {
	// Digests running, by artifact; empty if none is pinned and live.
	Digests map[string]string
	// Healthy: the units Synced and Healthy, rollouts complete, pods
	// running the digests.
	Healthy bool
	// Why is the reason when not healthy.
	Why string
}

// Clock holds the bake clock's tolerances.
type Clock struct {
	// Grace is how long health may drop before the clock resets: a pod
	// rescheduled is not a failed bake. Zero resets at once.
	Grace time.Duration
	// MaxGap is the longest time between observations the clock trusts.
	// After a longer gap (a controller down) nobody saw whether the stage
	// stayed healthy, so the clock starts again. Zero trusts any gap.
	MaxGap time.Duration
}

// Observe advances the clock from prev by one observation at now. It is
// the only place the clock changes.
func (c Clock) Observe(prev Observation, s Seen, now time.Time) Observation {
	o := Observation{Digests: s.Digests, Healthy: s.Healthy, ObservedAt: now, Reset: prev.Reset,
		HealthySince: prev.HealthySince, UnhealthySince: prev.UnhealthySince}
	start := func(reason string) {
		o.HealthySince, o.UnhealthySince, o.Reset = nil, nil, reason
		if s.Healthy && len(s.Digests) > 0 {
			t := now
			o.HealthySince = &t
		}
	}
	switch {
	case len(s.Digests) == 0:
		start("no pinned digest is running")
		return o
	case !SameDigests(prev.Digests, s.Digests):
		if len(prev.Digests) == 0 {
			start("first observation of " + digestList(s.Digests))
		} else {
			start(fmt.Sprintf("digest changed from %s to %s", digestList(prev.Digests), digestList(s.Digests)))
		}
		return o
	case c.MaxGap > 0 && !prev.ObservedAt.IsZero() && now.Sub(prev.ObservedAt) > c.MaxGap:
		start(fmt.Sprintf("not observed for %s (more than %s): nobody saw whether it stayed healthy", round(now.Sub(prev.ObservedAt)), c.MaxGap))
		return o
	}
	if s.Healthy {
		o.UnhealthySince = nil
		if o.HealthySince == nil {
			t := now
			o.HealthySince = &t
		}
		return o
	}
	if o.UnhealthySince == nil {
		t := now
		o.UnhealthySince = &t
	}
	if down := now.Sub(*o.UnhealthySince); o.HealthySince != nil && down >= c.Grace {
		why := s.Why
		if why == "" {
			why = "not healthy"
		}
		o.HealthySince = nil
		o.Reset = fmt.Sprintf("unhealthy for %s (grace %s): %s", round(down), c.Grace, why)
	}
	return o
}

// Soaked says whether digests have been live and healthy in the stage
// observed by o for bake by now, and if not, how long is left (zero when
// it cannot be known) and why. Auto and manual promotion, the PR's bake
// gate and the CLI all call it: Kargo's first soak bug (#3731) was two
// code paths answering this question differently.
func Soaked(o Observation, c Clock, digests map[string]string, bake time.Duration, now time.Time) (bool, time.Duration, string) {
	switch {
	case len(o.Digests) == 0:
		return false, 0, "the stage runs no pinned digest"
	case !SameDigests(o.Digests, digests):
		return false, 0, fmt.Sprintf("the stage runs %s, not %s", digestList(o.Digests), digestList(digests))
	case c.MaxGap > 0 && now.Sub(o.ObservedAt) > c.MaxGap:
		return false, 0, fmt.Sprintf("last observed %s ago (more than %s)", round(now.Sub(o.ObservedAt)), c.MaxGap)
	case o.HealthySince == nil:
		return false, 0, "not healthy: " + o.Reset
	case !o.Healthy:
		return false, 0, fmt.Sprintf("not healthy since %s (within grace)", o.UnhealthySince.UTC().Format(time.RFC3339))
	}
	baked := now.Sub(*o.HealthySince)
	if baked >= bake {
		return true, 0, fmt.Sprintf("healthy %s of %s", round(baked), bake)
	}
	return false, bake - baked, fmt.Sprintf("healthy %s of %s", round(baked), bake)
}

func round(d time.Duration) time.Duration {
	if d > time.Minute {
		return d.Round(time.Minute)
	}
	return d.Round(time.Second)
}

func digestList(m map[string]string) string {
	if len(m) == 1 {
		for _, d := range m {
			return short(d)
		}
	}
	s := ""
	for _, k := range sortedKeys(m) {
		if s != "" {
			s += ","
		}
		s += k + "=" + short(m[k])
	}
	return s
}

// short is a digest's algorithm and first 12 hex digits, for messages.
func short(d string) string {
	if len(d) > 19 {
		return d[:19]
	}
	return d
}
