package cli

import (
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"converge.dev/converge/internal/health"
	"converge.dev/converge/internal/object"
)

// healthEntry is one line of `converge health -o json`, in file order.
type healthEntry struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace"`
	Name       string `json:"name"`
	// Status is empty when no rule covers the kind and the object's status
	// says nothing readable: no health is invented for it.
	Status  health.Status `json:"status"`
	Message string        `json:"message"`
}

func newHealthCmd() *cobra.Command {
	var file, output, rulesFile string
	cmd := &cobra.Command{
		Use:   "health -f FILE",
		Short: "Assess the health of the objects in a file, offline",
		Long: `Assess every object in a YAML or JSON file (or - for stdin) with the same
rules the engine uses: built-in rules for core kinds, then the generic
status-conditions rule for custom resources. --rules adds custom rules in
front: CEL checks (healthCheckExprs, Flux's form) and Lua scripts
(lua: {"<group>_<kind>": script}, Argo CD's contract).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return fmt.Errorf("health: -f FILE is required")
			}
			data, err := readInput(cmd.InOrStdin(), file)
			if err != nil {
				return err
			}
			// Health reads status only: a snippet without a name (as many
			// of Argo CD's health test cases are) is fine.
			objs, err := object.DecodeUnnamed(data, file)
			if err != nil {
				return err
			}
			var rules *health.Rules
			if rulesFile != "" {
				raw, err := os.ReadFile(rulesFile)
				if err != nil {
					return fmt.Errorf("health rules: %w", err)
				}
				cfg, err := health.ConfigFromFile(rulesFile, raw)
				if err != nil {
					return err
				}
				if rules, err = health.NewRules(cfg); err != nil {
					return fmt.Errorf("%s: %w", rulesFile, err)
				}
			}
			entries := make([]healthEntry, 0, len(objs))
			for _, d := range objs {
				o := d.Object
				r, ok := rules.Assess(o)
				if !ok {
					r.Message = "no health rule for " + o.GroupVersionKind().GroupKind().String()
				}
				entries = append(entries, healthEntry{o.GetAPIVersion(), o.GetKind(), o.GetNamespace(), o.GetName(), r.Status, r.Message})
			}
			return printHealth(cmd.OutOrStdout(), output, entries)
		},
	}
	cmd.Flags().StringVarP(&file, "filename", "f", "", "file to read, or - for stdin")
	cmd.Flags().StringVar(&rulesFile, "rules", "", "custom health rules (YAML: healthCheckExprs, lua)")
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json or yaml (default: a table)")
	return cmd
}

func readInput(stdin io.Reader, file string) ([]byte, error) {
	if file == "-" {
		return io.ReadAll(stdin)
	}
	return os.ReadFile(file)
}

func printHealth(w io.Writer, format string, entries []healthEntry) error {
	if done, err := writeStructured(w, format, entries); done {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tNAMESPACE\tNAME\tSTATUS\tMESSAGE")
	for _, e := range entries {
		status := string(e.Status)
		if status == "" {
			status = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Kind, e.Namespace, e.Name, status, e.Message)
	}
	return tw.Flush()
}
