package controller

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/yaml"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
	"converge.dev/converge/internal/cluster"
	"converge.dev/converge/internal/clustertest"
	"converge.dev/converge/internal/engine"
	"converge.dev/converge/internal/forgetest"
	"converge.dev/converge/internal/gittest"
	"converge.dev/converge/internal/install"
	"converge.dev/converge/internal/render/helm"
	"converge.dev/converge/internal/source/git"
	"converge.dev/converge/internal/source/oci"
	"converge.dev/converge/internal/webhook"
)

func TestMain(m *testing.M) {
	// Helm renders run in a child process of this test binary, as in the
	// converge binary; a child never gets past this line.
	helm.ServeChild()
	// The webhook tests need Gitea, built once per machine (minutes on a
	// new one): start that build now, beside the control plane's, rather
	// than after it.
	go forgetest.Binary(context.Background(), os.Stderr)
	clustertest.Main(m, clustertest.Options{Nodes: 1})
}

// logLines keeps the test controller's log.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) add(s string) { l.mu.Lock(); l.lines = append(l.lines, s); l.mu.Unlock() }

// all returns the lines logged so far.
func (l *logLines) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

var (
	// controllerLog is everything the test controller logged.
	controllerLog logLines
	// testCacheDir is the controller's cache: every file converge writes.
	testCacheDir string
	startOnce    sync.Once
	started      client.Client
	// webhookURL is the test controller's push receiver.
	webhookURL = make(chan string, 1)
)

// Webhook secrets of the test controller.
const (
	giteaSecret  = "gitea-test-secret"
	githubSecret = "github-test-secret"
)

// setup installs the CRDs and starts one controller for the package (it
// runs until the test binary exits), then returns a client and a fresh
// repository holding the seed's layout.
func setup(t testing.TB) (client.Client, *gittest.Repo) {
	t.Helper()
	startOnce.Do(func() { started = startController(t) })
	if started == nil {
		t.Fatal("controller did not start")
	}
	repo := gittest.NewRepo(t, t.TempDir()+"/apps.git")
	repo.CopyDir("initial", "testdata/repo", "")
	repo.Publish()
	return started, repo
}

func startController(t testing.TB) client.Client {
	ctx := context.Background()
	cfg := clustertest.RESTConfig(t)
	cc, err := cluster.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	crds, err := install.CRDs()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := install.Apply(ctx, cc, crds); err != nil {
		t.Fatal(err)
	}
	s, _ := Scheme()
	c, err := client.New(cfg, client.Options{Scheme: s})
	if err != nil {
		t.Fatal(err)
	}
	// The git cache outlives single tests: it is the package's.
	cache, err := os.MkdirTemp("", "converge-controller-test-git-")
	if err != nil {
		t.Fatal(err)
	}
	testCacheDir = cache
	child := helm.DefaultChild()
	// Low enough that TestHelmRenderLimit's chart fails in seconds.
	child.MaxMemory = 1 << 30
	eng := engine.New(engine.Options{Fetcher: git.New(git.Options{CacheDir: cache}), Cluster: cc,
		OCI: oci.New(oci.Options{CacheDir: filepath.Join(cache, "oci")}), HelmChild: child})
	go func() {
		// A long interval: every reaction the tests expect must come from
		// an event (a live change, the refresh annotation), not polling.
		// Flux's main instance: the objects labelled for a shard are the
		// sharded replicas' (TestShardedReplicas).
		o := Options{Engine: eng, Interval: 10 * time.Minute, WebhookAddr: "127.0.0.1:0", WatchLabelSelector: "!" + shardKey,
			WebhookSecrets: webhook.Secrets{Gitea: giteaSecret, GitHub: githubSecret},
			WebhookReady:   func(a net.Addr) { webhookURL <- "http://" + a.String() + WebhookPath }}
		// Every log line is kept, so tests can scan them for secrets.
		show := os.Getenv("CONVERGE_TEST_LOG") != ""
		o.Logger = funcr.New(func(p, a string) {
			controllerLog.add(p + " " + a)
			if show {
				fmt.Fprintln(os.Stderr, p, a)
			}
		}, funcr.Options{Verbosity: 1})
		if err := Run(ctx, cfg, o); err != nil {
			fmt.Fprintln(os.Stderr, "controller:", err)
		}
	}()
	return c
}

