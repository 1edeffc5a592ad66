package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"converge.dev/converge/internal/drift"
	"converge.dev/converge/internal/engine"
	"converge.dev/converge/internal/plan"
)

func newDiffCmd() *cobra.Command {
	var f unitFlags
	var o engine.SyncOptions
	cmd := &cobra.Command{
		Use:   "diff --repo URL [--revision REF] [--path P] [--dest-namespace NS] [--name UNIT]",
		Short: "Show what a sync would change; exit 1 if anything would",
		Long: `Diff renders the revision, dry-runs every object on the server and
compares the result with the live objects, like kubectl diff. Server-set
fields are left out and Secret values are masked. Exit codes: 0 no
differences, 1 differences, 2 error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			u, eng, err := f.setup(true)
			if err != nil {
				return err
			}
			rep, err := eng.Diff(cmd.Context(), u, o)
			if err != nil {
				return err
			}
			if done, err := writeStructured(cmd.OutOrStdout(), f.output, reportJSON(rep)); done && err != nil {
				return err
			} else if !done {
				printDiff(cmd.OutOrStdout(), rep)
			}
			if rep.Plan.Changes() > 0 || hasOrphans(rep) {
				return exitError{ExitDiff}
			}
			return nil
		},
	}
	f.register(cmd, true)
	cmd.Flags().BoolVar(&o.Prune, "prune", false, "include deletions of objects no longer in Git")
	conflictFlags(cmd, &o)
	return cmd
}

func printDiff(w io.Writer, rep engine.Report) {
	for _, s := range rep.Plan.Steps {
		switch s.Action {
		case plan.Create, plan.Update, plan.Prune:
			fmt.Fprint(w, s.Diff)
		case plan.Conflict, plan.Orphan, plan.Untouched:
			fmt.Fprintf(w, "# %s %s: %s\n", s.Action, s.Ref, s.Reason)
		}
	}
	for _, it := range rep.Drift {
		fmt.Fprintf(w, "# drift %s\n", driftLine(it))
	}
}

// driftLine says who holds a drifted field and what a sync does with it.
func driftLine(it drift.Item) string {
	what := "a sync takes it back"
	switch it.Action {
	case drift.Allow, drift.Ignore, drift.Override:
		what = "left to its holder (" + it.Rule + ")"
	case drift.Revert:
		what = "reverted at once (" + it.Rule + ")"
	}
	if it.Category == drift.PolicyMutation && it.Manager == "" {
		what = "the server keeps it on every apply"
	}
	return fmt.Sprintf("%s; %s: %s", it, it.Evidence, what)
}

// conflictFlags registers how fields other managers hold are treated.
func conflictFlags(cmd *cobra.Command, o *engine.SyncOptions) {
	cmd.Flags().BoolVar(&o.RefuseConflicts, "refuse-conflicts", false, "fail, applying nothing, when another field manager holds a field Git sets (default: take it back)")
	var force bool
	cmd.Flags().BoolVar(&force, "force-conflicts", true, "fields other managers hold are taken back by default now")
	cmd.Flags().MarkDeprecated("force-conflicts", "fields other managers hold are taken back by default; see --refuse-conflicts")
}

func hasOrphans(rep engine.Report) bool {
	for _, s := range rep.Plan.Steps {
		if s.Action == plan.Orphan {
			return true
		}
	}
	return false
}

// stepJSON is one step as -o json|yaml prints it.
type stepJSON struct {
	Action string `json:"action"`
	Object string `json:"object"`
	Wave   int    `json:"wave"`
	Source string `json:"source,omitempty"`
	Reason string `json:"reason,omitempty"`
	Diff   string `json:"diff,omitempty"`
}

type reportOut struct {
	Unit     string       `json:"unit"`
	Revision string       `json:"revision"`
	Changes  int          `json:"changes"`
	Steps    []stepJSON   `json:"steps"`
	Drift    []drift.Item `json:"drift,omitempty"`
}

func reportJSON(rep engine.Report) reportOut {
	out := reportOut{Unit: rep.Unit, Revision: rep.Revision, Changes: rep.Plan.Changes(), Drift: rep.Drift}
	for _, s := range rep.Plan.Steps {
		out.Steps = append(out.Steps, stepJSON{string(s.Action), s.Ref.String(), s.Wave, s.Source.File, s.Reason, s.Diff})
	}
	return out
}
