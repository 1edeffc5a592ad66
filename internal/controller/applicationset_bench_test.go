package controller

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
	"converge.dev/converge/internal/clustertest"
	"converge.dev/converge/internal/dialect/argocd"
)

// BenchmarkApplicationSet3x100 generates 300 Applications (a list of 100
// teams × the clusters generator over three real clusters: this one and
// two registered), each deploying a ConfigMap to its cluster, and
// reports the time from the set's creation to all 300 Synced and
// Healthy. Then it measures one steady-state round of the set, as the
// manager runs it (ApplicationSets, Applications and Secrets from
// informer caches): its API requests by verb, and its time. Run:
// go test ./internal/controller -run '^$' -bench ApplicationSet3x100 -benchtime 5x
func BenchmarkApplicationSet3x100(b *testing.B) {
	const teams = 100
	c, repo := setup(b)
	ns := clustertest.Namespace(b)
	target := "fleet-" + ns
	startRemote(b, c, ns, "east-"+ns, map[string]string{"fleet": "yes"})
	startRemote(b, c, ns, "west-"+ns, map[string]string{"fleet": "yes"})
	create(b, c, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "cluster-here", Namespace: ns, Labels: map[string]string{argocd.SecretTypeLabel: "cluster", "fleet": "yes"}},
		StringData: map[string]string{"name": "here-" + ns, "server": argocd.InClusterServer}})
	files := map[string]string{}
	var elements strings.Builder
	for i := range teams {
		team := fmt.Sprintf("team-%03d", i)
		files["fleet/"+team+"/cm.yaml"] = configMapYAML(team, "v1")
		fmt.Fprintf(&elements, "            - team: %s\n", team)
	}
	repo.Commit("fleet", files)
	repo.Publish()
	start := time.Now()
	appSet(b, c, fmt.Sprintf(`apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata:
  name: fleet
  namespace: %[1]s
spec:
  generators:
  - matrix:
      generators:
      - clusters:
          selector: {matchLabels: {fleet: "yes"}}
      - list:
          elements:
%[4]s  template:
    metadata:
      name: '{{name}}-{{team}}'
    spec:
      project: default
      source: {repoURL: 'file://%[2]s', targetRevision: HEAD, path: 'fleet/{{team}}'}
      destination: {server: '{{server}}', namespace: %[3]s}
      syncPolicy:
        automated: {prune: true}
        syncOptions: [CreateNamespace=true]
`, ns, repo.Bare, target, elements.String()))
	err := wait.PollUntilContextTimeout(context.Background(), time.Second, 15*time.Minute, true, func(ctx context.Context) (bool, error) {
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
		return n == 3*teams, nil
	})
	if err != nil {
		b.Fatalf("300 Applications not Synced and Healthy within 15m")
	}
	cold := time.Since(start)
	b.Logf("cold: 300 generated Applications on 3 clusters Synced and Healthy in %s", cold.Round(time.Second))

	counter := &apiCounter{n: map[string]int{}}
	cfg := rest.CopyConfig(clustertest.RESTConfig(b))
	cfg.QPS, cfg.Burst = 1000, 1000
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { counter.next = rt; return counter })
	s, _ := Scheme()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	informers, err := cache.New(cfg, cache.Options{Scheme: s, DefaultNamespaces: map[string]cache.Config{ns: {}}})
	if err != nil {
		b.Fatal(err)
	}
	go informers.Start(ctx)
	for _, o := range []client.Object{&v1alpha1.ApplicationSet{}, &v1alpha1.Application{}, &corev1.Secret{}} {
		if _, err := informers.GetInformer(ctx, o); err != nil {
			b.Fatal(err)
		}
	}
	informers.WaitForCacheSync(ctx)
	cached, err := client.New(cfg, client.Options{Scheme: s, Cache: &client.CacheOptions{Reader: informers}})
	if err != nil {
		b.Fatal(err)
	}
	r := &ApplicationSetReconciler{Client: cached} // no git generator: no engine
	req := ctrl.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: "fleet"}}
	measureRounds(b, counter, func() {
		if _, err := r.Reconcile(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}, 1, "ms/round")
	b.ReportMetric(cold.Seconds(), "cold-s") // after measureRounds: ResetTimer drops metrics
}
