package cli

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/discovery"

	"converge.dev/converge/internal/engine"
	"converge.dev/converge/internal/object"
	"converge.dev/converge/internal/validate"
)

func newValidateCmd() *cobra.Command {
	var output, revision, kubeVersion, kubeconfig, kcontext string
	cmd := &cobra.Command{
		Use:   "validate PATH-OR-REPO",
		Short: "Render every unit offline and check it against schemas and admission policies, for CI before merge",
		Long: `validate finds every unit of a repository (a folder, or a Git URL at
--revision): Argo CD Applications, Flux Kustomizations and kustomize
folders no other includes; renders each offline; and checks every object
against the OpenAPI schemas of a Kubernetes version (shipped in converge,
or read from a cluster with --kubeconfig), against the CRDs the
repository holds and converge's own (Argo CD's and Flux's kinds), and
against the repository's ValidatingAdmissionPolicies that a binding
enforces (CEL, offline: as if each object were being created). Errors
name the file, the document and the field. It exits 1 on an error.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			start := time.Now()
			root, err := checkout(cmd.Context(), args[0], revision)
			if err != nil {
				return err
			}
			var schemas *validate.Schemas
			if kubeconfig != "" {
				if kubeVersion != "" {
					return fmt.Errorf("--kube-version and --kubeconfig exclude each other: the cluster's schemas are its version's")
				}
				if schemas, err = clusterSchemas(cmd.Context(), kubeconfig, kcontext); err != nil {
					return err
				}
			} else if schemas, err = validate.Builtin(kubeVersion); err != nil {
				return err
			}
			eng := engine.New(engine.Options{})
			rep, err := validate.Run(cmd.Context(), root, validate.Options{Schemas: schemas,
				Render: func(ctx context.Context, u engine.Unit) ([]object.Decoded, error) {
					return eng.RenderLocal(ctx, u, root)
				}})
			if err != nil {
				return err
			}
			if done, err := writeStructured(cmd.OutOrStdout(), output, rep); done && err != nil {
				return err
			} else if !done && len(rep.Problems) > 0 {
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 3, ' ', 0)
				fmt.Fprintln(tw, "SEVERITY\tKIND\tWHERE\tPROBLEM")
				for _, p := range rep.Problems {
					where := p.File
					if p.Document > 0 {
						where += fmt.Sprintf(" #%d", p.Document)
					}
					if p.Object != "" {
						where += " " + p.Object
					}
					msg := p.Message
					if p.Field != "" {
						msg = p.Field + ": " + msg
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.Severity, p.Kind, where, msg)
				}
				tw.Flush()
			}
			errs := rep.Errors()
			fmt.Fprintf(cmd.ErrOrStderr(), "validated %d unit(s), %d object(s) and %d admission policies against %s in %s: %d error(s), %d warning(s)\n",
				rep.Units, rep.Objects, rep.Policies, rep.Schemas, time.Since(start).Round(time.Millisecond), errs, len(rep.Problems)-errs)
			if errs > 0 {
				return exitError{ExitDiff}
			}
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVarP(&output, "output", "o", "", "output format: json or yaml")
	fs.StringVar(&revision, "revision", "", "branch, tag or commit of a repository URL (default: HEAD)")
	fs.StringVar(&kubeVersion, "kube-version", "", fmt.Sprintf("Kubernetes version whose schemas to use, of those shipped: %v (default: the newest)", validate.Versions()))
	fs.StringVar(&kubeconfig, "kubeconfig", "", "read the schemas from this cluster instead (its built-in kinds and the CRDs it serves)")
	fs.StringVar(&kcontext, "context", "", "kubeconfig context")
	return cmd
}

// clusterSchemas reads a cluster's /openapi/v2.
func clusterSchemas(ctx context.Context, kubeconfig, kcontext string) (*validate.Schemas, error) {
	cfg, err := restConfig(kubeconfig, kcontext)
	if err != nil {
		return nil, err
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, err
	}
	data, err := dc.RESTClient().Get().AbsPath("/openapi/v2").SetHeader("Accept", "application/json").Do(ctx).Raw()
	if err != nil {
		return nil, fmt.Errorf("the cluster's OpenAPI document: %w", err)
	}
	s, err := validate.FromOpenAPIV2(data)
	if err != nil {
		return nil, err
	}
	s.Source = "the cluster at " + cfg.Host
	return s, nil
}
