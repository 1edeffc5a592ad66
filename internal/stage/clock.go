package stage

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	convergev1 "converge.dev/converge/internal/api/converge/v1alpha1"
	"converge.dev/converge/internal/promotion"
)

// ClockOf is a Pipeline's bake clock: its grace (default 2m), and the
// longest gap it trusts: a heartbeat (the persisted observedAt may be
// that old in a steady state) plus two intervals (default 30s) and half
// a minute, so one slow round does not reset a bake, a controller down
// for longer does.
func ClockOf(p *convergev1.Pipeline) promotion.Clock {
	return promotion.Clock{Grace: durationOr(p.Spec.Grace, 2*time.Minute), MaxGap: HeartbeatOf(p) + 2*IntervalOf(p) + 30*time.Second}
}

// HeartbeatOf is how often a stage's observedAt is written when nothing
// else in the Pipeline's status changed: five intervals. Every round
// still observes; a steady state writes once a heartbeat instead of once
// a round, and a restart finds an observedAt at most this old.
func HeartbeatOf(p *convergev1.Pipeline) time.Duration {
	return 5 * IntervalOf(p)
}

// IntervalOf is the Pipeline's observation interval, default 30s.
func IntervalOf(p *convergev1.Pipeline) time.Duration {
	return durationOr(p.Spec.Interval, 30*time.Second)
}

// ObservationOf reads a stage's persisted bake clock.
func ObservationOf(s convergev1.StageStatus) promotion.Observation {
	o := promotion.Observation{Digests: s.Digests, Healthy: s.Healthy, Reset: s.Reset}
	if s.HealthySince != nil {
		t := s.HealthySince.Time
		o.HealthySince = &t
	}
	if s.UnhealthySince != nil {
		t := s.UnhealthySince.Time
		o.UnhealthySince = &t
	}
	if s.ObservedAt != nil {
		o.ObservedAt = s.ObservedAt.Time
	}
	return o
}

func durationOr(d *metav1.Duration, def time.Duration) time.Duration {
	if d == nil || d.Duration <= 0 {
		return def
	}
	return d.Duration
}

// VerifyTimeoutOf is how long a merged promotion has to show its digests
// live and Healthy, default 10m.
func VerifyTimeoutOf(p *convergev1.Pipeline) time.Duration {
	return durationOr(p.Spec.VerifyTimeout, 10*time.Minute)
}

// BakeOf is a stage's bake; none is zero.
func BakeOf(s convergev1.PipelineStage) time.Duration { return durationOr(s.Bake, 0) }

// SpecOf is the Pipeline's stage named name.
func SpecOf(p *convergev1.Pipeline, name string) (convergev1.PipelineStage, bool) {
	for _, s := range p.Spec.Stages {
		if s.Name == name {
			return s, true
		}
	}
	return convergev1.PipelineStage{}, false
}

// StatusOf is the stage's last observation in the Pipeline's status, or
// an empty one.
func StatusOf(p *convergev1.Pipeline, name string) convergev1.StageStatus {
	for _, s := range p.Status.Stages {
		if s.Name == name {
			return s
		}
	}
	return convergev1.StageStatus{Name: name}
}
