package cli

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
	"converge.dev/converge/internal/dialect/argocd"
)

func newAppCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "app", Short: "Work with Argo CD Applications run by the controller"}
	cmd.AddCommand(newAppSyncCmd(), newAppRollbackCmd())
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

func newAppRollbackCmd() *cobra.Command {
	var kubeconfig, kcontext, namespace string
	var prune bool
	cmd := &cobra.Command{
		Use:   "rollback NAME [HISTORY_ID]",
		Short: "Sync an Application to a revision from its history, as argocd app rollback does",
		Long: `Rollback asks the controller to sync the Application to a deployed
revision from status.history: HISTORY_ID, or the deployment before the
last. As in Argo CD it is refused while automated sync is on (the next
automated sync would undo it), and the rollback becomes a new history
entry. The Application then shows OutOfSync against its target revision.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := int64(-1)
			if len(args) == 2 {
				n, err := strconv.ParseInt(args[1], 10, 64)
				if err != nil || n < 0 {
					return fmt.Errorf("history id %q: want a number from status.history", args[1])
				}
				id = n
			}
			c, err := kubeClient(kubeconfig, kcontext)
			if err != nil {
				return err
			}
			app := &v1alpha1.Application{}
			if err := c.Get(cmd.Context(), types.NamespacedName{Namespace: namespace, Name: args[0]}, app); err != nil {
				return fmt.Errorf("application %s/%s: %w", namespace, args[0], err)
			}
			e, err := argocd.RollbackTo(app, id)
			if err != nil {
				return err
			}
			op := v1alpha1.Operation{
				Sync:        &v1alpha1.SyncOperation{Revision: e.Revision, Prune: prune},
				InitiatedBy: &v1alpha1.InitiatedBy{Username: "converge-cli"},
			}
			patch, _ := json.Marshal(map[string]any{"operation": op})
			if err := c.Patch(cmd.Context(), app, client.RawPatch(types.MergePatchType, patch)); err != nil {
				return fmt.Errorf("application %s/%s: %w", namespace, args[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "rollback of application %s/%s to deployment %d (revision %s) requested\n", namespace, args[0], e.ID, e.Revision)
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVarP(&namespace, "namespace", "n", "argocd", "namespace of the Application")
	fs.BoolVar(&prune, "prune", false, "delete objects the older revision does not have")
	fs.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
	fs.StringVar(&kcontext, "context", "", "kubeconfig context")
	return cmd
}
