package controller

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
	"converge.dev/converge/internal/cluster"
	"converge.dev/converge/internal/clustertest"
	"converge.dev/converge/internal/engine"
	"converge.dev/converge/internal/gittest"
	"converge.dev/converge/internal/source/git"
)

// apiCounter counts API requests by verb and resource.
type apiCounter struct {
	next http.RoundTripper
	mu   sync.Mutex
	n    map[string]int
}

func (c *apiCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	kind := "write"
	switch {
	case r.Method == http.MethodGet:
		kind = "read"
	case strings.Contains(r.URL.RawQuery, "dryRun=All"):
		kind = "dry-run"
	}
	// /api/v1/namespaces/x/configmaps/y -> configmaps
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	res := ""
	for i := 0; i < len(parts); i++ {
		if parts[i] == "namespaces" && i+2 < len(parts) {
			i++
			continue
		}
		if i >= 2 && parts[0] == "api" || i >= 3 && parts[0] == "apis" {
			res = parts[i]
			break
		}
	}
	c.mu.Lock()
	c.n[kind]++
	c.n[kind+" "+res]++
	c.mu.Unlock()
	return c.next.RoundTrip(r)
}

func (c *apiCounter) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.n
	c.n = map[string]int{}
	return out
}

// BenchmarkSteadyStateResync200 converges 200 Applications (a
// ConfigMap, a Service and a Deployment each) and then measures one
// periodic resync round of all of them, which is what the poll interval
// triggers when nothing changed: its time and its API requests, by
// verb. It reconciles directly, as the workers do, with its own client
// so only its requests are counted. Run:
// go test ./internal/controller -run '^$' -bench SteadyStateResync200 -benchtime 3x
func BenchmarkSteadyStateResync200(b *testing.B) { steadyState(b, false) }

// BenchmarkSteadyStateResyncDrift200 is the same with drift on every
// Application: after the cold start an autoscaler (the HPA's manager on
// /scale) holds each Deployment's replicas, which the default policy
// leaves to it. A round then explains 200 drifted fields and writes
// nothing: what drift explanation costs when there is drift.
func BenchmarkSteadyStateResyncDrift200(b *testing.B) { steadyState(b, true) }

func steadyState(b *testing.B, drifted bool) {
	const apps = 200
	c, repo := setup(b)
	ns := clustertest.Namespace(b)
	files := map[string]string{}
	for i := 0; i < apps; i++ {
		dir := fmt.Sprintf("fleet/app-%03d/", i)
		name := fmt.Sprintf("app-%03d", i)
		files[dir+"cm.yaml"] = configMapYAML(name, "v1")
		files[dir+"svc.yaml"] = fmt.Sprintf("apiVersion: v1\nkind: Service\nmetadata: {name: %s}\nspec: {selector: {app: %s}, ports: [{port: 80}]}\n", name, name)
		files[dir+"deploy.yaml"] = fmt.Sprintf("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: %[1]s}\nspec: {replicas: 0, selector: {matchLabels: {app: %[1]s}}, template: {metadata: {labels: {app: %[1]s}}, spec: {containers: [{name: c, image: example/app:1}]}}}\n", name)
	}
	repo.Commit("fleet", files)
	repo.Publish()
	create(b, c, &v1alpha1.AppProject{
		ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: ns},
		Spec: v1alpha1.AppProjectSpec{SourceRepos: []string{"*"},
			Destinations: []v1alpha1.ApplicationDestination{{Server: "*", Namespace: "*"}}},
	})
	url := gittest.FileURL(repo.Bare)
	var reqs []ctrl.Request
	for i := 0; i < apps; i++ {
		name := fmt.Sprintf("app-%03d", i)
		create(b, c, app(ns, name, url, "fleet/"+name, nil))
		reqs = append(reqs, ctrl.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: name}})
	}
	start := time.Now()
	err := wait.PollUntilContextTimeout(context.Background(), time.Second, 10*time.Minute, true, func(ctx context.Context) (bool, error) {
		var list v1alpha1.ApplicationList
		if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return false, nil
		}
		n := 0
		for _, a := range list.Items {
			if a.Status.Sync.Status == "Synced" && a.Status.Health.Status == "Healthy" {
				n++
			}
		}
		return n == apps, nil
	})
	if err != nil {
		b.Fatalf("200 Applications not Synced and Healthy within 10m")
	}
	b.Logf("cold: 200 Applications Synced and Healthy in %s", time.Since(start).Round(time.Second))
	if drifted {
		cs := clustertest.Clientset(b)
		for i := 0; i < apps; i++ {
			name := fmt.Sprintf("app-%03d", i)
			sc := &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: autoscalingv1.ScaleSpec{Replicas: 1}}
			if _, err := cs.AppsV1().Deployments(ns).UpdateScale(context.Background(), name, sc, metav1.UpdateOptions{FieldManager: "kube-controller-manager"}); err != nil {
				b.Fatal(err)
			}
		}
	}

	counter := &apiCounter{n: map[string]int{}}
	cfg := rest.CopyConfig(clustertest.RESTConfig(b))
	cfg.QPS, cfg.Burst = 1000, 1000
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { counter.next = rt; return counter })
	cc, err := cluster.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	s, _ := Scheme()
	direct, err := client.New(cfg, client.Options{Scheme: s})
	if err != nil {
		b.Fatal(err)
	}
	// As in the manager: AppProjects come from an informer cache (its
	// initial LIST and WATCH are not part of a round), Applications are
	// read from the API server.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	informers, err := cache.New(cfg, cache.Options{Scheme: s})
	if err != nil {
		b.Fatal(err)
	}
	go informers.Start(ctx)
	if _, err := informers.GetInformer(ctx, &v1alpha1.AppProject{}); err != nil {
		b.Fatal(err)
	}
	informers.WaitForCacheSync(ctx)
	cached, err := client.New(cfg, client.Options{Scheme: s, Cache: &client.CacheOptions{Reader: informers}})
	if err != nil {
		b.Fatal(err)
	}
	// AppProjects come from the manager's cache in Reconcile.
	r := &ApplicationReconciler{Client: cached, Reader: direct, Interval: time.Hour, projects: informers,
		Engine: engine.New(engine.Options{Cluster: cc, Fetcher: git.New(git.Options{CacheDir: b.TempDir(), MaxAge: time.Minute})})}
	round := func() {
		for _, req := range reqs {
			if _, err := r.Reconcile(context.Background(), req); err != nil {
				b.Fatal(err)
			}
		}
	}
	measureRounds(b, counter, round, apps, "ms/app")
	items := 0
	for _, req := range reqs {
		var a v1alpha1.Application
		if err := c.Get(context.Background(), req.NamespacedName, &a); err == nil && a.Status.Drift != nil {
			items += a.Status.Drift.Total
		}
	}
	b.ReportMetric(float64(items), "drift-items")
}

// measureRounds warms up with one round, then times b.N rounds and
// reports their API requests per round, by verb and by verb and
// resource, and the time per unit.
func measureRounds(b *testing.B, counter *apiCounter, round func(), units int, perUnit string) {
	round() // warm the engine's render cache and the REST mapper
	counter.take()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		round()
	}
	b.StopTimer()
	got := counter.take()
	per := func(k string) float64 { return float64(got[k]) / float64(b.N) }
	b.ReportMetric(per("read"), "reads/round")
	b.ReportMetric(per("write"), "writes/round")
	b.ReportMetric(per("dry-run"), "dry-runs/round")
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N)/float64(units), perUnit)
	var keys []string
	for k := range got {
		if strings.Contains(k, " ") {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		b.Logf("%-32s %8.1f per round", k, per(k))
	}
}
