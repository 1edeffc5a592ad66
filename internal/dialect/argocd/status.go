package argocd

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
	"converge.dev/converge/internal/engine"
	"converge.dev/converge/internal/plan"
	"converge.dev/converge/internal/redact"
)

// Argo CD's sync statuses.
const (
	Synced    = "Synced"
	OutOfSync = "OutOfSync"
	Unknown   = "Unknown"
)

// WriteStatus fills the Application's status from a unit's status, the
// way Argo CD shapes it.
func WriteStatus(app *v1alpha1.Application, st engine.UnitStatus, now time.Time) {
	s := &app.Status
	s.Sync.Status = OutOfSync
	if st.Synced {
		s.Sync.Status = Synced
	}
	s.Sync.Revision = st.Revision
	if app.Spec.Source != nil {
		s.Sync.ComparedTo = v1alpha1.ComparedTo{Source: statusSource(app.Spec.Source), Destination: app.Spec.Destination}
	}
	s.Health = v1alpha1.HealthStatus{Status: string(st.Health)}
	s.Resources = nil
	for _, o := range st.Objects {
		rs := v1alpha1.ResourceStatus{
			Group: o.Ref.Group, Version: o.Ref.Version, Kind: o.Ref.Kind,
			Namespace: o.Ref.Namespace, Name: o.Ref.Name, Status: argoSync(o.Sync),
			RequiresPruning: !o.InGit,
		}
		if o.Health != "" {
			rs.Health = &v1alpha1.HealthStatus{Status: string(o.Health), Message: redact.Message(o.Message)}
		}
		s.Resources = append(s.Resources, rs)
	}
	s.Drift = engine.DriftReport(st.Drift)
	SetCondition(app, DriftedCondition, engine.DriftCondition(st.Drift, false), now)
	t := metav1.NewTime(now)
	s.ReconciledAt = &t
}

// DriftedCondition is set while live fields differ from Git in a way no
// drift policy rule allows; status.drift lists them.
const DriftedCondition = "Drifted"

func argoSync(s string) string {
	switch s {
	case "Synced":
		return Synced
	case "OutOfSync", "Missing", "Conflict":
		return OutOfSync
	}
	return Unknown
}

// RecordSync fills operationState and history after a sync attempt.
func RecordSync(app *v1alpha1.Application, op v1alpha1.Operation, rep engine.Report, started time.Time, err error, now time.Time) {
	fin := metav1.NewTime(now)
	state := &v1alpha1.OperationState{
		Operation: op, Phase: "Succeeded", Message: "successfully synced (all tasks run)",
		StartedAt: metav1.NewTime(started), FinishedAt: &fin,
		SyncResult: &v1alpha1.SyncResult{Revision: rep.Revision},
	}
	if app.Spec.Source != nil {
		state.SyncResult.Source = statusSource(app.Spec.Source)
	}
	if err != nil {
		state.Phase, state.Message = "Failed", redact.Message(err.Error())
	}
	for _, e := range rep.Events {
		r := v1alpha1.ResourceResult{
			Group: e.Ref.Group, Version: e.Ref.Version, Kind: e.Ref.Kind, Namespace: e.Ref.Namespace, Name: e.Ref.Name,
			Status: "Synced", Message: string(e.Action), SyncPhase: "Sync",
		}
		if e.Action == plan.Hook {
			r.HookPhase, r.Message = "Running", "hook started"
			for _, h := range rep.Hooks {
				if h.Ref == e.Ref {
					r.HookType, r.SyncPhase, r.HookPhase, r.Message = string(h.Phase), string(h.Phase), "Succeeded", h.Message
					if !h.Succeeded {
						r.HookPhase, r.Status = "Failed", "SyncFailed"
					}
				}
			}
		}
		state.SyncResult.Resources = append(state.SyncResult.Resources, r)
	}
	// RetryCount counts the retries of a failing revision: the first
	// failure is 0, and any success starts over.
	if prev := app.Status.OperationState; err != nil && prev != nil && prev.Phase == "Failed" &&
		prev.SyncResult != nil && prev.SyncResult.Revision == rep.Revision {
		state.RetryCount = prev.RetryCount + 1
	}
	app.Status.OperationState = state
	if err != nil || rep.Revision == "" {
		return
	}
	h := app.Status.History
	if len(h) > 0 && h[len(h)-1].Revision == rep.Revision && len(rep.Events) == 0 {
		return // nothing new was deployed
	}
	id := int64(0)
	if len(h) > 0 {
		id = h[len(h)-1].ID + 1
	}
	entry := v1alpha1.RevisionHistory{ID: id, Revision: rep.Revision, DeployedAt: fin}
	if app.Spec.Source != nil {
		entry.Source = statusSource(app.Spec.Source)
	}
	h = append(h, entry)
	limit := 10
	if app.Spec.RevisionHistoryLimit != nil {
		limit = int(*app.Spec.RevisionHistoryLimit)
	}
	if len(h) > limit {
		h = h[len(h)-limit:]
	}
	app.Status.History = h
}

