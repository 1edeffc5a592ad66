package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/go-logr/logr/funcr"
	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"converge.dev/converge/internal/cluster"
	"converge.dev/converge/internal/controller"
	"converge.dev/converge/internal/controlplane"
	"converge.dev/converge/internal/demo"
	"converge.dev/converge/internal/dialect/argocd"
	"converge.dev/converge/internal/engine"
	"converge.dev/converge/internal/gitea"
	"converge.dev/converge/internal/install"
	"converge.dev/converge/internal/localcluster"
	"converge.dev/converge/internal/render/helm"
	"converge.dev/converge/internal/source/git"
	"converge.dev/converge/internal/source/oci"
)

func newUpCmd() *cobra.Command {
	var name string
	var keep, withForge bool
	var clusters int
	var uiAddr string
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Local cluster, demo Git repository and controller, in one command",
		Long: `up creates (or reuses) a local cluster with a node, publishes a demo Git
repository (orders-api with dev, staging and prod overlays), installs the
CRDs, applies the demo AppProject and Applications, and runs the controller
until Ctrl-C. On exit it deletes the cluster it created, unless --keep.

--forge also runs a local Gitea (built once from the Go module proxy, about
5 minutes, then cached), serves the demo repository from it, and adds a
Pipeline that promotes orders-api's digest from dev to staging (low risk,
2m bake, auto-merge) to prod (high risk, 10m bake, approved by a person)
through pull requests on it.

--clusters N (N > 1) also creates N-1 more local clusters (NAME-2...),
registers them as Argo CD cluster Secrets (label converge.dev/fleet: demo,
wave 1 for NAME-2 and 2 for the others), and adds an ApplicationSet that
deploys orders-api to each of them, wave by wave (RollingSync).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if clusters < 1 {
				return fmt.Errorf("--clusters %d: at least 1", clusters)
			}
			return up(cmd, name, keep, withForge, clusters, uiAddr)
		},
	}
	cmd.Flags().StringVar(&name, "name", "converge", "local cluster to create or reuse")
	cmd.Flags().BoolVar(&keep, "keep", false, "keep a cluster that up created when it exits")
	cmd.Flags().BoolVar(&withForge, "forge", false, "serve the demo from a local Gitea and add a promotion Pipeline")
	cmd.Flags().StringVar(&uiAddr, "ui-addr", "127.0.0.1:8080", "address of the web UI (a local admin is made; its password is printed once); \"\" for none")
	cmd.Flags().IntVar(&clusters, "clusters", 1, "local clusters in all: the others get the demo through an ApplicationSet")
	return cmd
}

func up(cmd *cobra.Command, name string, keep, withForge bool, clusters int, uiAddr string) error {
	ctx, out := cmd.Context(), cmd.ErrOrStderr()
	store, err := localcluster.DefaultStore()
	if err != nil {
		return err
	}
	c, created, err := upCluster(ctx, store, name, out)
	if err != nil {
		return err
	}
	if created && !keep {
		defer func() {
			fmt.Fprintf(out, "deleting cluster %s (use --keep to keep it)\n", name)
			store.Delete(context.Background(), name)
		}()
	}
	cfg, err := c.RESTConfig()
	if err != nil {
		return err
	}
	cc, err := cluster.New(cfg)
	if err != nil {
		return err
	}
	crds, err := install.CRDs()
	if err != nil {
		return err
	}
	if _, err := install.Apply(ctx, cc, crds); err != nil {
		return err
	}
	url, err := demo.Publish(filepath.Join(store.Dir, "demo"))
	if err != nil {
		return err
	}
	var fg *gitea.Server
	if withForge {
		if fg, url, err = upForge(ctx, store.Dir, name, out); err != nil {
			return err
		}
		defer fg.Stop()
	}
	if err := ensureNamespace(ctx, cfg, "argocd"); err != nil {
		return err
	}
	apps, err := demo.Applications(url)
	if err != nil {
		return err
	}
	if fg != nil {
		objs, err := demo.Pipeline(url, fg.User, fg.Token)
		if err != nil {
			return err
		}
		apps = append(apps, objs...)
	}
	var fleet []string
	for i := 1; i < clusters; i++ {
		fc, made, err := upCluster(ctx, store, fmt.Sprintf("%s-%d", name, i+1), out)
		if err != nil {
			return err
		}
		if made && !keep {
			defer func() {
				fmt.Fprintf(out, "deleting cluster %s (use --keep to keep it)\n", fc.Name)
				store.Delete(context.Background(), fc.Name)
			}()
		}
		if err := registerFleetCluster(ctx, cfg, fc, i); err != nil {
			return err
		}
		fleet = append(fleet, fc.Name)
	}
	if clusters > 1 {
		objs, err := demo.Fleet(url)
		if err != nil {
			return err
		}
		apps = append(apps, objs...)
	}
	// The project first: an Application whose project is missing waits a
	// whole polling interval.
	sort.SliceStable(apps, func(i, j int) bool {
		return apps[i].Object.GetKind() == "AppProject" && apps[j].Object.GetKind() != "AppProject"
	})
	if _, err := install.Apply(ctx, cc, apps); err != nil {
		return err
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	eng := engine.New(engine.Options{Cluster: cc, Fetcher: git.New(git.Options{CacheDir: filepath.Join(cache, "converge", "git"), MaxAge: 2 * time.Second}),
		OCI:        oci.New(oci.Options{CacheDir: filepath.Join(cache, "converge", "oci")}),
		ComposeDir: filepath.Join(cache, "converge", "compose"),
		HelmChild:  helm.DefaultChild()})
	fmt.Fprintf(out, `converge is up.
  demo repository: %s
  kubeconfig:      %s
Look at:
  kubectl --kubeconfig %s get applications -n argocd
  kubectl --kubeconfig %s get deploy -A -l app.kubernetes.io/name=orders-api
  converge status --kubeconfig %s --repo %s --path apps/orders-api/overlays/prod -n orders-prod --name argocd.argocd.orders-api-prod
Ctrl-C stops the controller%s.
`, url, c.Kubeconfig(), c.Kubeconfig(), c.Kubeconfig(), c.Kubeconfig(), url, map[bool]string{true: " and deletes the cluster", false: ""}[created && !keep])
	if fg != nil {
		fmt.Fprintf(out, `Promotion (forge %s, user %s, token in Secret argocd/forge-token):
  converge promote status orders-api -n argocd --kubeconfig %s
  Move dev to a new digest (clone %s, change the digest in
  apps/orders-api/overlays/dev/kustomization.yaml, record evidence with
  converge evidence add --digest D --type build --result passed and --type scan --critical 0,
  commit and push): a staging pull request opens, bakes 2m and merges; then prod's waits for a reviewer.
`, fg.URL, fg.User, c.Kubeconfig(), url)
	}
	if len(fleet) > 0 {
		fmt.Fprintf(out, `Fleet (%s, registered in argocd as cluster Secrets):
  kubectl --kubeconfig %s get applicationset orders-api-fleet -n argocd -o yaml
  converge cluster kubeconfig %s
`, strings.Join(fleet, ", "), c.Kubeconfig(), fleet[0])
	}
	// controller-runtime's own logs stay out of the terminal (unset, it
	// prints a stack trace saying so): what the demo does shows in its
	// units' status.
	o := controller.Options{Engine: eng, Interval: 30 * time.Second, Logger: funcr.New(func(string, string) {}, funcr.Options{})}
	if uiAddr != "" {
		password, accounts, err := adminAccount()
		if err != nil {
			return err
		}
		o.UI = controller.UIOptions{Addr: uiAddr, Accounts: accounts, Ready: func(a net.Addr) {
			fmt.Fprintf(out, "UI: http://%s  (login admin / %s, shown once)\n", a, password)
		}}
	}
	err = controller.Run(ctx, cfg, o)
	if err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}

// upForge runs a fresh Gitea for the cluster and pushes the demo
// repository to it; it returns the forge and the repository's clone URL.
func upForge(ctx context.Context, storeDir, name string, out io.Writer) (*gitea.Server, string, error) {
	bin, err := gitea.Binary(ctx, out)
	if err != nil {
		return nil, "", err
	}
	dir := filepath.Join(storeDir, "gitea-"+name)
	if err := os.RemoveAll(dir); err != nil {
		return nil, "", err
	}
	fg, err := gitea.Start(ctx, bin, gitea.Options{Dir: dir})
	if err != nil {
		return nil, "", err
	}
	url, err := fg.CreateRepo(ctx, "deploy")
	if err == nil {
		err = demo.PushTo(ctx, filepath.Join(storeDir, "demo"), url, fg.User, fg.Token)
	}
	if err != nil {
		fg.Stop()
		return nil, "", err
	}
	return fg, url, nil
}

// upCluster reuses a running cluster of that name or creates one.
func upCluster(ctx context.Context, store localcluster.Store, name string, out io.Writer) (*localcluster.Cluster, bool, error) {
	c, err := store.Get(name)
	if err == nil {
		if !c.Alive() {
			return nil, false, fmt.Errorf("cluster %s exists but is not running: delete it with converge cluster delete %s", name, name)
		}
		fmt.Fprintf(out, "reusing cluster %s at %s\n", name, c.APIURL)
		return c, false, nil
	}
	if !errors.Is(err, localcluster.ErrNotFound) {
		return nil, false, err
	}
	c, err = store.Create(ctx, name, localcluster.Options{Nodes: 1, WaitNodes: true, Build: controlplane.Options{Progress: out}})
	if err != nil {
		return nil, false, err
	}
	fmt.Fprintf(out, "created cluster %s at %s\n", name, c.APIURL)
	return c, true, nil
}

// registerFleetCluster registers fleet cluster c (the i-th, from 1) in
// the argocd namespace of the cluster at cfg, labelled for the demo fleet.
func registerFleetCluster(ctx context.Context, cfg *rest.Config, c *localcluster.Cluster, i int) error {
	fcfg, err := c.RESTConfig()
	if err != nil {
		return err
	}
	sec, err := argocd.ClusterSecret("argocd", c.Name, fcfg)
	if err != nil {
		return err
	}
	for k, v := range demo.FleetLabels(i) {
		sec.Labels[k] = v
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	secrets := cs.CoreV1().Secrets("argocd")
	_, err = secrets.Create(ctx, sec, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		// A reused cluster: its address or certificates may be new.
		_, err = secrets.Update(ctx, sec, metav1.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("register cluster %s: %w", c.Name, err)
	}
	return nil
}

func ensureNamespace(ctx context.Context, cfg *rest.Config, name string) error {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	_, err = cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("namespace %s: %w", name, err)
	}
	return nil
}
