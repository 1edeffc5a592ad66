package cli

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"converge.dev/converge/internal/drift"
	"converge.dev/converge/internal/engine"
)

func newDriftCmd() *cobra.Command {
	var f unitFlags
	var namespace string
	cmd := &cobra.Command{
		Use:   "drift (--repo URL [--revision REF] [--path P] [--dest-namespace NS] [--name UNIT] [--drift-policy FILE] | (application|kustomization) NAME [--unit-namespace NS])",
		Short: "Explain every live field that differs from Git; exit 1 on unexplained drift",
		Long: `Drift compares the unit with the cluster, like diff, and explains each
drifted field: the field manager that holds it live (from managedFields),
when that manager last wrote, the drift category (controller-managed,
policy-mutation, cloud-provider, emergency-manual, unauthorized, or
unattributed when no record names a writer) and what the drift policy does
about it (revert, report, allow, override). Secret values are masked.
Named as (application|kustomization) NAME, it shows what the controller
last found for that unit (its status.drift) and the unit's emergency
overrides.
Exit codes: 0 no unexplained drift, 1 drift that no policy rule allows,
2 error.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 0 && len(args) != 2 {
				return fmt.Errorf("want no arguments (with --repo) or (application|kustomization) NAME")
			}
			if len(args) == 0 && f.repo == "" {
				return fmt.Errorf("--repo is required, or name a unit the controller runs: (application|kustomization) NAME")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 2 {
				return unitDrift(cmd, args[0], args[1], namespace, f)
			}
			u, eng, err := f.setup(true)
			if err != nil {
				return err
			}
			rep, err := eng.Diff(cmd.Context(), u, engine.SyncOptions{})
			if err != nil {
				return err
			}
			items := rep.Drift
			if items == nil {
				items = []drift.Item{}
			}
			if done, err := writeStructured(cmd.OutOrStdout(), f.output, items); done && err != nil {
				return err
			} else if !done {
				printDrift(cmd.OutOrStdout(), items)
			}
			for _, it := range items {
				if it.Unexplained() {
					return exitError{ExitDiff}
				}
			}
			return nil
		},
	}
	f.register(cmd, true)
	// A unit the controller runs is named instead of --repo.
	delete(cmd.Flags().Lookup("repo").Annotations, cobra.BashCompOneRequiredFlag)
	cmd.Flags().StringVar(&namespace, "unit-namespace", "argocd", "namespace of the Application or Kustomization named")
	cmd.AddCommand(newDriftBackportCmd())
	return cmd
}

// printDrift writes items as a table; values stay as JSON so that a
// string and a number read differently.
func printDrift(w io.Writer, items []drift.Item) {
	if len(items) == 0 {
		fmt.Fprintln(w, "no drift")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "OBJECT\tFIELD\tDESIRED\tLIVE\tMANAGER\tWHEN\tCATEGORY\tACTION\tRULE")
	for _, it := range items {
		path, mgr, when := it.Path, it.Manager, "-"
		if path == "" {
			path = "(deleted)"
		}
		if mgr == "" {
			mgr = "(none recorded)"
		} else if it.Subresource != "" {
			mgr += " /" + it.Subresource
		}
		if it.Time != nil {
			when = it.Time.UTC().Format("2006-01-02T15:04:05Z")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", it.Object, path, dash(it.Desired), dash(it.Live), mgr, when, it.Category, it.Action, it.Rule)
	}
	tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
