package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spf13/pflag"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	apiapp "k8s.io/kubernetes/cmd/kube-apiserver/app"
	apiopts "k8s.io/kubernetes/cmd/kube-apiserver/app/options"
)

// runAPIServer goes through the options rather than the cobra command:
// NewAPIServerCommand installs a signal handler when it is built, and a
// second one (from the controller-manager) panics.
func runAPIServer(ctx context.Context, o options) error {
	s := apiopts.NewServerRunOptions()
	fs := pflag.NewFlagSet("kube-apiserver", pflag.ContinueOnError)
	for _, f := range s.Flags().FlagSets {
		fs.AddFlagSet(f)
	}
	cert := func(name string) string { return filepath.Join(o.certDir, name) }
	args := []string{
		"--etcd-servers=http://127.0.0.1:" + strconv.Itoa(o.etcdClientPort),
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		// The default reconciler refuses a loopback advertise address.
		"--endpoint-reconciler-type=none",
		"--secure-port=" + strconv.Itoa(o.securePort),
		"--tls-cert-file=" + cert("server.crt"),
		"--tls-private-key-file=" + cert("server.key"),
		"--client-ca-file=" + cert("ca.crt"),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + cert("sa.pub"),
		"--service-account-signing-key-file=" + cert("sa.key"),
		"--service-cluster-ip-range=" + o.serviceCIDR,
		"--authorization-mode=RBAC",
		"--allow-privileged=true",
		"--profiling=false",
	}
	if o.tokenFile != "" {
		args = append(args, "--token-auth-file="+o.tokenFile)
	}
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("flags: %w", err)
	}
	if err := s.GenericServerRunOptions.ComponentGlobalsRegistry.Set(); err != nil {
		return fmt.Errorf("feature gates: %w", err)
	}
	rest.SetDefaultWarningHandler(rest.NoWarnings{})
	completed, err := s.Complete(ctx)
	if err != nil {
		return fmt.Errorf("complete options: %w", err)
	}
	if errs := completed.Validate(); len(errs) != 0 {
		return fmt.Errorf("validate options: %w", utilerrors.NewAggregate(errs))
	}
	return apiapp.Run(ctx, completed)
}

// waitReady polls /readyz with the admin identity until it answers ok.
func waitReady(ctx context.Context, o options, apiErr <-chan error) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", o.kubeconfig)
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	deadline := time.After(120 * time.Second)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		body, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err == nil && string(body) == "ok" {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-apiErr:
			return fmt.Errorf("kube-apiserver: %w", err)
		case <-deadline:
			return fmt.Errorf("kube-apiserver: /readyz not ok after 120s: %v", err)
		case <-tick.C:
		}
	}
}
