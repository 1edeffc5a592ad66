package controller

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
	convergev1 "converge.dev/converge/internal/api/converge/v1alpha1"
	helmv2 "converge.dev/converge/internal/api/fluxcd/helm/v2"
	imagev1 "converge.dev/converge/internal/api/fluxcd/image/v1"
	kustomizev1 "converge.dev/converge/internal/api/fluxcd/kustomize/v1"
	notificationv1 "converge.dev/converge/internal/api/fluxcd/notification/v1"
	notificationv1beta3 "converge.dev/converge/internal/api/fluxcd/notification/v1beta3"
	sourcev1 "converge.dev/converge/internal/api/fluxcd/source/v1"
	"converge.dev/converge/internal/engine"
	"converge.dev/converge/internal/helmrelease"
	"converge.dev/converge/internal/shard"
	"converge.dev/converge/internal/webhook"
)

// Options configure Run.
type Options struct {
	// Engine runs the units. Required.
	Engine *engine.Engine
	// LeaderElection makes only one replica reconcile at a time.
	LeaderElection bool
	// LeaderElectionNamespace holds the lease. If empty, the in-cluster
	// namespace or "default".
	LeaderElectionNamespace string
	// Concurrency is the number of units of each kind (Applications,
	// Kustomizations, HelmReleases) reconciled at once. If zero,
	// DefaultConcurrency.
	Concurrency int
	// Interval is the Git polling interval. If zero, three minutes.
	Interval time.Duration
	// MetricsAddr serves Prometheus metrics. If empty, they are off.
	MetricsAddr string
	// Logger receives controller-runtime's logs. The zero Logger drops
	// them.
	Logger logr.Logger
	// WebhookAddr serves the push receiver at /api/webhook, e.g. ":8081".
	// If empty, there is none and Git is polled only.
	WebhookAddr string
	// WebhookSecrets verify pushes, per forge; a forge without a secret
	// is refused.
	WebhookSecrets webhook.Secrets
	// WebhookReady, if set, is told the receiver's bound address.
	WebhookReady func(net.Addr)
	// UI serves the web UI and its API; its zero value serves none.
	UI UIOptions
	// WatchLabelSelector limits the units and sources this replica
	// reconciles to those whose labels match, as Flux's
	// --watch-label-selector does. Its sharding.fluxcd.io/key convention
	// runs one replica with "!sharding.fluxcd.io/key" and one per shard
	// with "sharding.fluxcd.io/key=shard1"; with leader election, each
	// selector elects its own leader. If empty, all.
	WatchLabelSelector string
	// Sharding, if Sharding.Shards is above zero, splits the units and
	// sources among every replica that runs with the same Shards: each
	// holds some of the shards' Leases, in Sharding.Namespace (if empty,
	// LeaderElectionNamespace, or "default"), and reconciles the objects
	// whose namespace/name hashes to them. Sharding.Identity names the
	// replica (if empty, the host name). Exclusive with LeaderElection:
	// with shards every replica works. Sharding.Acquired is the
	// controller's own.
	Sharding shard.Options
}

// DefaultConcurrency is the number of units of each kind reconciled at
// once when Options say nothing. A reconcile spends nearly all its time
// waiting on the API server and Git, not on CPU, so the workers are
// many; the pace is set by the API server, which queues or refuses
// (429, retried by the client) what its priority and fairness do not
// admit, not by a client-side rate limit or a short worker pool.
const DefaultConcurrency = 20

// resync is the result of a reconcile that is done until its interval.
// The periodic comparison waits in the queue behind events (a live
// edit, a spec change, a push, a source's new revision), so that under
// load drift is healed and commits applied first, not after a full
// round of resyncs.
func resync(after time.Duration) ctrl.Result {
	low := handler.LowPriority
	return ctrl.Result{RequeueAfter: after, Priority: &low}
}

// workers is the controller option for n workers (DefaultConcurrency
// if zero).
func workers(n int) controller.Options {
	if n <= 0 {
		n = DefaultConcurrency
	}
	return controller.Options{MaxConcurrentReconciles: n}
}

// Scheme knows the built-in kinds and the dialects' kinds.
func Scheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := sourcev1.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := helmv2.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := kustomizev1.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := convergev1.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := imagev1.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := notificationv1.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := notificationv1beta3.AddToScheme(s); err != nil {
		return nil, err
	}
	return s, nil
}

