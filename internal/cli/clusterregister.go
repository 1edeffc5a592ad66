package cli

import (
	"fmt"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"converge.dev/converge/internal/dialect/argocd"
	"converge.dev/converge/internal/localcluster"
)

func newClusterRegisterCmd() *cobra.Command {
	var from, fromContext, server, into, intoContext, namespace string
	var print bool
	cmd := &cobra.Command{
		Use:   "register NAME",
		Short: "Register a cluster as an Argo CD destination (a cluster Secret)",
		Long: `Register writes the Secret Argo CD's declarative setup documents for a
destination cluster (label argocd.argoproj.io/secret-type: cluster; name,
server and config with a bearer token or client certificates), so that
Applications whose destination names NAME, or its server, deploy there.

The cluster is read from --kubeconfig (and --context); without it, NAME is
a local cluster made by 'converge cluster create'. The Secret is written
with --into-kubeconfig (default: the usual kubeconfig) into --namespace,
where the Applications live; --print writes it to stdout instead, to keep
it in Git (encrypted).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			path := from
			if path == "" {
				store, err := localcluster.DefaultStore()
				if err != nil {
					return err
				}
				c, err := store.Get(name)
				if err != nil {
					return fmt.Errorf("no --kubeconfig, and %w", err)
				}
				path = c.Kubeconfig()
			}
			cfg, err := restConfig(path, fromContext)
			if err != nil {
				return err
			}
			if server != "" {
				cfg.Host = server
			}
			sec, err := argocd.ClusterSecret(namespace, name, cfg)
			if err != nil {
				return err
			}
			if print {
				data, err := yaml.Marshal(sec)
				if err != nil {
					return err
				}
				_, err = cmd.OutOrStdout().Write(data)
				return err
			}
			c, err := kubeClient(into, intoContext)
			if err != nil {
				return err
			}
			existing := &corev1.Secret{}
			err = c.Get(cmd.Context(), client.ObjectKeyFromObject(sec), existing)
			switch {
			case apierrors.IsNotFound(err):
				err = c.Create(cmd.Context(), sec)
			case err == nil:
				existing.Labels, existing.StringData, existing.Data = sec.Labels, sec.StringData, nil
				err = c.Update(cmd.Context(), existing)
			}
			if err != nil {
				return fmt.Errorf("cluster secret %s/%s: %w", namespace, sec.Name, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "cluster %s (%s) registered as secret %s/%s\n", name, cfg.Host, namespace, sec.Name)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&from, "kubeconfig", "", "kubeconfig of the cluster to register (default: the local cluster NAME)")
	f.StringVar(&fromContext, "context", "", "context of --kubeconfig")
	f.StringVar(&server, "server", "", "API server URL the controller reaches the cluster at (default: the kubeconfig's)")
	f.StringVar(&into, "into-kubeconfig", "", "kubeconfig of the cluster converge's controller runs in")
	f.StringVar(&intoContext, "into-context", "", "context of --into-kubeconfig")
	f.StringVarP(&namespace, "namespace", "n", "argocd", "namespace of the Applications that deploy there")
	f.BoolVar(&print, "print", false, "print the Secret as YAML instead of writing it")
	return cmd
}