// statusSource is the spec's source as the status shows it: a copy
// whose repoURL has no credentials, which users do put there.
func statusSource(src *v1alpha1.ApplicationSource) v1alpha1.ApplicationSource {
	out := *src.DeepCopy()
	out.RepoURL = redact.URL(out.RepoURL)
	return out
}

// SetCondition replaces the conditions of one type with a single one
// (keeping its time if the message is unchanged), or removes them when
// message is empty.
func SetCondition(app *v1alpha1.Application, typ, message string, now time.Time) {
	var out []v1alpha1.ApplicationCondition
	var prev *v1alpha1.ApplicationCondition
	for i, c := range app.Status.Conditions {
		if c.Type == typ {
			prev = &app.Status.Conditions[i]
			continue
		}
		out = append(out, c)
	}
	message = redact.Message(message)
	if message != "" {
		t := metav1.NewTime(now)
		if prev != nil && prev.Message == message && prev.LastTransitionTime != nil {
			t = *prev.LastTransitionTime
		}
		out = append(out, v1alpha1.ApplicationCondition{Type: typ, Message: message, LastTransitionTime: &t})
	}
	app.Status.Conditions = out
}

// Retry is an Application's retry policy with Argo CD's defaults filled
// in: no policy means no automatic retry of a failed revision.
type Retry struct {
	// Limit is the number of retries; negative is unlimited.
	Limit                 int64
	Duration, MaxDuration time.Duration
	Factor                int64
}

// RetryPolicy reads spec.syncPolicy.retry, or returns false when there
// is none. Unparseable durations fall back to the defaults (5s, 3m, 2):
// they are reported as a spec error by Validate.
func RetryPolicy(app *v1alpha1.Application) (Retry, bool) {
	p := app.Spec.SyncPolicy
	if p == nil || p.Retry == nil {
		return Retry{}, false
	}
	r := Retry{Limit: p.Retry.Limit, Duration: 5 * time.Second, MaxDuration: 3 * time.Minute, Factor: 2}
	if b := p.Retry.Backoff; b != nil {
		if d, err := time.ParseDuration(b.Duration); err == nil && d > 0 {
			r.Duration = d
		}
		if d, err := time.ParseDuration(b.MaxDuration); err == nil && d > 0 {
			r.MaxDuration = d
		}
		if b.Factor != nil && *b.Factor > 0 {
			r.Factor = *b.Factor
		}
	}
	return r, true
}

// Backoff is the wait before retry n (0-based).
func (r Retry) Backoff(n int64) time.Duration {
	d := r.Duration
	for i := int64(0); i < n && d < r.MaxDuration; i++ {
		d *= time.Duration(r.Factor)
	}
	return min(d, r.MaxDuration)
}

// Allows reports whether retry n (0-based) may run.
func (r Retry) Allows(n int64) bool { return r.Limit < 0 || n < r.Limit }
