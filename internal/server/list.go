package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	"converge.dev/converge/internal/server/rbac"
	"converge.dev/converge/internal/units"
)

// rbacObject is how Argo CD's RBAC names s: applications
// "<project>/<name>" (with the namespace outside the control-plane one),
// Flux's kinds "<namespace>/<name>".
func (s *Server) rbacObject(u units.Summary) (resource, object string) {
	resource = units.Kinds[u.Kind].Resource
	if u.Dialect != units.ArgoCD {
		return resource, u.Namespace + "/" + u.Name
	}
	if u.Namespace == s.o.ControlNamespace {
		return resource, u.Project + "/" + u.Name
	}
	return resource, u.Project + "/" + u.Namespace + "/" + u.Name
}

func (s *Server) can(u rbac.User, unit units.Summary, action string) bool {
	res, obj := s.rbacObject(unit)
	return s.o.Policy().Can(u, res, action, obj)
}

// list answers GET /api/v1/units: the units the user may get, filtered
// by dialect, kind, project, namespace, cluster, sync, health, selector
// (labels) and search (name), a page at a time (limit, after).
func (s *Server) list(w http.ResponseWriter, r *http.Request, u rbac.User) {
	v := r.URL.Query()
	q := units.Query{Dialect: v.Get("dialect"), Kind: v.Get("kind"), Project: v.Get("project"), Namespace: v.Get("namespace"),
		Cluster: v.Get("cluster"), Sync: v.Get("sync"), Health: v.Get("health"), Search: v.Get("search"), After: v.Get("after")}
	if sel := v.Get("selector"); sel != "" {
		parsed, err := labels.Parse(sel)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("selector: %v", err))
			return
		}
		q.Labels = parsed
	}
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit %q: not a number", l))
			return
		}
		q.Limit = n
	}
	check := s.o.Policy().For(u)
	q.Allow = func(unit units.Summary) bool {
		res, obj := s.rbacObject(unit)
		return check.Can(res, rbac.Get, obj)
	}
	page, err := s.o.Index.List(q)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, page)
}

// stream answers GET /api/v1/stream with server-sent events: one "unit"
// event per change of a unit the user may get. A client too slow to
// keep up gets a "resync" event and should list again.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, u rbac.User) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, "streaming is not supported here")
		return
	}
	events, stop := s.o.Index.Watch()
	defer stop()
	check := s.o.Policy().For(u)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, ": connected\n\n")
	flusher.Flush()
	ping := time.NewTicker(30 * time.Second)
	defer ping.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-ping.C:
			fmt.Fprint(w, ": ping\n\n")
		case e, ok := <-events:
			if !ok {
				fmt.Fprint(w, "event: resync\ndata: {}\n\n")
				flusher.Flush()
				return
			}
			if res, obj := s.rbacObject(e.Unit); !check.Can(res, rbac.Get, obj) {
				continue
			}
			data, _ := json.Marshal(e)
			fmt.Fprintf(w, "event: unit\ndata: %s\n\n", data)
		}
		flusher.Flush()
	}
}
