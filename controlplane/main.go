// Command kube-controlplane runs a whole Kubernetes control plane in one
// process for converge's local clusters: embedded etcd, kube-apiserver,
// kube-controller-manager and a fake kubelet that makes Pods Running.
//
// It is a nested module so that k8s.io/kubernetes and its ~31 replace lines
// never reach the product's go.mod. The product (internal/localcluster)
// generates the certificates and kubeconfig, picks the ports, builds this
// binary once per content hash and starts it as a subprocess.
//
// The server version must be set at link time, or kubectl and Helm cannot
// parse it:
//
//	-ldflags "-X k8s.io/component-base/version.gitVersion=v1.37.2 ..."
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// options are the command-line flags. Every path is absolute; the product
// writes all inputs before starting the binary.
type options struct {
	dataDir        string // etcd data lives in DATA/etcd
	certDir        string // ca.crt ca.key server.crt server.key sa.key sa.pub
	kubeconfig     string // admin kubeconfig used by the controller-manager and the kubelet
	tokenFile      string // static token file for the admin identity
	securePort     int
	etcdClientPort int
	etcdPeerPort   int
	serviceCIDR    string
	nodes          int // 0: API only (lifecycle controllers, no workloads run)
}

func main() {
	var o options
	flag.StringVar(&o.dataDir, "data-dir", "", "directory for etcd data")
	flag.StringVar(&o.certDir, "cert-dir", "", "directory holding ca.crt, ca.key, server.crt, server.key, sa.key, sa.pub")
	flag.StringVar(&o.kubeconfig, "kubeconfig", "", "admin kubeconfig for the controller-manager and the kubelet")
	flag.StringVar(&o.tokenFile, "token-auth-file", "", "static token file")
	flag.IntVar(&o.securePort, "secure-port", 0, "kube-apiserver port on 127.0.0.1")
	flag.IntVar(&o.etcdClientPort, "etcd-client-port", 0, "etcd client port on 127.0.0.1")
	flag.IntVar(&o.etcdPeerPort, "etcd-peer-port", 0, "etcd peer port on 127.0.0.1")
	flag.StringVar(&o.serviceCIDR, "service-cluster-ip-range", "10.96.0.0/16", "service CIDR")
	flag.IntVar(&o.nodes, "nodes", 0, "number of fake nodes; 0 runs the API only")
	flag.Parse()

	if o.dataDir == "" || o.certDir == "" || o.kubeconfig == "" || o.securePort == 0 || o.etcdClientPort == 0 || o.etcdPeerPort == 0 {
		fmt.Fprintln(os.Stderr, "kube-controlplane: --data-dir, --cert-dir, --kubeconfig, --secure-port, --etcd-client-port and --etcd-peer-port are required")
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintf(os.Stderr, "kube-controlplane: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	etcd, err := startEtcd(o)
	if err != nil {
		return fmt.Errorf("start etcd: %w", err)
	}
	defer etcd.Close()

	apiErr := make(chan error, 1)
	go func() { apiErr <- runAPIServer(ctx, o) }()

	if err := waitReady(ctx, o, apiErr); err != nil {
		return err
	}

	kcmErr := make(chan error, 1)
	go func() { kcmErr <- runControllerManager(ctx, o) }()

	kubeletErr := make(chan error, 1)
	if o.nodes > 0 {
		go func() { kubeletErr <- runKubelet(ctx, o.kubeconfig, o.nodes) }()
	}

	// The product waits for this line on stdout before it reports ready.
	fmt.Println("kube-controlplane: ready")

	select {
	case <-ctx.Done():
		// Give the components a moment to close their watches before etcd goes away.
		time.Sleep(200 * time.Millisecond)
		return nil
	case err := <-apiErr:
		return fmt.Errorf("kube-apiserver: %w", err)
	case err := <-kcmErr:
		return fmt.Errorf("kube-controller-manager: %w", err)
	case err := <-kubeletErr:
		return fmt.Errorf("fake kubelet: %w", err)
	case err := <-etcd.Err():
		return fmt.Errorf("etcd: %w", err)
	}
}
