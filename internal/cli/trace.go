package cli

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"converge.dev/converge/internal/source/git"
	"converge.dev/converge/internal/trace"
)

// envForgeToken is the forge token trace uses for a repository no
// Pipeline names, and envForgeURL the only URL prefix it and the Git
// credentials are sent to.
const (
	envForgeToken = "CONVERGE_FORGE_TOKEN"
	envForgeURL   = "CONVERGE_FORGE_URL"
)

func newTraceCmd() *cobra.Command {
	var kubeconfig, kcontext, namespace, output string
	var noForge bool
	cmd := &cobra.Command{
		Use:   "trace KIND/NAME [-n NAMESPACE]",
		Short: "Say who changed a live object, what, why, who approved it, where it runs and whether it converged",
		Long: `trace answers the audit questions of a production change for one live
object: the unit that applied it (Application, Kustomization or
HelmRelease) and its source; the revision, with the commit's author,
time and message; the converge promotion and the pull request that
merged it, with its reviewers (from the forge: a Pipeline's token, else
$` + envForgeToken + `, sent only to repositories under $` + envForgeURL + `);
the environment (Pipeline stages, cluster); whether
it is in sync and healthy, with its drift. A Pod or ReplicaSet is traced
through its owners. For an object no unit applied it says so, and names
the managers of its fields. Git credentials for Argo CD sources come from
$` + envGitToken + ` or $` + envGitPassword + `, and go only to repositories under
$` + envForgeURL + `: a unit's source URL is whatever its author wrote.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			kindArg, name, ok := strings.Cut(args[0], "/")
			if !ok || name == "" {
				return fmt.Errorf("%q: want KIND/NAME, e.g. deployment/orders-api", args[0])
			}
			c, err := kubeClient(kubeconfig, kcontext)
			if err != nil {
				return err
			}
			gr := schema.ParseGroupResource(strings.ToLower(kindArg))
			gvk, err := c.RESTMapper().KindFor(gr.WithVersion(""))
			if err != nil {
				return fmt.Errorf("kind %q: %w", kindArg, err)
			}
			ns := namespace
			if m, err := c.RESTMapper().RESTMapping(gvk.GroupKind(), gvk.Version); err == nil && m.Scope.Name() != "namespace" {
				ns = ""
			} else if ns == "" {
				ns = "default"
			}
			cache, err := os.UserCacheDir()
			if err != nil {
				cache = os.TempDir()
			}
			o := trace.Options{Client: c, Forge: !noForge, ForgeToken: os.Getenv(envForgeToken), Trusted: os.Getenv(envForgeURL),
				Git:     git.New(git.Options{CacheDir: filepath.Join(cache, "converge", "trace-git")}),
				GitAuth: git.Auth{Password: os.Getenv(envGitPassword), BearerToken: os.Getenv(envGitToken)}}
			if o.GitAuth.Password != "" {
				o.GitAuth.Username = "git"
			}
			rep, err := trace.Object(cmd.Context(), o, gvk, ns, name)
			if err != nil {
				return err
			}
			if done, err := writeStructured(cmd.OutOrStdout(), output, rep); done {
				return err
			}
			printTrace(cmd.OutOrStdout(), rep)
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
	fs.StringVar(&kcontext, "context", "", "kubeconfig context")
	fs.StringVarP(&namespace, "namespace", "n", "", "the object's namespace (default: default)")
	fs.StringVarP(&output, "output", "o", "", "output format: json or yaml")
	fs.BoolVar(&noForge, "no-forge", false, "do not ask the forge for the pull request and its reviews")
	return cmd
}

func printTrace(w io.Writer, r trace.Report) {
	line := func(label, format string, a ...any) { fmt.Fprintf(w, "%-14s%s\n", label, fmt.Sprintf(format, a...)) }
	state := strings.TrimSpace(r.Sync + " " + r.Health)
	line("Object:", "%s  %s", r.Object, state)
	if r.HealthMessage != "" {
		line("", "%s", r.HealthMessage)
	}
	for _, v := range r.Via {
		line("Via:", "%s", v)
	}
	if u := r.Unit; u != nil {
		line("Applied by:", "%s %s/%s (%s): %s %s", u.Kind, u.Namespace, u.Name, u.Dialect, u.Sync, u.Health)
		line("Source:", "%s", r.Source)
		line("Revision:", "%s", orDash(r.Revision))
	}
	if c := r.Commit; c != nil {
		title, _, _ := strings.Cut(c.Message, "\n")
		line("Commit:", "by %s <%s> at %s", c.Author, c.Email, c.When.UTC().Format(time.RFC3339))
		line("", "%q", title)
	}
	if p := r.Promotion; p != nil {
		line("Promotion:", "%s/%s: Pipeline %s, stage %s, %s", p.Namespace, p.Name, p.Pipeline, p.Stage, orDash(p.Phase))
	}
	if pr := r.PullRequest; pr != nil {
		by := ""
		if pr.Author != "" {
			by = " by " + pr.Author
		}
		line("Pull request:", "#%d %s%s", pr.Number, pr.URL, by)
		if pr.Title != "" {
			line("", "%q", pr.Title)
		}
		for _, rv := range pr.Reviewers {
			line("Reviewed by:", "%s (%s)", rv.User, rv.State)
		}
	}
	for _, e := range r.Environment {
		line("Environment:", "%s", e)
	}
	if r.Cluster != "" {
		line("Cluster:", "%s", r.Cluster)
	}
	if r.Unit != nil {
		if len(r.Drift) == 0 {
			line("Drift:", "none")
		}
		for _, d := range r.Drift {
			line("Drift:", "%s desired %s live %s by %s (%s, %s)", d.Path, d.Desired, d.Live, d.Manager, d.Category, d.Action)
		}
	}
	for _, m := range r.Managers {
		fields := m.Fields
		more := ""
		if len(fields) > 6 {
			fields, more = fields[:6], fmt.Sprintf(" and %d more", len(m.Fields)-6)
		}
		op := m.Operation
		if m.Subresource != "" {
			op += " " + m.Subresource
		}
		line("Manager:", "%s (%s, %s): %s%s", m.Manager, op, m.Time.UTC().Format(time.RFC3339), strings.Join(fields, " "), more)
	}
	for _, n := range r.Notes {
		line("Note:", "%s", n)
	}
}
