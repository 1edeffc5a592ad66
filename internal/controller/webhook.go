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

// webhookServer serves the receiver until ctx ends. It runs on every
// replica: any of them may receive a push.
type webhookServer struct {
	addr    string
	handler http.Handler
	// ready receives the bound address (useful with port 0).
	ready func(net.Addr)
}

func (s *webhookServer) Start(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("webhook receiver: listen %s: %w", s.addr, err)
	}
	if s.ready != nil {
		s.ready(ln.Addr())
	}
	mux := http.NewServeMux()
	mux.Handle(WebhookPath, s.handler)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("webhook receiver: %w", err)
	}
	return nil
}

// NeedLeaderElection is false: the receiver only annotates, and must
// answer on every replica.
func (s *webhookServer) NeedLeaderElection() bool { return false }
