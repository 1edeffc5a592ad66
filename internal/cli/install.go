package cli

import (
	"fmt"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"converge.dev/converge/internal/cluster"
	"converge.dev/converge/internal/install"
)

func newInstallCmd() *cobra.Command {
	var kubeconfig, kcontext, image string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "install [--dry-run]",
		Short: "Install the CRDs, the controller's RBAC and its Deployment",
		Long: `Install applies, with server-side apply, the CRDs of the dialects converge
runs, a ServiceAccount with its ClusterRole and binding, and the controller
Deployment in converge-system. --dry-run prints them instead.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			objs, err := install.Manifests(image)
			if err != nil {
				return err
			}
			if dryRun {
				for _, d := range objs {
					data, err := yaml.Marshal(d.Object.Object)
					if err != nil {
						return err
					}
					fmt.Fprintf(cmd.OutOrStdout(), "---\n%s", data)
				}
				return nil
			}
			cfg, err := restConfig(kubeconfig, kcontext)
			if err != nil {
				return err
			}
			c, err := cluster.New(cfg)
			if err != nil {
				return err
			}
			done, err := install.Apply(cmd.Context(), c, objs)
			for _, ref := range done {
				fmt.Fprintf(cmd.OutOrStdout(), "applied %s\n", ref)
			}
			if err != nil {
				return err
			}
			return nil
		},
	}
	fs := cmd.Flags()
	fs.BoolVar(&dryRun, "dry-run", false, "print the manifests, change nothing")
	fs.StringVar(&image, "image", "converge:latest", "controller image")
	fs.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
	fs.StringVar(&kcontext, "context", "", "kubeconfig context")
	return cmd
}
