package controller

import (
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Metrics are registered with controller-runtime's registry, which also
// carries the work queue's depth, latency and retries.
var (
	syncTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "converge_app_sync_total",
		Help: "Syncs of Applications, by outcome phase (Succeeded, Failed).",
	}, []string{"namespace", "name", "phase"})
	syncDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "converge_app_sync_duration_seconds",
		Help:    "Duration of Application syncs, health waits included.",
		Buckets: prometheus.ExponentialBuckets(0.05, 2, 12),
	}, []string{"namespace", "name"})
	appInfo = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "converge_app_info",
		Help: "1 for each Application, labelled with its current sync and health status.",
	}, []string{"namespace", "name", "project", "sync_status", "health_status"})
	webhookDeliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "converge_webhook_deliveries_total",
		Help: "Webhook deliveries, by answer code (200 handled, 202 ignored, 401 unverified, 400 malformed, 500 failed).",
	}, []string{"code"})
	webhookRefreshes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "converge_webhook_refreshes_total",
		Help: "Applications refreshed because a push affected them.",
	}, []string{"namespace", "name"})
)

var registerOnce sync.Once

func registerMetrics() {
	registerOnce.Do(func() {
		metrics.Registry.MustRegister(syncTotal, syncDuration, appInfo, webhookDeliveries, webhookRefreshes, driftFields, forgeRequests, notifications, imageAutomationRuns)
	})
}

func observeSync(namespace, name, phase string, d time.Duration) {
	syncTotal.WithLabelValues(namespace, name, phase).Inc()
	syncDuration.WithLabelValues(namespace, name).Observe(d.Seconds())
}

// setAppInfo keeps exactly one series per Application.
func setAppInfo(namespace, name, project, syncStatus, health string) {
	appInfo.DeletePartialMatch(prometheus.Labels{"namespace": namespace, "name": name})
	appInfo.WithLabelValues(namespace, name, project, syncStatus, health).Set(1)
}

// deleteAppInfo drops a deleted Application's series.
func deleteAppInfo(namespace, name string) {
	appInfo.DeletePartialMatch(prometheus.Labels{"namespace": namespace, "name": name})
}

// notifications counts deliveries to Providers.
var notifications = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "converge_notifications_total",
	Help: "Events sent to notification Providers, by provider type and result (sent; failed; skipped: a commit status without a commit; dropped: more than 1,000 waiting).",
}, []string{"type", "result"})

// imageAutomationRuns counts ImageUpdateAutomation runs by whether they
// cloned the repository.
var imageAutomationRuns = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "converge_image_automation_runs_total",
	Help: "ImageUpdateAutomation runs past their checks, by result: cloned (the markers were read), unchanged (same branch head and picks as the last run: nothing cloned).",
}, []string{"result"})

// forgeRequests counts requests to forges, for the cost of a promotion.
var forgeRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "converge_forge_requests_total",
	Help: "Requests to forge APIs by promotions, by HTTP method.",
}, []string{"method"})

type countingTransport struct{ next http.RoundTripper }

func (c countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	forgeRequests.WithLabelValues(req.Method).Inc()
	return c.next.RoundTrip(req)
}
