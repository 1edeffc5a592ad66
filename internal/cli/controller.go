package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	"converge.dev/converge/internal/cluster"
	"converge.dev/converge/internal/controller"
	"converge.dev/converge/internal/engine"
	"converge.dev/converge/internal/health"
	"converge.dev/converge/internal/render/helm"
	"converge.dev/converge/internal/source/git"
	"converge.dev/converge/internal/source/oci"
	"converge.dev/converge/internal/webhook"
)

func newControllerCmd() *cobra.Command {
	var kubeconfig, kcontext, metrics, healthCM string
	var ui uiFlags
	var o controller.Options
	cmd := &cobra.Command{
		Use:   "controller",
		Short: "Run the controller: reconcile Argo CD Applications in the cluster",
		Long: `The controller watches Applications and AppProjects (argoproj.io/v1alpha1)
and converges each Application with the same engine the CLI uses. It runs
in the cluster (in-cluster config) or against a kubeconfig. Install the
CRDs first with converge install.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := restConfig(kubeconfig, kcontext)
			if err != nil {
				return err
			}
			// No client-side rate limit: the API server's priority and
			// fairness sets the pace (client-go retries its 429s), and a
			// fixed QPS here was what held a large fleet back.
			cfg.QPS, cfg.Burst = -1, 0
			c, err := cluster.New(cfg)
			if err != nil {
				return err
			}
			cache, err := os.UserCacheDir()
			if err != nil {
				cache = os.TempDir()
			}
			rules, err := healthRules(cmd.Context(), cfg, healthCM)
			if err != nil {
				return err
			}
			o.Engine = engine.New(engine.Options{Cluster: c, Health: rules,
				Fetcher:    git.New(git.Options{CacheDir: filepath.Join(cache, "converge", "git"), MaxAge: 5 * time.Second}),
				OCI:        oci.New(oci.Options{CacheDir: filepath.Join(cache, "converge", "oci")}),
				ComposeDir: filepath.Join(cache, "converge", "compose"),
				HelmChild:  helm.DefaultChild()})
			o.MetricsAddr = metrics
			// Secrets come from the environment, never from flags, which
			// any user of the machine can read in the process list.
			o.WebhookSecrets = webhook.Secrets{
				GitHub: os.Getenv("CONVERGE_WEBHOOK_GITHUB_SECRET"),
				GitLab: os.Getenv("CONVERGE_WEBHOOK_GITLAB_SECRET"),
				Gitea:  os.Getenv("CONVERGE_WEBHOOK_GITEA_SECRET"),
			}
			o.Logger = klog.NewKlogr()
			if ui.o.Addr != "" {
				if o.UI, err = ui.options(cmd.ErrOrStderr()); err != nil {
					return err
				}
			}
			return controller.Run(cmd.Context(), cfg, o)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file (default: in-cluster, $KUBECONFIG or ~/.kube/config)")
	fs.StringVar(&kcontext, "context", "", "kubeconfig context")
	fs.BoolVar(&o.LeaderElection, "leader-elect", false, "elect a leader so that only one replica reconciles")
	fs.StringVar(&o.LeaderElectionNamespace, "leader-election-namespace", "", "namespace of the leader lease")
	fs.StringVar(&o.WatchLabelSelector, "watch-label-selector", "", "reconcile only the units and sources whose labels match, as Flux's flag does\n"+
		"(sharding.fluxcd.io/key: \"!sharding.fluxcd.io/key\" on the main replica, \"sharding.fluxcd.io/key=shard1\" on a shard's)")
	fs.IntVar(&o.Sharding.Shards, "shards", 0, "split the units among every replica run with the same number, through one Lease per shard\n"+
		"in --leader-election-namespace (default: no sharding; excludes --leader-elect)")
	fs.StringVar(&o.Sharding.Identity, "shard-identity", "", "this replica's name in the shard Leases, unique per replica (default: the host name, a Pod's name)")
	fs.IntVar(&o.Concurrency, "concurrency", controller.DefaultConcurrency, "units of each kind (Applications, Kustomizations, HelmReleases) reconciled at once")
	fs.DurationVar(&o.Interval, "interval", 3*time.Minute, "how often each Application is compared with Git")
	fs.StringVar(&metrics, "metrics-addr", "", "address for Prometheus metrics, e.g. :8080 (default: off)")
	fs.StringVar(&healthCM, "health-configmap", "", "NAMESPACE/NAME of a ConfigMap with custom health rules: keys\n"+
		"resource.customizations.health.<group>_<kind> (Lua) and healthCheckExprs (CEL); read at start")
	ui.add(fs, "", " (default: off)")
	fs.StringVar(&o.WebhookAddr, "webhook-addr", "", "address of the Git push receiver (POST /api/webhook), e.g. :8081 (default: off);\n"+
		"secrets from $CONVERGE_WEBHOOK_GITHUB_SECRET, $CONVERGE_WEBHOOK_GITLAB_SECRET, $CONVERGE_WEBHOOK_GITEA_SECRET")
	return cmd
}

// healthRules reads custom health rules from a ConfigMap; "" means none.
// A bad rule stops the controller at start rather than misjudging health
// later.
func healthRules(ctx context.Context, cfg *rest.Config, ref string) (*health.Rules, error) {
	if ref == "" {
		return nil, nil
	}
	ns, name, ok := strings.Cut(ref, "/")
	if !ok || ns == "" || name == "" {
		return nil, fmt.Errorf("--health-configmap %q: want NAMESPACE/NAME", ref)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	cm, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("health rules: ConfigMap %s: %w", ref, err)
	}
	c, err := health.ConfigFromConfigMap(ref, cm.Data)
	if err != nil {
		return nil, err
	}
	rules, err := health.NewRules(c)
	if err != nil {
		return nil, fmt.Errorf("health rules in ConfigMap %s: %w", ref, err)
	}
	return rules, nil
}
