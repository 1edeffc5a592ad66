package cli

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"converge.dev/converge/internal/plan"
)

// unitKinds are the objects that define a unit run by the controller.
var unitKinds = map[string]schema.GroupVersionResource{
	"application":   {Group: "argoproj.io", Version: "v1alpha1", Resource: "applications"},
	"kustomization": {Group: "kustomize.toolkit.fluxcd.io", Version: "v1", Resource: "kustomizations"},
}

func newApprovePruneCmd() *cobra.Command {
	var kubeconfig, kcontext, namespace string
	cmd := &cobra.Command{
		Use:   "approve-prune (application|kustomization) NAME",
		Short: "Let a prune held by a unit's prune budget go ahead",
		Long: `A sync that would prune more than the unit's prune budget holds its
deletions and says what it would delete. approve-prune writes the current
time into the annotation ` + plan.PruneApprovedAnnotation + ` of the
Application or Kustomization: the next sync prunes what is held, if the
hold began before the approval. For a unit synced with the CLI, run
converge sync again with --approve-prune.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			gvr, ok := unitKinds[args[0]]
			if !ok {
				return fmt.Errorf("kind %q: want application or kustomization", args[0])
			}
			dyn, err := dynamicClient(kubeconfig, kcontext)
			if err != nil {
				return err
			}
			now := time.Now().UTC().Format(time.RFC3339)
			patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{
				plan.PruneApprovedAnnotation: now,
				// Both dialects reconcile at once on this annotation.
				"reconcile.fluxcd.io/requestedAt": now, "argocd.argoproj.io/refresh": "normal",
			}}})
			if _, err := dyn.Resource(gvr).Namespace(namespace).Patch(cmd.Context(), args[1], types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
				return fmt.Errorf("%s %s/%s: %w", args[0], namespace, args[1], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "prune approved for %s %s/%s at %s\n", args[0], namespace, args[1], now)
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVarP(&namespace, "namespace", "n", "argocd", "namespace of the Application or Kustomization")
	fs.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
	fs.StringVar(&kcontext, "context", "", "kubeconfig context")
	return cmd
}
