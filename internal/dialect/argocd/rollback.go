package argocd

import (
	"fmt"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
)

// RollbackTo is the history entry `argocd app rollback APP [ID]` syncs
// to, with Argo CD's refusals: an Application with automated sync cannot
// be rolled back (the next automated sync would undo it); without an ID
// the entry before the last is taken, which needs two deployments; an ID
// not in the history is an error. id < 0 means no ID.
func RollbackTo(app *v1alpha1.Application, id int64) (v1alpha1.RevisionHistory, error) {
	if sp := app.Spec.SyncPolicy; sp != nil && sp.Automated != nil {
		return v1alpha1.RevisionHistory{}, fmt.Errorf("rollback cannot be initiated when auto-sync is enabled")
	}
	h := app.Status.History
	var e *v1alpha1.RevisionHistory
	switch {
	case id < 0 && len(h) < 2:
		return v1alpha1.RevisionHistory{}, fmt.Errorf("Application '%s' should have at least two successful deployments", app.Name)
	case id < 0:
		e = &h[len(h)-2]
	default:
		for i := range h {
			if h[i].ID == id {
				e = &h[i]
			}
		}
	}
	if e == nil {
		return v1alpha1.RevisionHistory{}, fmt.Errorf("application %s does not have deployment with id %v", app.Name, id)
	}
	// Argo CD syncs the entry's own source; converge syncs the
	// Application's source at the entry's revision, so a source that
	// moved since is refused rather than half rolled back.
	if src := app.Spec.Source; src != nil && (e.Source.RepoURL != "" && e.Source.RepoURL != src.RepoURL || e.Source.Path != src.Path) {
		return v1alpha1.RevisionHistory{}, fmt.Errorf("deployment %d of %s was rendered from %s path %q; the Application now renders %s path %q: rolling back to another source is not supported",
			e.ID, app.Name, e.Source.RepoURL, e.Source.Path, src.RepoURL, src.Path)
	}
	return *e, nil
}
