package cli

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	convergev1 "converge.dev/converge/internal/api/converge/v1alpha1"
	"converge.dev/converge/internal/controller"
	"converge.dev/converge/internal/promotion"
	"converge.dev/converge/internal/stage"
)

func newPromoteCmd() *cobra.Command {
	var kubeconfig, kcontext, namespace, stageName, digest, output string
	cmd := &cobra.Command{
		Use:   "promote PIPELINE --stage S [--digest sha256:...]",
		Short: "Promote what a stage's source runs into the stage, through the same pull request and gates",
		Long: `Promote creates a manual Promotion: the digests running in the stage's
source stage, read from the cluster now, written into the stage through a
pull request with the same gates, bake included, as an automatic one.
--digest names the digest you expect; it is refused if the source stage
does not run it. A stage with no source takes --digest as the freight.

Subcommands: status, rollback, release.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := kubeClient(kubeconfig, kcontext)
			if err != nil {
				return err
			}
			p, err := getPipeline(cmd.Context(), c, namespace, args[0])
			if err != nil {
				return err
			}
			s, ok := stage.SpecOf(p, stageName)
			if !ok {
				return fmt.Errorf("pipeline %s/%s has no stage %q", namespace, args[0], stageName)
			}
			var arts []promotion.Artifact
			if s.From == "" {
				if len(p.Spec.Artifacts) != 1 || !promotion.ValidDigest(digest) {
					return fmt.Errorf("stage %s has no source stage: give the freight with --digest sha256:<64 hex> (one artifact)", s.Name)
				}
				arts = []promotion.Artifact{{Name: p.Spec.Artifacts[0].Name, Image: p.Spec.Artifacts[0].Image, Digest: digest}}
			} else {
				src, _ := stage.SpecOf(p, s.From)
				running, err := stage.Observe(cmd.Context(), c, p, src)
				if err != nil {
					return err
				}
				if arts, err = running.Pick(s.From, digest); err != nil {
					return err
				}
			}
			promo := controller.NewPromotion(p, s.Name, "manual", arts)
			err = c.Create(cmd.Context(), promo)
			if apierrors.IsAlreadyExists(err) {
				if err := c.Get(cmd.Context(), client.ObjectKeyFromObject(promo), promo); err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "promotion %s/%s of this freight exists already (%s)\n", namespace, promo.Name, orDash(promo.Status.Phase))
			} else if err != nil {
				return fmt.Errorf("promotion %s/%s: %w", namespace, promo.Name, err)
			}
			if ok, err := writeStructured(cmd.OutOrStdout(), output, promo); ok {
				return err
			}
			refs := make([]string, 0, len(arts))
			for _, a := range arts {
				refs = append(refs, a.Reference())
			}
			fmt.Fprintf(cmd.OutOrStdout(), "promotion %s/%s: %s -> %s (%s); the controller opens its pull request\n", namespace, promo.Name, orDash(s.From), s.Name, strings.Join(refs, ", "))
			return nil
		},
	}
	fs := cmd.PersistentFlags()
	fs.StringVarP(&namespace, "namespace", "n", "default", "namespace of the Pipeline")
	fs.StringVarP(&output, "output", "o", "", "json or yaml")
	fs.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
	fs.StringVar(&kcontext, "context", "", "kubeconfig context")
	cmd.Flags().StringVar(&stageName, "stage", "", "the stage promoted to (required)")
	cmd.Flags().StringVar(&digest, "digest", "", "the digest expected to be running in the source stage")
	cmd.MarkFlagRequired("stage")
	cmd.AddCommand(newPromoteStatusCmd(&kubeconfig, &kcontext, &namespace, &output),
		newPromoteRollbackCmd(&kubeconfig, &kcontext, &namespace, &output),
		newPromoteReleaseCmd(&kubeconfig, &kcontext, &namespace))
	return cmd
}

// StageReport is one stage in `converge promote status`.
type StageReport struct {
	Name      string   `json:"name"`
	From      string   `json:"from,omitempty"`
	Images    []string `json:"images,omitempty"`
	Healthy   bool     `json:"healthy"`
	Message   string   `json:"message,omitempty"`
	Revision  string   `json:"revision,omitempty"`
	Bake      string   `json:"bake,omitempty"`
	Promotion string   `json:"promotion,omitempty"`
	Phase     string   `json:"phase,omitempty"`
	PR        string   `json:"pr,omitempty"`
	Verified  string   `json:"verified,omitempty"`
	// Hold says why the stage takes no automatic promotion.
	Hold string `json:"hold,omitempty"`
	// RolledBack says what the cluster rolled back, Git not following.
	RolledBack string `json:"rolledBack,omitempty"`
}

func newPromoteStatusCmd(kubeconfig, kcontext, namespace, output *string) *cobra.Command {
	return &cobra.Command{
		Use:   "status PIPELINE",
		Short: "Each stage's digests, health, bake and open pull request",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := kubeClient(*kubeconfig, *kcontext)
			if err != nil {
				return err
			}
			p, err := getPipeline(cmd.Context(), c, *namespace, args[0])
			if err != nil {
				return err
			}
			var promos convergev1.PromotionList
			if err := c.List(cmd.Context(), &promos, client.InNamespace(*namespace), client.MatchingLabels{controller.PipelineLabel: args[0]}); err != nil {
				return err
			}
			reports := stageReports(p, promos.Items, time.Now())
			if ok, err := writeStructured(cmd.OutOrStdout(), *output, reports); ok {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "STAGE\tFROM\tIMAGES\tHEALTHY\tBAKE\tPROMOTION\tPR\tMESSAGE")
			for _, r := range reports {
				msg := r.Message
				if r.Hold != "" {
					msg = strings.TrimSpace("HELD: " + r.Hold + " " + msg)
				}
				if r.RolledBack != "" {
					msg = strings.TrimSpace("ROLLED BACK IN CLUSTER: " + r.RolledBack + " " + msg)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\t%s\t%s\t%s\n", r.Name, orDash(r.From), orDash(strings.Join(r.Images, ",")), r.Healthy, orDash(r.Bake),
					orDash(strings.TrimSpace(r.Promotion+" "+r.Phase)), orDash(r.PR), msg)
			}
			return tw.Flush()
		},
	}
}

// stageReports reads the Pipeline's status (the controller's live
// observations and bake clocks) and its open promotions.
func stageReports(p *convergev1.Pipeline, promos []convergev1.Promotion, now time.Time) []StageReport {
	var out []StageReport
	clock := stage.ClockOf(p)
	for _, s := range p.Spec.Stages {
		st := stage.StatusOf(p, s.Name)
		r := StageReport{Name: s.Name, From: s.From, Images: st.Images, Healthy: st.Healthy, Message: st.Message, Revision: st.Revision, Verified: st.Verified}
		if st.Hold != nil {
			r.Hold = st.Hold.Reason
		}
		if rb := st.RolledBack; rb != nil {
			r.RolledBack = fmt.Sprintf("runs %s, Git pins %s", orDash(strings.Join(rb.Running, ",")), orDash(strings.Join(rb.Pinned, ",")))
			if rb.Promotion != "" {
				r.RolledBack += "; " + rb.Promotion + " makes Git match"
			}
		}
		if s.From != "" {
			src := stage.StatusOf(p, s.From)
			if len(src.Digests) > 0 {
				_, _, msg := promotion.Soaked(stage.ObservationOf(src), clock, src.Digests, stage.BakeOf(s), now)
				r.Bake = s.From + " " + msg
			}
		}
		for _, pr := range promos {
			if pr.Spec.Stage != s.Name || convergev1.Terminal(pr.Status.Phase) {
				continue
			}
			r.Promotion, r.Phase = pr.Name, orDash(pr.Status.Phase)
			if pr.Status.PR != nil {
				r.PR = pr.Status.PR.URL
			}
			if pr.Status.Message != "" {
				r.Message = pr.Status.Message
			}
		}
		out = append(out, r)
	}
	return out
}

func getPipeline(ctx context.Context, c client.Reader, ns, name string) (*convergev1.Pipeline, error) {
	p := &convergev1.Pipeline{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, p); err != nil {
		return nil, fmt.Errorf("pipeline %s/%s: %w", ns, name, err)
	}
	return p, nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
