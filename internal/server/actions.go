package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
	"converge.dev/converge/internal/dialect/argocd"
	"converge.dev/converge/internal/dialect/flux"
	"converge.dev/converge/internal/server/rbac"
	"converge.dev/converge/internal/units"
)

// action is what a unit's page may ask for, and the RBAC action it needs
// (Argo CD's: refresh needs get, rollback needs sync).
type action struct{ name, rbac string }

var (
	refresh  = action{"refresh", rbac.Get}
	syncNow  = action{"sync", rbac.Sync}
	rollback = action{"rollback", rbac.Sync}
	suspend  = action{"suspend", rbac.Sync}
	resume   = action{"resume", rbac.Sync}
	remove   = action{"delete", rbac.Delete}
)

// actionsFor are the actions kind has.
func actionsFor(kind string) []action {
	switch kind {
	case "Application":
		return []action{refresh, syncNow, rollback, remove}
	case "ApplicationSet":
		return []action{refresh, remove}
	case "HelmRelease", "Kustomization", "GitRepository", "OCIRepository", "HelmRepository":
		return []action{refresh, syncNow, suspend, resume, remove}
	}
	return nil
}

// ActionRequest is an action's body; each action reads its fields.
type ActionRequest struct {
	// Hard refreshes from fresh sources (refresh, Applications).
	Hard bool `json:"hard,omitempty"`
	// Prune and DryRun shape a sync (Applications).
	Prune  bool `json:"prune,omitempty"`
	DryRun bool `json:"dryRun,omitempty"`
	// ID is the history entry to roll back to.
	ID int64 `json:"id,omitempty"`
	// Confirm must repeat the unit's name to delete it.
	Confirm string `json:"confirm,omitempty"`
}

// act answers POST /api/v1/units/{kind}/{namespace}/{name}/{action}.
func (s *Server) act(w http.ResponseWriter, r *http.Request, u rbac.User) {
	name := r.PathValue("action")
	var a *action
	for _, x := range actionsFor(r.PathValue("kind")) {
		if x.name == name {
			a = &x
		}
	}
	if a == nil {
		// Checked after access: an unknown action on a unit one may not
		// see must not tell that it exists.
		if _, ok := s.unit(w, r, u, rbac.Get); ok {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("%s has no action %q", r.PathValue("kind"), name))
		}
		return
	}
	sum, ok := s.unit(w, r, u, a.rbac)
	if !ok {
		return
	}
	var in ActionRequest
	if r.ContentLength != 0 {
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&in); err != nil {
			writeError(w, http.StatusBadRequest, "body: "+err.Error())
			return
		}
	}
	obj, err := s.do(r, sum, a.name, in, u)
	if err != nil {
		code := http.StatusInternalServerError
		if ue, ok := err.(userError); ok {
			code, err = ue.code, ue.err
		}
		writeError(w, code, err.Error())
		return
	}
	if s.o.Recorder != nil && obj != nil {
		s.o.Recorder.Eventf(obj, corev1.EventTypeNormal, "UserAction", "%s: %s by %s", sum.Kind, a.name, u.Name)
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"action": a.name, "unit": sum.Namespace + "/" + sum.Name})
}

type userError struct {
	code int
	err  error
}

func (e userError) Error() string { return e.err.Error() }

func refuse(code int, format string, a ...any) error {
	return userError{code, fmt.Errorf(format, a...)}
}

// do carries out an action as patches Argo CD's and Flux's controllers
// (here converge's) act on, and returns the object it touched.
func (s *Server) do(r *http.Request, sum units.Summary, name string, in ActionRequest, u rbac.User) (client.Object, error) {
	ctx := r.Context()
	key := types.NamespacedName{Namespace: sum.Namespace, Name: sum.Name}
	obj := newObject(sum.Kind)
	if err := s.o.Cache.Get(ctx, key, obj); err != nil {
		return nil, err
	}
	merge := func(patch map[string]any) error {
		data, _ := json.Marshal(patch)
		return s.o.Client.Patch(ctx, obj, client.RawPatch(types.MergePatchType, data))
	}
	annotate := func(k, v string) error {
		return merge(map[string]any{"metadata": map[string]any{"annotations": map[string]string{k: v}}})
	}
	now := time.Now().UTC().Format(time.RFC3339Nano)
	by := &v1alpha1.InitiatedBy{Username: u.Name}
	switch {
	case name == "delete":
		if in.Confirm != sum.Name {
			return nil, refuse(http.StatusBadRequest, "to delete %s, confirm with its name", sum.Name)
		}
		return obj, s.o.Client.Delete(ctx, obj)
	case sum.Kind == "Application" && name == "refresh":
		mode := "normal"
		if in.Hard {
			mode = "hard"
		}
		return obj, annotate(argocd.RefreshAnnotation, mode)
	case sum.Kind == "ApplicationSet" && name == "refresh":
		return obj, annotate(argocd.AppSetRefreshAnnotation, "true")
	case sum.Kind == "Application" && name == "sync":
		return obj, merge(map[string]any{"operation": v1alpha1.Operation{InitiatedBy: by,
			Sync: &v1alpha1.SyncOperation{Prune: in.Prune, DryRun: in.DryRun}}})
	case sum.Kind == "Application" && name == "rollback":
		app := obj.(*v1alpha1.Application)
		if app.Spec.SyncPolicy != nil && app.Spec.SyncPolicy.Automated != nil {
			// As Argo CD: automated sync would undo it at once.
			return nil, refuse(http.StatusConflict, "rollback cannot be initiated when auto-sync is enabled")
		}
		for _, h := range app.Status.History {
			if h.ID == in.ID {
				return obj, merge(map[string]any{"operation": v1alpha1.Operation{InitiatedBy: by,
					Sync: &v1alpha1.SyncOperation{Revision: h.Revision, Prune: in.Prune}}})
			}
		}
		return nil, refuse(http.StatusBadRequest, "no history entry %d", in.ID)
	case name == "refresh" || name == "sync":
		// Flux has one verb for both: reconcile now.
		return obj, annotate(flux.ReconcileRequestAnnotation, now)
	case name == "suspend" || name == "resume":
		return obj, merge(map[string]any{"spec": map[string]any{"suspend": name == "suspend"}})
	}
	return nil, refuse(http.StatusBadRequest, "%s has no action %q", sum.Kind, name)
}
