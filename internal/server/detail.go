package server

import (
	"context"
	"net/http"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
	convergev1 "converge.dev/converge/internal/api/converge/v1alpha1"
	helmv2 "converge.dev/converge/internal/api/fluxcd/helm/v2"
	kustomizev1 "converge.dev/converge/internal/api/fluxcd/kustomize/v1"
	sourcev1 "converge.dev/converge/internal/api/fluxcd/source/v1"
	"converge.dev/converge/internal/server/rbac"
	"converge.dev/converge/internal/source/git"
	"converge.dev/converge/internal/tree"
	"converge.dev/converge/internal/units"
)

// Detail is one unit's page.
type Detail struct {
	Unit       units.Summary `json:"unit"`
	Conditions []Condition   `json:"conditions"`
	// Tree is what the unit applied, each object with its children
	// through ownerReferences (Deployment → ReplicaSet → Pod).
	Tree []*Node `json:"tree"`
	// TreeNote says why the tree is empty or partial, if it is.
	TreeNote  string                  `json:"treeNote,omitempty"`
	History   []History               `json:"history"`
	Drift     *convergev1.DriftReport `json:"drift,omitempty"`
	Operation *Operation              `json:"operation,omitempty"`
	AutoSync  bool                    `json:"autoSync"`
	Suspended bool                    `json:"suspended"`
	// Allowed are the actions this user may take here: the page shows
	// only those buttons (the server checks again on each action).
	Allowed map[string]bool `json:"allowed"`
	// Stages are a Pipeline's, in order.
	Stages []Stage `json:"stages,omitempty"`
}

// Stage is one stage of a Pipeline: what runs there, its bake, and the
// promotion into it with its gates and pull request.
type Stage struct {
	Name         string            `json:"name"`
	Digests      map[string]string `json:"digests,omitempty"`
	Revision     string            `json:"revision,omitempty"`
	Healthy      bool              `json:"healthy"`
	HealthySince time.Time         `json:"healthySince,omitzero"`
	Message      string            `json:"message,omitempty"`
	Verified     string            `json:"verified,omitempty"`
	Hold         string            `json:"hold,omitempty"`
	RolledBack   string            `json:"rolledBack,omitempty"`
	Promotion    *Promotion        `json:"promotion,omitempty"`
}

// Promotion is an open promotion into a stage.
type Promotion struct {
	Name    string                  `json:"name"`
	Phase   string                  `json:"phase,omitempty"`
	Message string                  `json:"message,omitempty"`
	PR      string                  `json:"pr,omitempty"`
	Gates   []convergev1.GateStatus `json:"gates,omitempty"`
}

// Condition is a condition of either dialect.
type Condition struct {
	Type    string    `json:"type"`
	Status  string    `json:"status,omitempty"`
	Reason  string    `json:"reason,omitempty"`
	Message string    `json:"message,omitempty"`
	Since   time.Time `json:"since,omitzero"`
}

// Node is one object of a unit's tree.
type Node = tree.Node

// History is one deployment of the unit.
type History struct {
	ID         int64     `json:"id"`
	Revision   string    `json:"revision"`
	DeployedAt time.Time `json:"deployedAt,omitzero"`
	Source     string    `json:"source,omitempty"`
	Status     string    `json:"status,omitempty"`
	// Commit is the revision's author and message, when the controller's
	// Git cache holds it.
	Commit *git.Commit `json:"commit,omitempty"`
}

// commit looks sha up in the Git cache; nil when it cannot.
func (s *Server) commit(repoURL, sha string) *git.Commit {
	if s.o.Commits == nil || repoURL == "" {
		return nil
	}
	c, err := s.o.Commits(repoURL, sha)
	if err != nil {
		return nil
	}
	return &c
}

// Operation is an Application's last or running sync.
type Operation struct {
	Phase      string    `json:"phase"`
	Message    string    `json:"message,omitempty"`
	Revision   string    `json:"revision,omitempty"`
	StartedAt  time.Time `json:"startedAt,omitzero"`
	FinishedAt time.Time `json:"finishedAt,omitzero"`
	By         string    `json:"by,omitempty"`
}

// forbidden is the one answer for a unit the user may not see and for
// one that does not exist: which it is would tell its name exists.
func forbidden(w http.ResponseWriter) {
	writeError(w, http.StatusForbidden, "not allowed, or no such unit")
}

