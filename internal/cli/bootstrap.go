package cli

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"converge.dev/converge/internal/bootstrap"
	"converge.dev/converge/internal/cluster"
	"converge.dev/converge/internal/source/git"
)

func newBootstrapCmd() *cobra.Command {
	var o bootstrap.Options
	var kubeconfig, kcontext, gitUser, output string
	cmd := &cobra.Command{
		Use:   "bootstrap --repo URL --path clusters/NAME",
		Short: "Make a cluster reconcile itself, converge included, from a Git repository",
		Long: `bootstrap commits converge's install manifests and a root unit (a
GitRepository and a Kustomization named converge-system that apply --path,
themselves and converge included) to --path/converge-system/ of the
repository's branch, then applies the same to the cluster. From then on
the cluster follows Git; bootstrapping a new cluster from the same
repository and path commits nothing and converges it to the same objects.
The branch needs a first commit. Push credentials come from
$` + envGitToken + ` or $` + envGitPassword + ` (with --git-username); with
--secret, the cluster reads the repository with them too, from a Secret
bootstrap makes in the cluster and never writes to Git.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := bootstrap.Files(o); err != nil {
				return err
			}
			cfg, err := restConfig(kubeconfig, kcontext)
			if err != nil {
				return err
			}
			c, err := cluster.New(cfg)
			if err != nil {
				return err
			}
			o.Auth = git.Auth{Username: gitUser, Password: os.Getenv(envGitPassword), BearerToken: os.Getenv(envGitToken)}
			if o.Auth.Password != "" && o.Auth.Username == "" {
				o.Auth.Username = "git"
			}
			res, err := bootstrap.Run(cmd.Context(), c, o)
			if err != nil {
				return err
			}
			if done, err := writeStructured(cmd.OutOrStdout(), output, res); done {
				return err
			}
			if res.Committed {
				fmt.Fprintf(cmd.OutOrStdout(), "committed and pushed %s: %v\n", res.Commit, res.Files)
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "the repository holds these manifests already at %s: nothing committed\n", res.Commit)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "applied %d objects; the cluster now follows %s (Kustomization %s/%s)\n", len(res.Applied), o.Path, "converge-system", bootstrap.Name)
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.RepoURL, "repo", "", "Git repository the cluster follows")
	fs.StringVar(&o.Branch, "branch", "", "branch (default: the repository's default)")
	fs.StringVar(&o.Path, "path", "", "the cluster's folder in the repository, e.g. clusters/prod")
	fs.StringVar(&o.Image, "image", "converge:latest", "the controller's image")
	fs.DurationVar(&o.Interval, "interval", time.Minute, "how often the cluster fetches the repository")
	fs.BoolVar(&o.Secret, "secret", false, "let the cluster read the repository with the push credentials (a Secret in converge-system)")
	fs.StringVar(&gitUser, "git-username", "", "HTTP username for the push (password from $"+envGitPassword+")")
	fs.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
	fs.StringVar(&kcontext, "context", "", "kubeconfig context")
	fs.StringVarP(&output, "output", "o", "", "output format: json or yaml")
	cmd.MarkFlagRequired("repo")
	cmd.MarkFlagRequired("path")
	return cmd
}