// Run runs the controllers until ctx is done.
func Run(ctx context.Context, cfg *rest.Config, o Options) error {
	s, err := Scheme()
	if err != nil {
		return err
	}
	if o.Logger.GetSink() != nil {
		// Only when given: several replicas in one test process share
		// controller-runtime's one logger.
		ctrl.SetLogger(o.Logger)
	}
	metrics := o.MetricsAddr
	if metrics == "" {
		metrics = "0"
	}
	if o.LeaderElection && o.Sharding.Shards > 0 {
		return errors.New("leader election and shards exclude each other: with shards, every replica reconciles its part")
	}
	// A test binary runs several managers (replicas, cli's up tests one
	// after another): their controllers' names would clash. A real
	// process runs one.
	skipNames := testing.Testing()
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  s,
		LeaderElection:          o.LeaderElection,
		LeaderElectionID:        electionID(o.WatchLabelSelector),
		LeaderElectionNamespace: o.LeaderElectionNamespace,
		Controller:              config.Controller{SkipNameValidation: &skipNames},
		// Go's profiles beside the metrics, as Flux's controllers serve
		// them: where a large fleet's memory and CPU go is read there.
		Metrics: metricsserver.Options{BindAddress: metrics, ExtraHandlers: map[string]http.Handler{
			"/debug/pprof/":        http.HandlerFunc(pprof.Index),
			"/debug/pprof/cmdline": http.HandlerFunc(pprof.Cmdline),
			"/debug/pprof/profile": http.HandlerFunc(pprof.Profile),
			"/debug/pprof/symbol":  http.HandlerFunc(pprof.Symbol),
			"/debug/pprof/trace":   http.HandlerFunc(pprof.Trace),
		}},
		HealthProbeBindAddress: "0",
		// Nothing the controller reads from its caches needs
		// managedFields (plans read live objects from the API server), and
		// they are often half an object's size: the metadata informers
		// that watch every kind the units apply would double for them.
		Cache: cache.Options{DefaultTransform: cache.TransformStripManagedFields()},
	})
	if err != nil {
		return fmt.Errorf("controller manager: %w", err)
	}
	o.Engine = o.Engine.Watching(newLiveIndex(mgr.GetCache()))
	g, err := newGate(mgr.GetCache(), o.WatchLabelSelector)
	if err != nil {
		return err
	}
	if o.Sharding.Shards > 0 {
		if g.ring, err = newRing(cfg, o, g); err != nil {
			return err
		}
		if err := mgr.Add(ringRunnable{g.ring}); err != nil {
			return err
		}
	}
	r := &ApplicationReconciler{Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), Engine: o.Engine, Interval: o.Interval, Concurrency: o.Concurrency,
		Recorder: mgr.GetEventRecorder("converge-controller"), gate: g}
	if err := r.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("application controller: %w", err)
	}
	if err := (&ApplicationSetReconciler{Client: mgr.GetClient(), Engine: o.Engine, gate: g}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("applicationset controller: %w", err)
	}
	if err := (&GitRepositoryReconciler{Client: mgr.GetClient(), Engine: o.Engine, gate: g}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("gitrepository controller: %w", err)
	}
	if err := (&KustomizationReconciler{Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), Engine: o.Engine, RESTConfig: cfg, Concurrency: o.Concurrency,
		Recorder: mgr.GetEventRecorder("converge-controller"), gate: g}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("kustomization controller: %w", err)
	}
	if err := (&OCIRepositoryReconciler{Client: mgr.GetClient(), Engine: o.Engine, gate: g}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("ocirepository controller: %w", err)
	}
	idx := &indexes{}
	charts := &chartLoader{client: mgr.GetClient(), engine: o.Engine, indexes: idx}
	if err := (&HelmRepositoryReconciler{Client: mgr.GetClient(), indexes: idx, gate: g}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("helmrepository controller: %w", err)
	}
	if err := (&HelmChartReconciler{Client: mgr.GetClient(), charts: charts, gate: g}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("helmchart controller: %w", err)
	}
	if err := (&HelmReleaseReconciler{Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), Engine: o.Engine, Helm: helmrelease.New(cfg), RESTConfig: cfg,
		Concurrency: o.Concurrency, charts: charts, gate: g}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("helmrelease controller: %w", err)
	}
	if err := (&PipelineReconciler{Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), Engine: o.Engine, gate: g, charts: charts}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("pipeline controller: %w", err)
	}
	tags := &imageTags{}
	if err := (&ImageRepositoryReconciler{Client: mgr.GetClient(), tags: tags, gate: g}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("imagerepository controller: %w", err)
	}
	if err := (&ImagePolicyReconciler{Client: mgr.GetClient(), Engine: o.Engine, tags: tags, gate: g}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("imagepolicy controller: %w", err)
	}
	if err := (&ImageUpdateAutomationReconciler{Client: mgr.GetClient(), Engine: o.Engine, gate: g}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("imageupdateautomation controller: %w", err)
	}
	if err := (&ProviderReconciler{Client: mgr.GetClient(), gate: g}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("provider controller: %w", err)
	}
	if err := (&AlertReconciler{Client: mgr.GetClient(), gate: g}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("alert controller: %w", err)
	}
	if err := (&ReceiverReconciler{Client: mgr.GetClient(), Serving: o.WebhookAddr != "", gate: g}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("receiver controller: %w", err)
	}
	if err := mgr.Add(&notifier{client: mgr.GetClient(), cache: mgr.GetCache(), gate: g, recorder: mgr.GetEventRecorder("converge-notifier")}); err != nil {
		return fmt.Errorf("notifier: %w", err)
	}
	if o.WebhookAddr != "" {
		mux := http.NewServeMux()
		mux.Handle(WebhookPath, &webhookHandler{reader: mgr.GetClient(), writer: mgr.GetClient(), secrets: o.WebhookSecrets})
		mux.Handle(HookPrefix, &receiverHandler{client: mgr.GetClient()})
		if err := mgr.Add(&httpServer{name: "webhook receiver", addr: o.WebhookAddr, handler: mux, ready: o.WebhookReady, readTimeout: time.Minute}); err != nil {
			return fmt.Errorf("webhook receiver: %w", err)
		}
	}
	if o.UI.Addr != "" {
		if err := addUI(ctx, mgr, o.UI, o.Engine.Commit); err != nil {
			return fmt.Errorf("ui: %w", err)
		}
	}
	return mgr.Start(ctx)
}
