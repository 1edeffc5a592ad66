package cli

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/duration"

	"converge.dev/converge/internal/controlplane"
	"converge.dev/converge/internal/localcluster"
)

func newClusterCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Real local Kubernetes control planes, without Docker",
		Long: `Local clusters run etcd, kube-apiserver, kube-controller-manager and a fake
kubelet in one process on 127.0.0.1. The first create builds that process
from Go modules (about 7 minutes); later ones start in seconds.`,
	}
	cmd.AddCommand(newClusterCreateCmd(), newClusterDeleteCmd(), newClusterListCmd(), newClusterKubeconfigCmd(), newClusterRegisterCmd())
	return cmd
}

func newClusterCreateCmd() *cobra.Command {
	var nodes int
	var wait bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a local cluster that runs until it is deleted",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			store, err := localcluster.DefaultStore()
			if err != nil {
				return err
			}
			start := time.Now()
			c, err := store.Create(cmd.Context(), args[0], localcluster.Options{
				Nodes:        nodes,
				WaitNodes:    wait,
				ReadyTimeout: timeout,
				Build:        controlplane.Options{Progress: cmd.ErrOrStderr()},
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "cluster %s ready at %s in %s (nodes: %d)\n",
				c.Name, c.APIURL, time.Since(start).Round(100*time.Millisecond), c.Nodes)
			fmt.Fprintf(cmd.OutOrStdout(), "%s\n", c.Kubeconfig())
			return nil
		},
	}
	cmd.Flags().IntVar(&nodes, "nodes", 0, "number of fake nodes; 0 runs the API only (nothing is scheduled)")
	cmd.Flags().BoolVar(&wait, "wait", false, "also wait until the nodes are Ready and pods can be created")
	cmd.Flags().DurationVar(&timeout, "timeout", 2*time.Minute, "how long to wait for the cluster to be ready")
	return cmd
}

func newClusterDeleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Stop a local cluster and remove its data",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			store, err := localcluster.DefaultStore()
			if err != nil {
				return err
			}
			if err := store.Delete(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "cluster %s deleted\n", args[0])
			return nil
		},
	}
}

func newClusterListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List local clusters",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			store, err := localcluster.DefaultStore()
			if err != nil {
				return err
			}
			all, err := store.List(cmd.Context())
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 3, ' ', 0)
			fmt.Fprintln(w, "NAME\tSTATUS\tNODES\tAPI\tAGE")
			for _, s := range all {
				age := "<unknown>"
				if s.Age > 0 {
					age = duration.HumanDuration(s.Age)
				}
				fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\n", s.Name, s.State, s.Nodes, s.APIURL, age)
			}
			return w.Flush()
		},
	}
}

func newClusterKubeconfigCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "kubeconfig NAME",
		Short: "Print the path of a local cluster's admin kubeconfig",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			store, err := localcluster.DefaultStore()
			if err != nil {
				return err
			}
			c, err := store.Get(args[0])
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), c.Kubeconfig())
			return nil
		},
	}
}