// unit finds the request's unit in the index, if the user may act on it.
func (s *Server) unit(w http.ResponseWriter, r *http.Request, u rbac.User, action string) (units.Summary, bool) {
	ref := units.Ref{Kind: r.PathValue("kind"), Namespace: r.PathValue("namespace"), Name: r.PathValue("name")}
	sum, ok := s.o.Index.Get(ref)
	if !ok || !s.can(u, sum, rbac.Get) {
		forbidden(w)
		return sum, false
	}
	if action != rbac.Get && !s.can(u, sum, action) {
		writeError(w, http.StatusForbidden, "not allowed: "+action)
		return sum, false
	}
	return sum, true
}

func (s *Server) detail(w http.ResponseWriter, r *http.Request, u rbac.User) {
	sum, ok := s.unit(w, r, u, rbac.Get)
	if !ok {
		return
	}
	ctx := r.Context()
	d := Detail{Unit: sum, Conditions: []Condition{}, Tree: []*Node{}, History: []History{}, Allowed: map[string]bool{}}
	key := types.NamespacedName{Namespace: sum.Namespace, Name: sum.Name}
	var err error
	switch sum.Kind {
	case "Application":
		err = s.application(ctx, key, &d)
	case "Kustomization":
		err = s.kustomization(ctx, key, &d)
	case "HelmRelease":
		err = s.helmRelease(ctx, key, &d)
	case "Pipeline":
		err = s.pipeline(ctx, key, &d)
	default:
		d.TreeNote = sum.Kind + " applies nothing itself"
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	for _, a := range actionsFor(sum.Kind) {
		d.Allowed[a.name] = s.can(u, sum, a.rbac)
	}
	writeJSON(w, http.StatusOK, d)
}

func (s *Server) application(ctx context.Context, key types.NamespacedName, d *Detail) error {
	a := &v1alpha1.Application{}
	if err := s.o.Cache.Get(ctx, key, a); err != nil {
		return err
	}
	for _, c := range a.Status.Conditions {
		d.Conditions = append(d.Conditions, Condition{Type: c.Type, Status: "True", Message: c.Message, Since: timeOf(c.LastTransitionTime)})
	}
	d.Tree = tree.FromApplication(a)
	for i := len(a.Status.History) - 1; i >= 0; i-- { // newest first
		h := a.Status.History[i]
		d.History = append(d.History, History{ID: h.ID, Revision: h.Revision, DeployedAt: h.DeployedAt.Time, Source: h.Source.RepoURL + " " + h.Source.Path,
			Commit: s.commit(h.Source.RepoURL, h.Revision)})
	}
	d.Drift = a.Status.Drift
	if op := a.Status.OperationState; op != nil {
		o := &Operation{Phase: op.Phase, Message: op.Message, StartedAt: op.StartedAt.Time}
		if op.FinishedAt != nil {
			o.FinishedAt = op.FinishedAt.Time
		}
		if op.SyncResult != nil {
			o.Revision = op.SyncResult.Revision
		}
		if by := op.Operation.InitiatedBy; by != nil {
			o.By = by.Username
		}
		d.Operation = o
	}
	d.AutoSync = a.Spec.SyncPolicy != nil && a.Spec.SyncPolicy.Automated != nil
	s.grow(ctx, d)
	return nil
}

func (s *Server) kustomization(ctx context.Context, key types.NamespacedName, d *Detail) error {
	k := &kustomizev1.Kustomization{}
	if err := s.o.Cache.Get(ctx, key, k); err != nil {
		return err
	}
	d.Conditions = fluxConditions(k.Status.Conditions)
	d.Tree = tree.FromInventory(k.Status.Inventory)
	if rev := k.Status.LastAppliedRevision; rev != "" {
		h := History{Revision: rev, Status: "applied"}
		// main@sha1:<commit>, from the GitRepository's URL.
		if _, sha, ok := strings.Cut(rev, "@sha1:"); ok && k.Spec.SourceRef.Kind == "GitRepository" {
			src := &sourcev1.GitRepository{}
			ns := k.Spec.SourceRef.Namespace
			if ns == "" {
				ns = k.Namespace
			}
			if err := s.o.Cache.Get(ctx, types.NamespacedName{Namespace: ns, Name: k.Spec.SourceRef.Name}, src); err == nil {
				h.Commit = s.commit(src.Spec.URL, sha)
			}
		}
		d.History = append(d.History, h)
	}
	d.Drift, d.Suspended = k.Status.Drift, k.Spec.Suspend
	d.AutoSync = !k.Spec.Suspend
	s.grow(ctx, d)
	return nil
}

func (s *Server) helmRelease(ctx context.Context, key types.NamespacedName, d *Detail) error {
	h := &helmv2.HelmRelease{}
	if err := s.o.Cache.Get(ctx, key, h); err != nil {
		return err
	}
	d.Conditions = fluxConditions(h.Status.Conditions)
	for _, snap := range h.Status.History {
		d.History = append(d.History, History{ID: int64(snap.Version), Revision: snap.ChartName + "@" + snap.ChartVersion, Status: snap.Status})
	}
	d.Suspended, d.AutoSync = h.Spec.Suspend, !h.Spec.Suspend
	d.Tree = tree.FromInventory(h.Status.Inventory)
	if h.Status.Inventory == nil {
		d.TreeNote = "no release recorded its objects yet"
	}
	s.grow(ctx, d)
	return nil
}

func (s *Server) pipeline(ctx context.Context, key types.NamespacedName, d *Detail) error {
	p := &convergev1.Pipeline{}
	if err := s.o.Cache.Get(ctx, key, p); err != nil {
		return err
	}
	d.Conditions = fluxConditions(p.Status.Conditions)
	d.TreeNote = "a Pipeline applies nothing itself: its stages' units do"
	for _, st := range p.Status.Stages {
		out := Stage{Name: st.Name, Digests: st.Digests, Revision: st.Revision, Healthy: st.Healthy, HealthySince: timeOf(st.HealthySince),
			Message: st.Message, Verified: st.Verified}
		if st.Hold != nil {
			out.Hold = st.Hold.Reason
		}
		if st.RolledBack != nil {
			out.RolledBack = st.RolledBack.Message
		}
		if st.Promotion != "" {
			pr := &convergev1.Promotion{}
			out.Promotion = &Promotion{Name: st.Promotion}
			if err := s.o.Cache.Get(ctx, types.NamespacedName{Namespace: p.Namespace, Name: st.Promotion}, pr); err == nil {
				out.Promotion.Phase, out.Promotion.Message, out.Promotion.Gates = pr.Status.Phase, pr.Status.Message, pr.Status.Gates
				if pr.Status.PR != nil {
					out.Promotion.PR = pr.Status.PR.URL
				}
			}
		}
		d.Stages = append(d.Stages, out)
	}
	return nil
}

func fluxConditions(conds []metav1.Condition) []Condition {
	out := []Condition{}
	for _, c := range conds {
		out = append(out, Condition{Type: c.Type, Status: string(c.Status), Reason: c.Reason, Message: c.Message, Since: c.LastTransitionTime.Time})
	}
	return out
}

func timeOf(t *metav1.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.Time
}

// events answers GET .../events: the unit's Events, newest first. It is
// the one read of the API server a unit's page makes.
func (s *Server) events(w http.ResponseWriter, r *http.Request, u rbac.User) {
	sum, ok := s.unit(w, r, u, rbac.Get)
	if !ok {
		return
	}
	list := &corev1.EventList{}
	err := s.o.APIReader.List(r.Context(), list, client.InNamespace(sum.Namespace),
		client.MatchingFields{"involvedObject.name": sum.Name, "involvedObject.kind": sum.Kind})
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	type event struct {
		Type, Reason, Message string
		Count                 int32
		Last                  time.Time
	}
	out := []event{}
	for _, e := range list.Items {
		last := e.LastTimestamp.Time
		if last.IsZero() {
			last = e.EventTime.Time
		}
		out = append(out, event{Type: e.Type, Reason: e.Reason, Message: e.Message, Count: e.Count, Last: last})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Last.After(out[j].Last) })
	writeJSON(w, http.StatusOK, out)
}

// grow adds the tree's children and health from the workload cache;
// without one the tree is what the unit applied.
func (s *Server) grow(ctx context.Context, d *Detail) {
	if s.o.Workloads != nil {
		tree.Grow(ctx, s.o.Workloads, d.Tree)
	}
}
