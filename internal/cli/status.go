package cli

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"converge.dev/converge/internal/health"
)

func newStatusCmd() *cobra.Command {
	var f unitFlags
	var check bool
	cmd := &cobra.Command{
		Use:   "status --repo URL [--revision REF] [--path P] [--name UNIT]",
		Short: "Desired, live and runtime state of a unit, per object",
		Long: `Status keeps the three states apart: is the object in Git (desired), does
the cluster hold it as Git says (live: Synced, OutOfSync, Missing,
Conflict), and does it work (runtime health, with the reason when not).
With --check, exit 1 unless everything is Synced and Healthy.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			u, eng, err := f.setup(true)
			if err != nil {
				return err
			}
			st, err := eng.Status(cmd.Context(), u)
			if err != nil {
				return err
			}
			if done, err := writeStructured(cmd.OutOrStdout(), f.output, st); done && err != nil {
				return err
			} else if !done {
				w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "OBJECT\tIN GIT\tSYNC\tHEALTH\tMESSAGE")
				for _, o := range st.Objects {
					h := string(o.Health)
					if h == "" {
						h = "-"
					}
					fmt.Fprintf(w, "%s\t%t\t%s\t%s\t%s\n", o.Ref, o.InGit, o.Sync, h, o.Message)
				}
				w.Flush()
				fmt.Fprintf(cmd.ErrOrStderr(), "unit %s at %.12s: synced %t, health %s\n", st.Unit, st.Revision, st.Synced, st.Health)
			}
			if check && (!st.Synced || st.Health != health.Healthy) {
				return exitError{ExitDiff}
			}
			return nil
		},
	}
	f.register(cmd, true)
	cmd.Flags().BoolVar(&check, "check", false, "exit 1 unless synced and healthy")
	return cmd
}
