package cli

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"converge.dev/converge/internal/engine"
)

func newDriftBackportCmd() *cobra.Command {
	var f unitFlags
	var o engine.BackportOptions
	cmd := &cobra.Command{
		Use:   "backport --repo URL [--revision BRANCH] [--path P] [--name UNIT] [--drift-policy FILE]",
		Short: "Write the live values of drifted fields into Git and open a pull request",
		Long: `Backport makes Git tell the truth again after an emergency change (the
seed's §15.1 step 9). It takes the unit's drift that no policy allows
(reported, reverted or held by an override), writes the live values into
a clone of the unit's branch, checks that the folder then renders exactly
those values, pushes the change to a branch of its own and opens a pull
request on the forge (Gitea), or finds the one already open.

A plain folder is edited where each object is declared, comments kept. A
kustomize overlay gets a JSON 6902 patch in the overlay; its base is never
edited. A Helm chart is refused: which value produced a rendered field is
not recorded. Secrets are never written to Git.

Credentials: --git-username and $CONVERGE_GIT_PASSWORD (or
$CONVERGE_GIT_TOKEN) push the branch and call the forge's API.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			u, eng, err := f.setup(true)
			if err != nil {
				return err
			}
			res, err := eng.Backport(cmd.Context(), u, o)
			for _, s := range res.Skipped {
				fmt.Fprintf(cmd.ErrOrStderr(), "converge: not backported: %s\n", s)
			}
			if errors.Is(err, engine.ErrNothingToBackport) {
				fmt.Fprintln(cmd.OutOrStdout(), "nothing to backport")
				return nil
			}
			if err != nil {
				return err
			}
			for _, c := range res.Changes {
				fmt.Fprintf(cmd.OutOrStdout(), "backport %s %s\n", c.Object, c.Path)
			}
			if o.DryRun {
				fmt.Fprintf(cmd.OutOrStdout(), "would change %s and open a pull request into %s\n", strings.Join(res.Files, ", "), res.Base)
				return nil
			}
			verb := "opened"
			if res.PR.Existing {
				verb = "updated"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s pull request #%d %s (%s into %s)\n", verb, res.PR.Number, res.PR.URL, res.Branch, res.Base)
			return nil
		},
	}
	f.register(cmd, true)
	cmd.Flags().StringVar(&o.Branch, "branch", "", "branch to push the change to (default converge-backport-UNIT)")
	cmd.Flags().BoolVar(&o.DryRun, "dry-run", false, "write and check the change in a clone, push nothing")
	return cmd
}
