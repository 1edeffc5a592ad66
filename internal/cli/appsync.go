package cli

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
)

func newAppCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "app", Short: "Work with Argo CD Applications run by the controller"}
	cmd.AddCommand(newAppSyncCmd())
	return cmd
}

func newAppSyncCmd() *cobra.Command {
	var kubeconfig, kcontext, namespace, revision string
	var prune bool
	cmd := &cobra.Command{
		Use:   "sync NAME",
		Short: "Ask the controller to sync an Application now (sets its operation)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dyn, err := dynamicClient(kubeconfig, kcontext)
			if err != nil {
				return err
			}
			op := v1alpha1.Operation{
				Sync:        &v1alpha1.SyncOperation{Revision: revision, Prune: prune},
				InitiatedBy: &v1alpha1.InitiatedBy{Username: "converge-cli"},
			}
			patch, _ := json.Marshal(map[string]any{"operation": op})
			apps := dyn.Resource(v1alpha1.GroupVersion.WithResource("applications")).Namespace(namespace)
			if _, err := apps.Patch(cmd.Context(), args[0], types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
				return fmt.Errorf("application %s/%s: %w", namespace, args[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "sync requested for application %s/%s\n", namespace, args[0])
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVarP(&namespace, "namespace", "n", "argocd", "namespace of the Application")
	fs.StringVar(&revision, "revision", "", "revision to sync (default: the Application's targetRevision)")
	fs.BoolVar(&prune, "prune", false, "delete objects no longer in Git")
	fs.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
	fs.StringVar(&kcontext, "context", "", "kubeconfig context")
	return cmd
}
