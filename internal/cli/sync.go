package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"converge.dev/converge/internal/drift"
	"converge.dev/converge/internal/engine"
	"converge.dev/converge/internal/plan"
)

func newSyncCmd() *cobra.Command {
	var f unitFlags
	var o engine.SyncOptions
	var timeout time.Duration
	var budget string
	var approvePrune bool
	cmd := &cobra.Command{
		Use:   "sync --repo URL [--revision REF] [--path P] [--dest-namespace NS] [--name UNIT]",
		Short: "Converge the cluster to a Git revision",
		Long: `Sync renders the revision, validates every object with a server-side dry
run, then applies in order (Namespaces and CRDs, then waves, then kinds)
with server-side apply, and prunes with --prune. If fetching, rendering or
validation fails, nothing is applied and nothing is pruned.
Exit codes: 0 converged, 1 not converged (conflicts, or --wait saw a
failure), 2 error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			u, eng, err := f.setup(true)
			if err != nil {
				return err
			}
			// The controller owns these units; a CLI sync with other flags
			// could prune what an Application applied.
			if strings.HasPrefix(u.Name, "argocd.") {
				return fmt.Errorf("unit %s belongs to an Argo CD Application run by the controller: use converge app sync", u.Name)
			}
			ctx := cmd.Context()
			if timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, timeout)
				defer cancel()
			}
			if budget != "" {
				b, err := engine.ParseBudget(budget)
				if err != nil {
					return fmt.Errorf("--prune-budget: %w", err)
				}
				o.Budget = b
			}
			if approvePrune {
				o.Budget.Approved = time.Now()
			}
			rep, err := eng.Sync(ctx, u, o)
			if err != nil && len(rep.Events) == 0 {
				return err
			}
			if done, werr := writeStructured(cmd.OutOrStdout(), f.output, reportJSON(rep)); done && werr != nil {
				return werr
			} else if !done {
				printSync(cmd, rep)
			}
			if err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "converge: %v\n", err)
				return exitError{ExitDiff}
			}
			if rep.Plan.Held != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "converge: %s (here: run again with --approve-prune)\n", rep.Plan.Held.Message(u.Path))
				return exitError{ExitDiff}
			}
			for _, s := range rep.Plan.Steps {
				if s.Action == plan.Conflict {
					return exitError{ExitDiff}
				}
			}
			return nil
		},
	}
	f.register(cmd, true)
	cmd.Flags().BoolVar(&o.Prune, "prune", false, "delete objects this unit applied that are no longer in Git")
	cmd.Flags().BoolVar(&o.AllowEmpty, "allow-empty", false, "let an empty render prune everything the unit owns")
	cmd.Flags().BoolVar(&o.DryRun, "dry-run", false, "plan and validate on the server (dryRun=All), change nothing")
	cmd.Flags().BoolVar(&o.Wait, "wait", false, "wait for each wave to be healthy before the next, and for all at the end")
	conflictFlags(cmd, &o)
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "give up after this long")
	cmd.Flags().StringVar(&budget, "prune-budget", "", "most one sync may prune: 0 (off), a share (25%), a count (50) or both (25%,50); default 25%,50")
	cmd.Flags().BoolVar(&approvePrune, "approve-prune", false, "let a prune held by the budget go ahead (it must have been held before)")
	cmd.Flags().BoolVar(&o.Adopt, "adopt", false, "take over live objects that no unit created (they are not pruned later without --prune-adopted)")
	cmd.Flags().BoolVar(&o.PruneAdopted, "prune-adopted", false, "let prune delete objects this unit adopted")
	return cmd
}

func printSync(cmd *cobra.Command, rep engine.Report) {
	w := cmd.OutOrStdout()
	done := map[string]bool{}
	for _, e := range rep.Events {
		done[e.Ref.String()] = true
		if e.Action == plan.Hook {
			continue // reported below, with how it ended
		}
		fmt.Fprintf(w, "%s %s\n", pastTense(e.Action), e.Ref)
	}
	for _, h := range rep.Hooks {
		outcome := "succeeded"
		if !h.Succeeded {
			outcome = "failed: " + h.Message
		}
		fmt.Fprintf(w, "hook %s %s %s\n", h.Phase, h.Ref, outcome)
	}
	for _, s := range rep.Plan.Steps {
		switch {
		case s.Action == plan.Conflict || s.Action == plan.Orphan || s.Action == plan.Untouched:
			fmt.Fprintf(w, "%s %s: %s\n", s.Action, s.Ref, s.Reason)
		case rep.Events == nil && s.Action == plan.Hook:
			fmt.Fprintf(w, "would run %s hook %s\n", s.Hook, s.Ref)
		case rep.Events == nil && s.Action != plan.Unchanged:
			fmt.Fprintf(w, "would %s %s\n", s.Action, s.Ref)
		}
	}
	for _, it := range rep.Drift {
		switch {
		case it.Action == drift.Allow || it.Action == drift.Ignore || it.Action == drift.Override:
			fmt.Fprintf(w, "left %s %s to %s (%s)\n", it.Object, it.Path, holder(it), it.Rule)
		case it.Manager != "" && rep.Events != nil:
			fmt.Fprintf(w, "took %s %s back from %s (%s)\n", it.Object, it.Path, holder(it), it.Category)
		case it.Manager != "":
			fmt.Fprintf(w, "would take %s %s back from %s (%s)\n", it.Object, it.Path, holder(it), it.Category)
		}
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "unit %s at %.12s: %d changes\n", rep.Unit, rep.Revision, len(rep.Events))
}

func pastTense(a plan.Action) string {
	switch a {
	case plan.Create:
		return "created"
	case plan.Update:
		return "updated"
	case plan.Prune:
		return "pruned"
	}
	return string(a)
}

func holder(it drift.Item) string {
	h := fmt.Sprintf("%q", it.Manager)
	if it.Subresource != "" {
		h += " on /" + it.Subresource
	}
	return h
}
