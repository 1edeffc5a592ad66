package promotion

import (
	"strings"
	"testing"
	"time"
)

const (
	dA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	dB = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

// step is one observation, minutes after t0.
type step struct {
	at      int
	digest  string
	healthy bool
}

// TestBakeClock replays observations through Clock.Observe and asks
// Soaked at the end. The Kargo cases are the three soak bugs PROMOTION.md
// names, restated for a clock fed by live reads.
func TestBakeClock(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	clock := Clock{Grace: 2 * time.Minute, MaxGap: 5 * time.Minute}
	tests := []struct {
		name   string
		steps  []step
		want   string // digest asked about
		bake   time.Duration
		askAt  int
		ok     bool
		left   time.Duration
		reason string // in Soaked's message or the last Reset
	}{
		{name: "healthy the whole bake", steps: every(0, 30, dA, true), want: dA, bake: 30 * time.Minute, askAt: 30, ok: true},
		{name: "part of the bake, remaining exact", steps: every(0, 10, dA, true), want: dA, bake: 30 * time.Minute, askAt: 10,
			left: 20 * time.Minute, reason: "healthy 10m0s of 30m0s"},
		// Kargo #3731: soak was judged by how long ago the freight was
		// first verified, not by how long it stayed. A digest live long
		// ago, replaced, and back for 5 minutes has baked 5 minutes.
		{name: "kargo 3731: time away does not count", want: dA, bake: 30 * time.Minute, askAt: 65,
			steps: concat(every(0, 25, dA, true), every(30, 55, dB, true), every(60, 65, dA, true)),
			left:  25 * time.Minute, reason: "digest changed"},
		// Kargo #4238: a soak that completed was forgotten once the stage
		// moved on. Here the promoted digest must run in the source stage,
		// so a stage that moved on says so by name: it never silently
		// blocks, and the newer digest bakes on its own clock.
		{name: "kargo 4238: the stage moved on, said by name", want: dA, bake: 30 * time.Minute, askAt: 50,
			steps: concat(every(0, 40, dA, true), every(45, 50, dB, true)), reason: "the stage runs sha256:bbbbbbbbbbbb, not sha256:aaaaaaaaaaaa"},
		// Kargo #6582: soak in another stage satisfied the requirement,
		// and the remaining time was not a requeue hint. The clock is per
		// stage and its remaining time is exact.
		{name: "kargo 6582: remaining is exact for a requeue", steps: every(0, 29, dA, true), want: dA, bake: 30 * time.Minute, askAt: 29,
			left: time.Minute},
		{name: "health drop within grace keeps the clock", want: dA, bake: 30 * time.Minute, askAt: 30, ok: true,
			steps: concat(every(0, 10, dA, true), []step{{11, dA, false}, {12, dA, true}}, every(13, 30, dA, true))},
		{name: "health drop past grace resets it", want: dA, bake: 30 * time.Minute, askAt: 30,
			steps: concat(every(0, 10, dA, true), every(11, 14, dA, false), every(15, 30, dA, true)),
			left:  15 * time.Minute, reason: "unhealthy for 2m0s (grace 2m0s): pods crash"},
		{name: "unhealthy now, within grace, is not soaked", want: dA, bake: 10 * time.Minute, askAt: 31,
			steps: concat(every(0, 30, dA, true), []step{{31, dA, false}}), reason: "within grace"},
		{name: "observation gap resets it", want: dA, bake: 30 * time.Minute, askAt: 40,
			steps: concat(every(0, 20, dA, true), every(30, 40, dA, true)), left: 20 * time.Minute, reason: "not observed for 10m0s"},
		{name: "stale observation is not soaked", want: dA, bake: 30 * time.Minute, askAt: 45, steps: every(0, 35, dA, true),
			reason: "last observed 10m0s ago"},
		{name: "no pinned digest", want: dA, bake: time.Minute, askAt: 3, steps: every(0, 3, "", true), reason: "no pinned digest"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var o Observation
			for _, s := range tc.steps {
				seen := Seen{Healthy: s.healthy, Why: "pods crash"}
				if s.digest != "" {
					seen.Digests = map[string]string{"app": s.digest}
				}
				o = clock.Observe(o, seen, t0.Add(time.Duration(s.at)*time.Minute))
			}
			ok, left, msg := Soaked(o, clock, map[string]string{"app": tc.want}, tc.bake, t0.Add(time.Duration(tc.askAt)*time.Minute))
			if ok != tc.ok || left != tc.left {
				t.Errorf("Soaked = %v, %s (%s); want %v, %s", ok, left, msg, tc.ok, tc.left)
			}
			if tc.reason != "" && !strings.Contains(msg, tc.reason) && !strings.Contains(o.Reset, tc.reason) {
				t.Errorf("reason %q not in %q nor reset %q", tc.reason, msg, o.Reset)
			}
		})
	}
}

// every observes once a minute from a to b, inclusive.
func every(a, b int, digest string, healthy bool) []step {
	var s []step
	for m := a; m <= b; m++ {
		s = append(s, step{m, digest, healthy})
	}
	return s
}

func concat(ss ...[]step) []step {
	var out []step
	for _, s := range ss {
		out = append(out, s...)
	}
	return out
}
