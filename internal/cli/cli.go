// Package cli holds converge's cobra commands, one file per command. The
// commands are thin: they parse flags, call the packages that do the work
// and print their results.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

// Exit codes, as the CLI contract defines them.
const (
	ExitOK    = 0
	ExitDiff  = 1 // differences found, or not converged / unhealthy
	ExitError = 2 // usage or operational error
)

// exitError carries a non-zero exit code that is not an error message,
// such as "differences found".
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

// Run executes converge with args and returns the process exit code.
// Errors are printed as one line on stderr.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	var ee exitError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &ee):
		return ee.code
	default:
		fmt.Fprintf(stderr, "converge: %v\n", err)
		return ExitError
	}
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "converge",
		Short:         "GitOps engine: converge Kubernetes clusters to what Git says",
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(newClusterCmd(), newRenderCmd(), newDiffCmd(), newDriftCmd(), newOverrideCmd(), newSyncCmd(), newApprovePruneCmd(), newStatusCmd(), newHealthCmd(),
		newUpCmd(), newControllerCmd(), newServerCmd(), newGetCmd(), newTreeCmd(), newTraceCmd(), newLintCmd(), newValidateCmd(), newDoctorCmd(), newBootstrapCmd(), newInstallCmd(), newAppCmd(), newPromoteCmd(), newEvidenceCmd(), newVersionCmd())
	return root
}
