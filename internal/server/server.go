// Package server is converge's HTTP API (/api/v1) and web UI: every
// unit of both dialects from the controller's caches, each with its
// resource tree, drift, history and events, and actions (refresh, sync,
// rollback, suspend, resume, delete) under logins and Argo CD's RBAC.
package server

import (
	"encoding/json"
	"errors"
	"net/http"

	"k8s.io/client-go/tools/record"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"converge.dev/converge/internal/server/rbac"
	"converge.dev/converge/internal/server/session"
	"converge.dev/converge/internal/source/git"
	"converge.dev/converge/internal/units"
)

// Options configure a Server.
type Options struct {
	// Index holds the units' summaries (Feed keeps it). Required.
	Index *units.Index
	// Cache reads one unit from the manager's informers. Required.
	Cache client.Reader
	// Workloads reads workloads, Pods, Jobs and claims (the kinds
	// tree.Grow reads) for the tree's children and health; its informers
	// should keep only what tree.WorkloadTransform keeps. If nil, a tree
	// is what the unit applied, with the health its status gives.
	Workloads client.Reader
	// Client writes what actions ask for. Required.
	Client client.Client
	// APIReader reads a unit's Events from the API server (the one read a
	// unit's page makes: a cache of every Event would cost more). Required.
	APIReader client.Reader
	// Sessions logs users in. Required.
	Sessions *session.Manager
	// OIDC, if set, logs users in through an OpenID Connect provider too.
	OIDC *session.OIDC
	// Policy returns the RBAC policy in force (argocd-rbac-cm may change
	// while the server runs). Required.
	Policy func() *rbac.Enforcer
	// ControlNamespace is Argo CD's own namespace: its Applications are
	// "<project>/<name>" in RBAC, others "<project>/<namespace>/<name>".
	// If empty, "argocd".
	ControlNamespace string
	// Recorder records each action as an Event on its unit, naming the
	// user. If nil, none are.
	Recorder record.EventRecorder
	// Commits reads a commit's author and message from the controller's
	// Git cache, for history. If nil, history shows revisions only.
	Commits func(repoURL, sha string) (git.Commit, error)
}

// Server serves the API and the UI.
type Server struct {
	o   Options
	mux *http.ServeMux
}

// New returns a Server.
func New(o Options) *Server {
	if o.ControlNamespace == "" {
		o.ControlNamespace = "argocd"
	}
	s := &Server{o: o, mux: http.NewServeMux()}
	s.routes()
	return s
}

// ServeHTTP serves a request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Referrer-Policy", "same-origin")
	s.mux.ServeHTTP(w, r)
}

func (s *Server) routes() {
	s.mux.HandleFunc("GET /api/v1/settings", s.settings)
	if s.o.OIDC != nil {
		s.mux.HandleFunc("GET /auth/login", s.o.OIDC.Login)
		s.mux.HandleFunc("GET /auth/callback", s.o.OIDC.Callback)
	}
	s.mux.HandleFunc("GET /api/v1/session", s.whoami)
	s.mux.HandleFunc("POST /api/v1/session", s.login)
	s.mux.HandleFunc("DELETE /api/v1/session", s.authed(s.logout))
	s.mux.HandleFunc("GET /api/v1/units", s.authed(s.list))
	s.mux.HandleFunc("GET /api/v1/stream", s.authed(s.stream))
	s.mux.HandleFunc("GET /api/v1/units/{kind}/{namespace}/{name}", s.authed(s.detail))
	s.mux.HandleFunc("GET /api/v1/units/{kind}/{namespace}/{name}/events", s.authed(s.events))
	s.mux.HandleFunc("POST /api/v1/units/{kind}/{namespace}/{name}/{action}", s.authed(s.act))
	s.mux.Handle("GET /", ui())
}

type handler func(w http.ResponseWriter, r *http.Request, u rbac.User)

// authed refuses a request without a login (401) or, if it changes
// anything, without its CSRF token (403), before the handler sees it.
func (s *Server) authed(h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		u, ok := s.o.Sessions.User(r)
		if !ok {
			writeError(w, http.StatusUnauthorized, "log in first")
			return
		}
		if err := s.o.Sessions.CheckCSRF(r); err != nil {
			writeError(w, http.StatusForbidden, err.Error())
			return
		}
		h(w, r, u)
	}
}

// settings tells the login page how one may log in; it needs no login
// and says nothing else.
func (s *Server) settings(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]bool{"sso": s.o.OIDC != nil})
}

func (s *Server) whoami(w http.ResponseWriter, r *http.Request) {
	u, ok := s.o.Sessions.User(r)
	if !ok {
		writeError(w, http.StatusUnauthorized, "log in first")
		return
	}
	writeJSON(w, http.StatusOK, u)
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	var in struct{ Username, Password string }
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&in); err != nil {
		writeError(w, http.StatusBadRequest, "a JSON body with username and password")
		return
	}
	u, err := s.o.Sessions.Login(in.Username, in.Password)
	switch {
	case errors.Is(err, session.ErrBadLogin):
		writeError(w, http.StatusUnauthorized, err.Error())
		return
	case errors.Is(err, session.ErrTooManyLogins):
		w.Header().Set("Retry-After", "60")
		writeError(w, http.StatusTooManyRequests, err.Error())
		return
	}
	if err == nil {
		err = s.o.Sessions.Start(w, u)
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, u)
}

func (s *Server) logout(w http.ResponseWriter, _ *http.Request, _ rbac.User) {
	s.o.Sessions.End(w)
	w.WriteHeader(http.StatusNoContent)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
