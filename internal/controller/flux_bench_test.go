package controller

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kustomizev1 "converge.dev/converge/internal/api/fluxcd/kustomize/v1"
	sourcev1 "converge.dev/converge/internal/api/fluxcd/source/v1"
	"converge.dev/converge/internal/cluster"
	"converge.dev/converge/internal/clustertest"
	"converge.dev/converge/internal/engine"
	"converge.dev/converge/internal/gittest"
	"converge.dev/converge/internal/source/git"
)

// BenchmarkFluxKustomizations200 applies 200 Kustomizations (a
// ConfigMap, a Service and a Deployment each) from one GitRepository:
// the cold start is logged, then one steady-state round of all 200
// reconciles is measured, with its API requests by verb. Run:
// go test ./internal/controller -run '^$' -bench FluxKustomizations200 -benchtime 3x
func BenchmarkFluxKustomizations200(b *testing.B) {
	const n = 200
	c, repo := setup(b)
	ns := clustertest.Namespace(b)
	files := map[string]string{}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("ks-%03d", i)
		dir := "flux-fleet/" + name + "/"
		files[dir+"cm.yaml"] = configMapYAML(name, "v1")
		files[dir+"svc.yaml"] = fmt.Sprintf("apiVersion: v1\nkind: Service\nmetadata: {name: %s}\nspec: {selector: {app: %s}, ports: [{port: 80}]}\n", name, name)
		files[dir+"deploy.yaml"] = fmt.Sprintf("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: %[1]s}\nspec: {replicas: 0, selector: {matchLabels: {app: %[1]s}}, template: {metadata: {labels: {app: %[1]s}}, spec: {containers: [{name: c, image: example/app:1}]}}}\n", name)
	}
	repo.Commit("flux fleet", files)
	repo.Publish()
	start := time.Now()
	create(b, c, &sourcev1.GitRepository{ObjectMeta: metav1.ObjectMeta{Name: "fleet", Namespace: ns},
		Spec: sourcev1.GitRepositorySpec{URL: gittest.FileURL(repo.Bare), Interval: metav1.Duration{Duration: time.Hour}}})
	var reqs []ctrl.Request
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("ks-%03d", i)
		create(b, c, &kustomizev1.Kustomization{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: kustomizev1.KustomizationSpec{SourceRef: kustomizev1.CrossNamespaceSourceReference{Kind: "GitRepository", Name: "fleet"},
				Path: "./flux-fleet/" + name, TargetNamespace: ns, Prune: true, Interval: metav1.Duration{Duration: time.Hour}}})
		reqs = append(reqs, ctrl.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: name}})
	}
	err := wait.PollUntilContextTimeout(context.Background(), time.Second, 10*time.Minute, true, func(ctx context.Context) (bool, error) {
		var list kustomizev1.KustomizationList
		if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return false, nil
		}
		ready := 0
		for _, ks := range list.Items {
			if isReady(ks.Status.Conditions) {
				ready++
			}
		}
		return ready == n, nil
	})
	if err != nil {
		b.Fatal("200 Kustomizations not Ready within 10m")
	}
	b.Logf("cold: GitRepository and 200 Kustomizations Ready in %s", time.Since(start).Round(100*time.Millisecond))

	counter := &apiCounter{n: map[string]int{}}
	cfg := rest.CopyConfig(clustertest.RESTConfig(b))
	cfg.QPS, cfg.Burst = 1000, 1000
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { counter.next = rt; return counter })
	cc, err := cluster.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	s, _ := Scheme()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	informers, err := cache.New(cfg, cache.Options{Scheme: s})
	if err != nil {
		b.Fatal(err)
	}
	go informers.Start(ctx)
	for _, o := range []client.Object{&kustomizev1.Kustomization{}, &sourcev1.GitRepository{}} {
		if _, err := informers.GetInformer(ctx, o); err != nil {
			b.Fatal(err)
		}
	}
	informers.WaitForCacheSync(ctx)
	cached, err := client.New(cfg, client.Options{Scheme: s, Cache: &client.CacheOptions{Reader: informers}})
	if err != nil {
		b.Fatal(err)
	}
	r := &KustomizationReconciler{Client: cached,
		Engine: engine.New(engine.Options{Cluster: cc, Fetcher: git.New(git.Options{CacheDir: b.TempDir(), MaxAge: time.Minute})})}
	round := func() {
		for _, req := range reqs {
			if _, err := r.Reconcile(context.Background(), req); err != nil {
				b.Fatal(err)
			}
		}
	}
	measureRounds(b, counter, round, n, "ms/kustomization")
}
