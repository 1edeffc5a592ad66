package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/types"

	"converge.dev/converge/internal/controller"
	"converge.dev/converge/internal/stage"
)

func newPromoteRollbackCmd(kubeconfig, kcontext, namespace, output *string) *cobra.Command {
	var stageName, to string
	var direct bool
	cmd := &cobra.Command{
		Use:   "rollback PIPELINE --stage S [--to PROMOTION]",
		Short: "Take a stage back to what ran before, through a pull request; the stage then holds auto-promotion",
		Long: `Rollback creates a Promotion with reason rollback: the freight the stage ran
before its last verified promotion, or the freight of --to PROMOTION. It
goes through the same pull request and gates, without a bake; its rollback
contract must pass. Once it is verified the stage holds: nothing is
promoted into it automatically until 'converge promote release' or a
manual promotion.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := kubeClient(*kubeconfig, *kcontext)
			if err != nil {
				return err
			}
			p, err := getPipeline(cmd.Context(), c, *namespace, args[0])
			if err != nil {
				return err
			}
			promo, err := controller.RollbackPromotion(cmd.Context(), c, p, stageName, to)
			if err != nil {
				return err
			}
			if direct {
				if s, _ := stage.SpecOf(p, stageName); !s.AllowDirectRollback {
					return fmt.Errorf("stage %s does not allow a direct rollback (spec.stages[].allowDirectRollback): use the pull request path", stageName)
				}
				promo.Spec.Direct = true
			}
			if err := c.Create(cmd.Context(), promo); err != nil {
				return fmt.Errorf("promotion %s/%s: %w", *namespace, promo.Name, err)
			}
			if ok, err := writeStructured(cmd.OutOrStdout(), *output, promo); ok {
				return err
			}
			var refs []string
			for _, a := range promo.Spec.Freight.Artifacts {
				refs = append(refs, a.Image+"@"+a.Digest)
			}
			how := "the controller opens its pull request"
			if direct {
				how = "the controller pushes it directly to the base branch"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "rollback %s/%s: %s back to %s; %s\n", *namespace, promo.Name, stageName, strings.Join(refs, ", "), how)
			return nil
		},
	}
	cmd.Flags().StringVar(&stageName, "stage", "", "the stage to roll back (required)")
	cmd.Flags().BoolVar(&direct, "direct", false, "emergency path: push the rollback straight to the base branch, no pull request (the stage must allow it)")
	cmd.Flags().StringVar(&to, "to", "", "a Promotion whose freight to go back to (default: what ran before the stage's last verified promotion)")
	cmd.MarkFlagRequired("stage")
	return cmd
}

func newPromoteReleaseCmd(kubeconfig, kcontext, namespace *string) *cobra.Command {
	var stageName string
	cmd := &cobra.Command{
		Use:   "release PIPELINE --stage S",
		Short: "Lift a stage's hold after a rollback: automatic promotion into it resumes",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := kubeClient(*kubeconfig, *kcontext)
			if err != nil {
				return err
			}
			was, err := controller.ReleaseHold(cmd.Context(), c, types.NamespacedName{Namespace: *namespace, Name: args[0]}, stageName)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "stage %s released (it was held since %s: %s)\n", stageName, was.Since.UTC().Format("2006-01-02 15:04:05Z"), was.Reason)
			return nil
		},
	}
	cmd.Flags().StringVar(&stageName, "stage", "", "the held stage (required)")
	cmd.MarkFlagRequired("stage")
	return cmd
}
