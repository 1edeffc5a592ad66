package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"converge.dev/converge/internal/doctor"
	"converge.dev/converge/internal/engine"
	"converge.dev/converge/internal/lint"
	"converge.dev/converge/internal/object"
)

func newDoctorCmd() *cobra.Command {
	var kubeconfig, kcontext, namespace, repo, output string
	cmd := &cobra.Command{
		Use:   "doctor [--kubeconfig K] [--repo PATH-OR-REPO]",
		Short: "Run the GitOps checklists against the cluster, the controller and the repository",
		Long: `doctor runs the seed's §18 checklists and gives each item pass, warn or
fail with the evidence it read: the controller runs and its permissions
are scoped; it sets requests and limits; its metrics are scraped;
repository credentials exist and fetch; drift and sync-failure alerts
exist; an emergency override procedure exists; every unit is in sync
and healthy; and, with --repo, the repository's anti-patterns (converge
lint). It changes nothing, and exits 1 when an item fails.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := kubeClient(kubeconfig, kcontext)
			if err != nil {
				return err
			}
			items, err := doctor.Run(cmd.Context(), doctor.Options{Client: c, Namespace: namespace})
			if err != nil {
				return err
			}
			if repo != "" {
				it, err := repositoryItem(cmd.Context(), repo)
				if err != nil {
					return err
				}
				items = append(items, it)
			}
			if done, err := writeStructured(cmd.OutOrStdout(), output, items); done && err != nil {
				return err
			} else if !done {
				for _, it := range items {
					fmt.Fprintf(cmd.OutOrStdout(), "%-5s %-12s %s\n", it.Result, it.ID, it.Check)
					for _, e := range it.Evidence {
						fmt.Fprintf(cmd.OutOrStdout(), "      %-12s %s\n", "", e)
					}
				}
			}
			counts := map[doctor.Result]int{}
			for _, it := range items {
				counts[it.Result]++
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "%d pass, %d warn, %d fail\n", counts[doctor.Pass], counts[doctor.Warn], counts[doctor.Fail])
			if counts[doctor.Fail] > 0 {
				return exitError{ExitDiff}
			}
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
	fs.StringVar(&kcontext, "context", "", "kubeconfig context")
	fs.StringVarP(&namespace, "namespace", "n", "converge-system", "the controller's namespace")
	fs.StringVar(&repo, "repo", "", "also lint this repository (a folder or a Git URL)")
	fs.StringVarP(&output, "output", "o", "", "output format: json or yaml")
	return cmd
}

// repositoryItem is converge lint's verdict as a checklist item.
func repositoryItem(ctx context.Context, repo string) (doctor.Item, error) {
	root, err := checkout(ctx, repo, "")
	if err != nil {
		return doctor.Item{}, err
	}
	eng := engine.New(engine.Options{})
	found, err := lint.Run(ctx, root, lint.Options{Render: func(ctx context.Context, u engine.Unit) ([]object.Decoded, error) {
		return eng.RenderLocal(ctx, u, root)
	}})
	if err != nil {
		return doctor.Item{}, err
	}
	it := doctor.Item{ID: "repository", Check: "the repository has none of the anti-patterns converge lint knows", Result: doctor.Pass, Evidence: []string{}}
	for _, f := range found {
		if f.Severity == lint.Error {
			it.Result = doctor.Fail
		} else if it.Result == doctor.Pass {
			it.Result = doctor.Warn
		}
		it.Evidence = append(it.Evidence, strings.TrimSpace(fmt.Sprintf("%s %s %s %s: %s", f.Rule, f.Name, f.File, f.Object, f.Message)))
	}
	if len(found) == 0 {
		it.Evidence = append(it.Evidence, "converge lint found nothing")
	}
	return it, nil
}
