package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"converge.dev/converge/internal/engine"
	"converge.dev/converge/internal/lint"
	"converge.dev/converge/internal/object"
	"converge.dev/converge/internal/source"
	"converge.dev/converge/internal/source/git"
)

func newLintCmd() *cobra.Command {
	var output, revision string
	var disable []string
	var strict, list bool
	cmd := &cobra.Command{
		Use:   "lint PATH-OR-REPO",
		Short: "Find GitOps anti-patterns in a repository before merge",
		Long: `lint reads a repository (a folder, or a Git URL at --revision) and renders
its units offline, and reports the anti-patterns the GitOps seed names,
each with a stable rule id, a severity and the file: environment
branches, floating image tags, tags without digests in staging and
production, plaintext Secrets, production paths without CODEOWNERS, sync
waves on nearly everything, pruning app-of-apps roots, ApplicationSets
without preserveResourcesOnDeletion, self-heal without a DriftPolicy, and
replicas an autoscaler fights. Rules are turned off with --disable, or
per path in the repository's ` + lint.ConfigFile + `. It exits 1 when it
finds an error (or, with --strict, anything).`,
		Args: func(cmd *cobra.Command, args []string) error {
			if list {
				return cobra.NoArgs(cmd, args)
			}
			return cobra.ExactArgs(1)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if list {
				if done, err := writeStructured(cmd.OutOrStdout(), output, lint.Rules); done {
					return err
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 3, ' ', 0)
				fmt.Fprintln(tw, "RULE\tNAME\tSEVERITY\tWHY")
				for _, r := range lint.Rules {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.ID, r.Name, r.Severity, r.Why)
				}
				return tw.Flush()
			}
			root, err := checkout(cmd.Context(), args[0], revision)
			if err != nil {
				return err
			}
			eng := engine.New(engine.Options{})
			found, err := lint.Run(cmd.Context(), root, lint.Options{Disable: disable,
				Render: func(ctx context.Context, u engine.Unit) ([]object.Decoded, error) {
					return eng.RenderLocal(ctx, u, root)
				}})
			if err != nil {
				return err
			}
			if done, err := writeStructured(cmd.OutOrStdout(), output, found); done && err != nil {
				return err
			} else if !done {
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 3, ' ', 0)
				fmt.Fprintln(tw, "SEVERITY\tRULE\tFILE\tOBJECT\tMESSAGE")
				for _, f := range found {
					fmt.Fprintf(tw, "%s\t%s %s\t%s\t%s\t%s\n", f.Severity, f.Rule, f.Name, f.File, orDash(f.Object), f.Message)
				}
				tw.Flush()
			}
			errs, warns := 0, 0
			for _, f := range found {
				if f.Severity == lint.Error {
					errs++
				} else {
					warns++
				}
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "%d error(s), %d warning(s)\n", errs, warns)
			if errs > 0 || (strict && warns > 0) {
				return exitError{ExitDiff}
			}
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVarP(&output, "output", "o", "", "output format: json or yaml")
	fs.StringVar(&revision, "revision", "", "branch, tag or commit of a repository URL (default: HEAD)")
	fs.StringSliceVar(&disable, "disable", nil, "rules to turn off, by id or name (repeatable)")
	fs.BoolVar(&strict, "strict", false, "exit 1 on warnings too")
	fs.BoolVar(&list, "rules", false, "list the rules and exit")
	return cmd
}

// checkout is a local folder as it is, or a Git URL fetched at revision
// into the cache (credentials from the environment, as render's).
func checkout(ctx context.Context, pathOrRepo, revision string) (string, error) {
	if !strings.Contains(pathOrRepo, "://") && !strings.HasPrefix(pathOrRepo, "git@") {
		st, err := os.Stat(pathOrRepo)
		if err != nil {
			return "", err
		}
		if !st.IsDir() {
			return "", fmt.Errorf("%s: not a folder", pathOrRepo)
		}
		return pathOrRepo, nil
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	f := git.New(git.Options{CacheDir: filepath.Join(cache, "converge", "git")})
	auth := git.Auth{Password: os.Getenv(envGitPassword), BearerToken: os.Getenv(envGitToken)}
	if auth.Password != "" {
		auth.Username = "git"
	}
	snap, err := f.Fetch(ctx, pathOrRepo, source.Ref{Name: revision}, auth)
	if err != nil {
		return "", fmt.Errorf("%s: %w", pathOrRepo, err)
	}
	return snap.Dir, nil
}
