package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"converge.dev/converge/internal/tree"
)

func newTreeCmd() *cobra.Command {
	var kubeconfig, kcontext, namespace, output string
	cmd := &cobra.Command{
		Use:   "tree KIND/NAME [-n NAMESPACE]",
		Short: "Show what a unit applied, and what that owns, with health",
		Long: `tree shows a unit (an Application, ApplicationSet, Kustomization or
HelmRelease) and what it applied, as its status lists it; a unit it
applied (an app of apps, a Kustomization of HelmReleases) with its own
tree; and each workload's ReplicaSets, Pods and Jobs through
ownerReferences, with the health of each, as flux tree and Argo CD's
resource tree show them. It reads the cluster directly.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			kindArg, name, ok := strings.Cut(args[0], "/")
			if !ok || name == "" {
				return fmt.Errorf("%q: want KIND/NAME, e.g. kustomization/apps", args[0])
			}
			kind, err := unitKind(kindArg)
			if err != nil {
				return err
			}
			if namespace == "" {
				namespace = "default"
			}
			c, err := kubeClient(kubeconfig, kcontext)
			if err != nil {
				return err
			}
			root, err := tree.Unit(cmd.Context(), c, kind, namespace, name)
			if err != nil {
				return err
			}
			if done, err := writeStructured(cmd.OutOrStdout(), output, root); done {
				return err
			}
			printTree(cmd.OutOrStdout(), root, "", "")
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
	fs.StringVar(&kcontext, "context", "", "kubeconfig context")
	fs.StringVarP(&namespace, "namespace", "n", "", "the unit's namespace (default: default)")
	fs.StringVarP(&output, "output", "o", "", "output format: json or yaml")
	return cmd
}

// printTree draws n and its children with box-drawing branches.
func printTree(w io.Writer, n *tree.Node, first, rest string) {
	line := first + n.Kind + "/"
	if n.Namespace != "" {
		line += n.Namespace + "/"
	}
	line += n.Name
	var state []string
	for _, s := range []string{n.Sync, n.Health} {
		if s != "" {
			state = append(state, s)
		}
	}
	if len(state) > 0 {
		line += "  " + strings.Join(state, " ")
	}
	if n.Message != "" {
		line += "  " + n.Message
	}
	fmt.Fprintln(w, line)
	for i, c := range n.Children {
		if i == len(n.Children)-1 {
			printTree(w, c, rest+"└── ", rest+"    ")
		} else {
			printTree(w, c, rest+"├── ", rest+"│   ")
		}
	}
}
