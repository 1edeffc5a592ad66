package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"
	kcmapp "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	kcmopts "k8s.io/kubernetes/cmd/kube-controller-manager/app/options"
)

// apiOnlyControllers keep the object lifecycle honest without running any
// workload: namespaces finish deleting, owner references are collected and
// every namespace gets its default ServiceAccount and root CA.
var apiOnlyControllers = []string{
	"namespace-controller",
	"garbage-collector-controller",
	"serviceaccount-controller",
	"serviceaccount-token-controller",
	"root-ca-certificate-publisher-controller",
}

// nodeControllers is everything but the controllers that need a real
// kubelet, a cloud or node IPAM.
const nodeControllers = "*,-node-ipam-controller,-node-lifecycle-controller,-persistentvolume-attach-detach-controller"

func runControllerManager(ctx context.Context, o options) error {
	s, err := kcmopts.NewKubeControllerManagerOptions()
	if err != nil {
		return fmt.Errorf("options: %w", err)
	}
	all, disabled, aliases := kcmapp.KnownControllers(), kcmapp.ControllersDisabledByDefault(), kcmapp.ControllerAliases()
	named := s.Flags(all, disabled, aliases)
	s.ParsedFlags = &named
	fs := pflag.NewFlagSet("kube-controller-manager", pflag.ContinueOnError)
	for _, f := range named.FlagSets {
		fs.AddFlagSet(f)
	}
	controllers := nodeControllers
	if o.nodes == 0 {
		controllers = strings.Join(apiOnlyControllers, ",")
	}
	args := []string{
		"--kubeconfig=" + o.kubeconfig,
		"--authentication-kubeconfig=" + o.kubeconfig,
		"--authorization-kubeconfig=" + o.kubeconfig,
		"--leader-elect=false",
		"--secure-port=0",
		"--service-account-private-key-file=" + filepath.Join(o.certDir, "sa.key"),
		"--root-ca-file=" + filepath.Join(o.certDir, "ca.crt"),
		"--service-cluster-ip-range=" + o.serviceCIDR,
		"--controllers=" + controllers,
	}
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("flags: %w", err)
	}
	if err := s.ComponentGlobalsRegistry.Set(); err != nil {
		return fmt.Errorf("feature gates: %w", err)
	}
	c, err := s.Config(ctx, all, disabled, aliases)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return kcmapp.Run(ctx, c.Complete())
}
