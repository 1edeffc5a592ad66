// Package localcluster runs real Kubernetes control planes on loopback,
// without Docker: one kube-controlplane process per cluster (etcd,
// kube-apiserver, kube-controller-manager and, in nodes mode, a fake
// kubelet), with its own ports, certificates, data and kubeconfig.
//
// Start runs one cluster in a folder; Store keeps named clusters in a
// per-user folder for the CLI. Tests use internal/clustertest instead.
package localcluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"converge.dev/converge/internal/controlplane"
)

// Options configure Start.
type Options struct {
	// Name appears in the kubeconfig's cluster, user and context names.
	Name string
	// Dir is the cluster's own folder: certificates, etcd data, log,
	// kubeconfig and state. It is created if missing.
	Dir string
	// Nodes is the number of fake nodes. Zero runs the API only: objects
	// are stored, namespaces and garbage collection work, nothing runs.
	Nodes int
	// Binary is the kube-controlplane executable. If empty, it is built
	// (or found in the cache) with Build.
	Binary string
	// Build configures the build when Binary is empty.
	Build controlplane.Options
	// Detach lets the cluster outlive the calling process, as
	// `converge cluster create` needs. If false, the cluster dies with the
	// caller, even if the caller panics or is killed.
	Detach bool
	// WaitNodes makes Start also wait, in nodes mode, for every node to be
	// Ready and for the default ServiceAccount, without which pods are
	// refused. If false, Start returns as soon as /readyz answers ok.
	WaitNodes bool
	// ReadyTimeout bounds the wait. If zero, two minutes.
	ReadyTimeout time.Duration
}

// Ports are the loopback ports one cluster listens on.
type Ports struct {
	API        int `json:"api"`
	EtcdClient int `json:"etcdClient"`
	EtcdPeer   int `json:"etcdPeer"`
}

// Cluster is a running (or recorded) local cluster.
type Cluster struct {
	Name    string    `json:"name"`
	Nodes   int       `json:"nodes"`
	APIURL  string    `json:"apiURL"`
	Ports   Ports     `json:"ports"`
	PID     int       `json:"pid"`
	Created time.Time `json:"created"`

	// Dir is the cluster's folder; it is where the record was read from.
	Dir string `json:"-"`

	cmd    *exec.Cmd     // set when this process started the cluster and waits for it
	exited chan struct{} // closed when cmd has been reaped
}

// ErrPortBusy means a port picked for the cluster was taken before the
// control plane could bind it.
var ErrPortBusy = errors.New("port is busy")

// serviceCIDR is the service range; its first address is the kubernetes
// Service, which the serving certificate must name.
const serviceCIDR = "10.96.0.0/16"

var kubernetesServiceIP = net.IPv4(10, 96, 0, 1)

const (
	stateFile = "cluster.json"
	logFile   = "controlplane.log"
)

// Kubeconfig is the path of the cluster's admin kubeconfig.
func (c *Cluster) Kubeconfig() string { return filepath.Join(c.Dir, "kubeconfig") }

// LogPath is the control plane's combined log.
func (c *Cluster) LogPath() string { return filepath.Join(c.Dir, logFile) }

// RESTConfig is an admin client configuration for the cluster.
func (c *Cluster) RESTConfig() (*rest.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig())
	if err != nil {
		return nil, fmt.Errorf("cluster %s: load kubeconfig: %w", c.Name, err)
	}
	return cfg, nil
}

// Start runs a cluster in o.Dir and returns once it is ready (see
// Options.WaitNodes). A port taken between
// picking and binding is retried with fresh ports.
func Start(ctx context.Context, o Options) (*Cluster, error) {
	if o.Name == "" || o.Dir == "" {
		return nil, errors.New("start cluster: Name and Dir are required")
	}
	bin := o.Binary
	if bin == "" {
		var err error
		if bin, err = controlplane.Ensure(ctx, o.Build); err != nil {
			return nil, err
		}
	}
	if err := prepare(o); err != nil {
		return nil, fmt.Errorf("cluster %s: %w", o.Name, err)
	}
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		var c *Cluster
		c, err = launch(ctx, o, bin)
		if err == nil {
			return c, nil
		}
		if !errors.Is(err, ErrPortBusy) {
			break
		}
	}
	return nil, err
}

// prepare writes the certificates once; a restart on the same folder keeps
// them so that existing kubeconfigs stay valid.
func prepare(o Options) error {
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(o.Dir, "pki", "ca.crt")); err == nil {
		return nil
	}
	p, err := newPKI(kubernetesServiceIP)
	if err != nil {
		return err
	}
	return p.write(filepath.Join(o.Dir, "pki"))
}

// Load reads the record of a cluster from its folder.
func Load(dir string) (*Cluster, error) {
	data, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return nil, err
	}
	c := &Cluster{Dir: dir}
	if err := json.Unmarshal(data, c); err != nil {
		return nil, fmt.Errorf("read %s: %w", filepath.Join(dir, stateFile), err)
	}
	return c, nil
}

func (c *Cluster) save() error {
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(c.Dir, stateFile+".tmp")
	if err := os.WriteFile(tmp, append(data, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(c.Dir, stateFile))
}

// freePorts asks the kernel for n distinct free ports on 127.0.0.1.
func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("pick a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// portBusy tells from the control plane's log whether it died on a bind.
func portBusy(log string) bool {
	return strings.Contains(log, "address already in use")
}