func create(t testing.TB, c client.Client, obj client.Object) {
	t.Helper()
	if err := c.Create(context.Background(), obj); err != nil {
		t.Fatal(err)
	}
}

func seedApplication(t *testing.T, repoURL string) *v1alpha1.Application {
	t.Helper()
	data, err := os.ReadFile("testdata/seed-application.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// Unchanged but for repoURL.
	data = []byte(strings.Replace(string(data), "https://git.example.com/platform/apps.git", repoURL, 1))
	app := &v1alpha1.Application{}
	if err := yaml.Unmarshal(data, app); err != nil {
		t.Fatal(err)
	}
	return app
}

func waitApp(t *testing.T, c client.Client, what string, cond func(*v1alpha1.Application) bool) *v1alpha1.Application {
	t.Helper()
	app := &v1alpha1.Application{}
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
		if err := c.Get(ctx, types.NamespacedName{Namespace: "argocd", Name: "orders-api-prod"}, app); err != nil {
			return false, nil
		}
		return cond(app), nil
	})
	if err != nil {
		out, _ := yaml.Marshal(app.Status)
		t.Fatalf("waiting for %s: %v\nstatus:\n%s", what, err, out)
	}
	return app
}

// TestSeedApplication runs the seed's §3.1 Application (only repoURL
// changed) under the controller: it becomes Synced and Healthy, a manual
// image change is reverted by selfHeal, and a file removed from Git is
// pruned.
func TestSeedApplication(t *testing.T) {
	c, repo := setup(t)
	ctx := context.Background()
	// Other tests may have made argocd already, whatever their order.
	for _, ns := range []string{"argocd", "orders-prod"} {
		ensureNamespace(t, c, ns)
	}
	create(t, c, &v1alpha1.AppProject{
		ObjectMeta: metav1.ObjectMeta{Name: "regulated-platform", Namespace: "argocd"},
		Spec: v1alpha1.AppProjectSpec{
			SourceRepos:  []string{"file://*"},
			Destinations: []v1alpha1.ApplicationDestination{{Server: "https://kubernetes.default.svc", Namespace: "orders-*"}},
		},
	})
	create(t, c, seedApplication(t, gittest.FileURL(repo.Bare)))

	app := waitApp(t, c, "Synced and Healthy", func(a *v1alpha1.Application) bool {
		return a.Status.Sync.Status == "Synced" && a.Status.Health.Status == "Healthy"
	})
	if len(app.Status.Resources) != 3 || len(app.Status.History) != 1 || app.Status.OperationState == nil ||
		app.Status.OperationState.Phase != "Succeeded" || app.Status.ReconciledAt == nil || app.Status.Sync.Revision == "" {
		out, _ := yaml.Marshal(app.Status)
		t.Errorf("status shape:\n%s", out)
	}
	for _, cond := range app.Status.Conditions {
		t.Errorf("unexpected condition %s: %s", cond.Type, cond.Message)
	}

	t.Run("events and metrics", func(t *testing.T) {
		err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
			list := &corev1.EventList{}
			c.List(ctx, list, client.InNamespace("argocd"))
			for _, e := range list.Items {
				if e.InvolvedObject.Name == "orders-api-prod" && e.Reason == "OperationCompleted" && strings.Contains(e.Message, "succeeded") {
					return true, nil
				}
			}
			return false, nil
		})
		if err != nil {
			t.Error("no OperationCompleted event on the Application")
		}
		got := map[string]float64{}
		families, _ := ctrlmetrics.Registry.Gather()
		for _, f := range families {
			for _, m := range f.GetMetric() {
				labels := map[string]string{}
				for _, l := range m.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				if labels["name"] != "orders-api-prod" {
					continue
				}
				switch f.GetName() {
				case "converge_app_sync_total":
					got["sync "+labels["phase"]] += m.GetCounter().GetValue()
				case "converge_app_info":
					got["info "+labels["sync_status"]+"/"+labels["health_status"]] = m.GetGauge().GetValue()
				}
			}
		}
		if got["sync Succeeded"] < 1 || got["info Synced/Healthy"] != 1 {
			t.Errorf("metrics for orders-api-prod: %v", got)
		}
	})

	t.Run("selfHeal reverts a manual image change", func(t *testing.T) {
		dep := &appsv1.Deployment{}
		if err := c.Get(ctx, types.NamespacedName{Namespace: "orders-prod", Name: "orders-api"}, dep); err != nil {
			t.Fatal(err)
		}
		dep.Spec.Template.Spec.Containers[0].Image = "registry.example.com/orders-api:hotfix"
		if err := c.Update(ctx, dep, client.FieldOwner("kubectl-set")); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			c.Get(ctx, types.NamespacedName{Namespace: "orders-prod", Name: "orders-api"}, dep)
			return dep.Spec.Template.Spec.Containers[0].Image == "registry.example.com/orders-api:1.4.2", nil
		})
		if err != nil {
			t.Fatalf("image not reverted within 30s (the polling interval is 10m): %s", dep.Spec.Template.Spec.Containers[0].Image)
		}
		t.Logf("reverted after %s", time.Since(start).Round(100*time.Millisecond))
	})

	t.Run("a file removed from Git is pruned", func(t *testing.T) {
		repo.Commit("drop config", map[string]string{
			"apps/orders-api/base/config.yaml":        "",
			"apps/orders-api/base/kustomization.yaml": "resources: [deployment.yaml, service.yaml]\n",
		})
		repo.Publish()
		// Argo CD's hard refresh annotation asks for a comparison now.
		refresh := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"argocd.argoproj.io/refresh":"normal"}}}`))
		if err := c.Patch(ctx, &v1alpha1.Application{ObjectMeta: metav1.ObjectMeta{Namespace: "argocd", Name: "orders-api-prod"}}, refresh); err != nil {
			t.Fatal(err)
		}
		err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			err := c.Get(ctx, types.NamespacedName{Namespace: "orders-prod", Name: "orders-api-config"}, &corev1.ConfigMap{})
			return err != nil, nil
		})
		if err != nil {
			t.Fatal("orders-api-config was not pruned")
		}
		waitApp(t, c, "Synced after prune, the new revision in history", func(a *v1alpha1.Application) bool {
			h := a.Status.History
			return a.Status.Sync.Status == "Synced" && len(a.Status.Resources) == 2 && len(h) > 0 && h[len(h)-1].Revision == a.Status.Sync.Revision
		})
	})

	t.Run("without selfHeal, drift stays OutOfSync", func(t *testing.T) {
		// The prune above rolled the Deployment out again; once it is
		// Healthy, nothing is being converged when selfHeal goes off.
		waitApp(t, c, "Healthy", func(a *v1alpha1.Application) bool { return a.Status.Health.Status == "Healthy" })
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			app := &v1alpha1.Application{}
			if err := c.Get(ctx, types.NamespacedName{Namespace: "argocd", Name: "orders-api-prod"}, app); err != nil {
				return err
			}
			app.Spec.SyncPolicy.Automated.SelfHeal = false
			return c.Update(ctx, app)
		})
		if err != nil {
			t.Fatal(err)
		}
		dep := &appsv1.Deployment{}
		c.Get(ctx, types.NamespacedName{Namespace: "orders-prod", Name: "orders-api"}, dep)
		dep.Spec.Template.Spec.Containers[0].Image = "registry.example.com/orders-api:hotfix"
		if err := c.Update(ctx, dep, client.FieldOwner("kubectl-set")); err != nil {
			t.Fatal(err)
		}
		waitApp(t, c, "OutOfSync", func(a *v1alpha1.Application) bool { return a.Status.Sync.Status == "OutOfSync" })
		time.Sleep(3 * time.Second) // time for a wrong revert to happen
		c.Get(ctx, types.NamespacedName{Namespace: "orders-prod", Name: "orders-api"}, dep)
		if img := dep.Spec.Template.Spec.Containers[0].Image; img != "registry.example.com/orders-api:hotfix" {
			t.Errorf("drift reverted without selfHeal: image %s", img)
		}
		waitApp(t, c, "still OutOfSync", func(a *v1alpha1.Application) bool { return a.Status.Sync.Status == "OutOfSync" })
	})
}

// TestProjectViolationsAreBlocked: an Application outside its project's
// repos or destinations, or rendering a kind the project forbids, gets an
// InvalidSpecError condition and nothing of it is applied.
func TestProjectViolationsAreBlocked(t *testing.T) {
	c, repo := setup(t)
	ctx := context.Background()
	ns := clustertest.Namespace(t)
	create(t, c, &v1alpha1.AppProject{
		ObjectMeta: metav1.ObjectMeta{Name: "strict", Namespace: ns},
		Spec: v1alpha1.AppProjectSpec{
			SourceRepos:                []string{"file://*"},
			Destinations:               []v1alpha1.ApplicationDestination{{Server: "https://kubernetes.default.svc", Namespace: "allowed-*"}},
			NamespaceResourceBlacklist: []metav1.GroupKind{{Group: "", Kind: "ConfigMap"}},
		},
	})
	repo.Commit("violations", map[string]string{
		// A hook is checked like any object: a forbidden kind as a
		// PreSync hook must not slip through.
		"violations/hook/job.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: pre\n  annotations: {argocd.argoproj.io/hook: PreSync}\n" +
			"---\napiVersion: v1\nkind: Secret\nmetadata: {name: orders-api}\nstringData: {k: v}\n",
		// A cluster-scoped kind needs the cluster whitelist, which is empty.
		"violations/cluster/role.yaml": "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: strict-violation}\nrules: []\n",
	})
	repo.Publish()
	cases := []struct {
		name, repoURL, path, dest, want string
	}{
		{"foreign-repo", "https://git.example.com/other.git", "", "allowed-x", "is not permitted in project 'strict'"},
		{"foreign-dest", gittest.FileURL(repo.Bare), "", ns, "do not match any of the allowed destinations"},
		{"forbidden-kind", gittest.FileURL(repo.Bare), "", "allowed-x", "resource /ConfigMap:orders-api-config is not permitted in project strict"},
		{"forbidden-hook-kind", gittest.FileURL(repo.Bare), "violations/hook", "allowed-x", "resource /ConfigMap:pre is not permitted in project strict"},
		{"cluster-kind-not-whitelisted", gittest.FileURL(repo.Bare), "violations/cluster", "allowed-x",
			"resource rbac.authorization.k8s.io/ClusterRole:strict-violation is not permitted in project strict"},
	}
	create(t, c, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "allowed-x"}})
	for _, tc := range cases {
		app := seedApplication(t, tc.repoURL)
		app.Name, app.Namespace = tc.name, ns
		app.Spec.Project = "strict"
		app.Spec.Destination.Namespace = tc.dest
		if tc.path != "" {
			app.Spec.Source.Path = tc.path
		}
		create(t, c, app)
	}
	for _, tc := range cases {
		got := &v1alpha1.Application{}
		err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			c.Get(ctx, types.NamespacedName{Namespace: ns, Name: tc.name}, got)
			for _, cond := range got.Status.Conditions {
				if cond.Type == "InvalidSpecError" && strings.Contains(cond.Message, tc.want) {
					return true, nil
				}
			}
			return false, nil
		})
		if err != nil {
			t.Errorf("%s: conditions %+v, want InvalidSpecError containing %q", tc.name, got.Status.Conditions, tc.want)
		}
	}
	for _, dest := range []string{"allowed-x", ns} {
		dep := &appsv1.Deployment{}
		if err := c.Get(ctx, types.NamespacedName{Namespace: dest, Name: "orders-api"}, dep); err == nil {
			t.Errorf("a blocked Application applied orders-api in %s", dest)
		}
		if err := c.Get(ctx, types.NamespacedName{Namespace: dest, Name: "orders-api"}, &corev1.Secret{}); err == nil {
			t.Errorf("the Application with a forbidden hook applied its Secret in %s", dest)
		}
	}
	if err := c.Get(ctx, types.NamespacedName{Name: "strict-violation"}, &rbacv1.ClusterRole{}); err == nil {
		t.Error("a ClusterRole outside the cluster whitelist was applied")
	}
}
