package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
	"converge.dev/converge/internal/webhook"
)

// ManifestGeneratePathsAnnotation limits which changed paths concern an
// Application, as in Argo CD.
const ManifestGeneratePathsAnnotation = "argocd.argoproj.io/manifest-generate-paths"

// WebhookPath is where the receiver listens, Argo CD's path.
const WebhookPath = "/api/webhook"

// webhookHandler turns verified pushes into refreshes of the affected
// Applications. It marks them with the refresh annotation rather than
// queueing them itself, so that whichever replica receives the push, the
// leader reconciles, and the refresh is visible on the object.
type webhookHandler struct {
	reader  client.Reader
	writer  client.Client
	secrets webhook.Secrets
}

// webhookReply is the receiver's JSON answer.
type webhookReply struct {
	Refreshed []string `json:"refreshed"`
	Error     string   `json:"error,omitempty"`
}

func (h *webhookHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	push, err := webhook.Parse(r, h.secrets)
	switch {
	case errors.Is(err, webhook.ErrUnverified):
		reply(w, http.StatusUnauthorized, webhookReply{Error: err.Error()})
		return
	case errors.Is(err, webhook.ErrIgnored):
		reply(w, http.StatusAccepted, webhookReply{Error: err.Error()})
		return
	case err != nil:
		reply(w, http.StatusBadRequest, webhookReply{Error: err.Error()})
		return
	}
	refreshed, err := h.refresh(r.Context(), push)
	if err != nil {
		reply(w, http.StatusInternalServerError, webhookReply{Refreshed: refreshed, Error: err.Error()})
		return
	}
	reply(w, http.StatusOK, webhookReply{Refreshed: refreshed})
}

func reply(w http.ResponseWriter, code int, body webhookReply) {
	webhookDeliveries.WithLabelValues(strconv.Itoa(code)).Inc()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(body)
}

// refresh annotates every Application the push affects and no other.
func (h *webhookHandler) refresh(ctx context.Context, push webhook.Push) ([]string, error) {
	var apps v1alpha1.ApplicationList
	if err := h.reader.List(ctx, &apps); err != nil {
		return nil, fmt.Errorf("list applications: %w", err)
	}
	refreshed := []string{}
	var errs []error
	for _, app := range apps.Items {
		src := app.Spec.Source
		if src == nil || app.DeletionTimestamp != nil {
			continue
		}
		if !webhook.Affects(push, webhook.Source{RepoURL: src.RepoURL, Revision: src.TargetRevision, Path: src.Path,
			Paths: app.Annotations[ManifestGeneratePathsAnnotation]}) {
			continue
		}
		patch := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"`+RefreshAnnotation+`":"normal"}}}`))
		target := &v1alpha1.Application{}
		target.Namespace, target.Name = app.Namespace, app.Name
		if err := h.writer.Patch(ctx, target, patch); err != nil {
			errs = append(errs, fmt.Errorf("application %s/%s: refresh: %w", app.Namespace, app.Name, client.IgnoreNotFound(err)))
			continue
		}
		refreshed = append(refreshed, app.Namespace+"/"+app.Name)
		webhookRefreshes.WithLabelValues(app.Namespace, app.Name).Inc()
	}
	return refreshed, errors.Join(errs...)
}

// httpServer serves handler until ctx ends (the push receiver, the UI).
// It runs on every replica: any of them may be asked.
type httpServer struct {
	name    string
	addr    string
	handler http.Handler
	// ready receives the bound address (useful with port 0).
	ready func(net.Addr)
	// readTimeout bounds reading a request, body included; 0 does not
	// (the UI's event stream is one long request).
	readTimeout time.Duration
}

func (s *httpServer) Start(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("%s: listen %s: %w", s.name, s.addr, err)
	}
	if s.ready != nil {
		s.ready(ln.Addr())
	}
	srv := &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: s.readTimeout}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("%s: %w", s.name, err)
	}
	return nil
}

// NeedLeaderElection is false: a receiver only annotates, the UI reads
// caches and patches, and both must answer on every replica.
func (s *httpServer) NeedLeaderElection() bool { return false }
