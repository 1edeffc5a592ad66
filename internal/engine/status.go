package engine

import (
	"context"

	"converge.dev/converge/internal/drift"
	"converge.dev/converge/internal/health"
	"converge.dev/converge/internal/object"
	"converge.dev/converge/internal/plan"
)

// ObjectStatus keeps the three states apart for one object: is it in Git
// (desired), does the cluster match (live), and does it work (runtime).
type ObjectStatus struct {
	Ref object.Ref `json:"ref"`
	// InGit is false for an object the unit owns that Git no longer has.
	InGit bool `json:"inGit"`
	// Sync is Synced, OutOfSync, Missing (not in the cluster) or Conflict.
	Sync string `json:"sync"`
	// Health is empty when no rule assesses the kind.
	Health  health.Status `json:"health,omitempty"`
	Message string        `json:"message,omitempty"`
	Source  string        `json:"source,omitempty"`
}

// UnitStatus is a unit's status.
type UnitStatus struct {
	Unit     string         `json:"unit"`
	Revision string         `json:"revision"`
	Synced   bool           `json:"synced"`
	Health   health.Status  `json:"health"`
	Objects  []ObjectStatus `json:"objects"`
	// Hooks are the hooks a sync of this revision would run; they are not
	// compared, but a project's kind rules still apply to them.
	Hooks []object.Ref `json:"hooks,omitempty"`
	// Drift explains each drifted live field; see Report.Drift.
	Drift []drift.Item `json:"drift,omitempty"`
	// SameRevision is true when the revision compared is the one the unit
	// applied last: its drift is then the cluster's doing, not Git's.
	SameRevision bool `json:"-"`
}

// RevertNow reports whether some drift must be reverted at once (a
// forbid rule, or a policy whose default is revert), whatever the
// unit's own self-healing says. Only at the revision the unit applied
// last: a sync then re-applies what is there, never a new commit nobody
// asked to deploy.
func (st UnitStatus) RevertNow() bool {
	if !st.SameRevision {
		return false
	}
	for _, it := range st.Drift {
		if it.Action == drift.Revert {
			return true
		}
	}
	return false
}

// Status compares the unit's revision with the cluster, object by object.
// It changes nothing. Fields that another field manager took over count as
// drift (OutOfSync), not as an error: the comparison is forced. An object
// not in the cluster is Missing without a dry run: a sync validates it
// before applying anything, and a first sync then dry-runs each object
// once, not twice.
func (e *Engine) Status(ctx context.Context, u Unit) (UnitStatus, error) {
	rep, err := e.Diff(ctx, u, SyncOptions{Prune: true, AllowEmpty: true, reusePredictions: true, absentMissing: true})
	if err != nil {
		return UnitStatus{}, err
	}
	st := UnitStatus{Unit: u.Name, Revision: rep.Revision, Synced: true, Health: health.Healthy, Drift: rep.Drift,
		SameRevision: rep.owned.Revision == rep.Revision}
	for _, s := range rep.Plan.Steps {
		if s.Action == plan.Hook {
			st.Hooks = append(st.Hooks, s.Ref) // run during a sync; not desired state
			continue
		}
		os := ObjectStatus{Ref: s.Ref, InGit: s.Desired != nil, Source: s.Source.File}
		switch s.Action {
		case plan.Create:
			os.Sync, os.Health = "Missing", health.Missing
		case plan.Unchanged:
			os.Sync = "Synced"
		case plan.Untouched:
			os.Sync, os.Message = "Synced", s.Reason // left alone on purpose
		case plan.Update, plan.Prune, plan.Orphan:
			os.Sync = "OutOfSync"
		case plan.Conflict:
			os.Sync, os.Message = "Conflict", s.Reason
		}
		if os.Sync != "Synced" {
			st.Synced = false
		}
		if s.Live != nil {
			if r, ok := e.o.Health.Assess(s.Live); ok {
				os.Health = r.Status
				if os.Message == "" { // why it was not applied says more
					os.Message = r.Message
				}
			}
		}
		if os.Health != "" && os.InGit {
			st.Health = health.Worst(st.Health, os.Health)
		}
		st.Objects = append(st.Objects, os)
	}
	return st, nil
}
