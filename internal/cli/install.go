package cli

import (
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"converge.dev/converge/internal/cluster"
	"converge.dev/converge/internal/install"
	"converge.dev/converge/internal/object"
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
			for _, d := range objs {
				if _, err := c.Apply(cmd.Context(), d.Object, cluster.ApplyOptions{Force: true}); err != nil {
					return err
				}
				if isCRD(d.Object) {
					if err := c.WaitEstablished(cmd.Context(), d.Object.GetName()); err != nil {
						return err
					}
				}
				fmt.Fprintf(cmd.OutOrStdout(), "applied %s\n", object.RefOf(d.Object))
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

func isCRD(o *unstructured.Unstructured) bool { return o.GetKind() == "CustomResourceDefinition" }
