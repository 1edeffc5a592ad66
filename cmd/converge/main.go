// Command converge is the GitOps engine's CLI, controller and local
// cluster runner. Its commands live in internal/cli.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"converge.dev/converge/internal/cli"
	"converge.dev/converge/internal/render/helm"
)

func main() {
	// A Helm render runs in a child process of this same binary, with a
	// memory limit; the child never gets past this line.
	helm.ServeChild()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
