package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"converge.dev/converge/internal/object"
)

func newRenderCmd() *cobra.Command {
	var f unitFlags
	cmd := &cobra.Command{
		Use:   "render --repo URL [--revision REF] [--path P]",
		Short: "Render a folder of a Git revision to Kubernetes objects, offline (no cluster)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			u, eng, err := f.setup(false)
			if err != nil {
				return err
			}
			r, err := eng.Render(cmd.Context(), u)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "rendered %d objects at %s\n", len(r.Objects), r.Revision)
			return printObjects(cmd.OutOrStdout(), f.output, r.Objects)
		},
	}
	f.register(cmd, false)
	return cmd
}

// printObjects writes objects as a YAML stream with a "# Source:" line
// each, or as a JSON list.
func printObjects(w io.Writer, format string, objs []object.Decoded) error {
	switch format {
	case "json":
		list := make([]any, len(objs))
		for i, d := range objs {
			list[i] = d.Object.Object
		}
		return writeJSON(w, list)
	case "", "yaml":
		for _, d := range objs {
			data, err := yaml.Marshal(d.Object.Object)
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "---\n# Source: %s\n%s", d.Source.File, data)
		}
		return nil
	}
	return fmt.Errorf("output format %q: use yaml or json", format)
}
