package localcluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"converge.dev/converge/internal/controlplane"
)

// launch starts the control plane once with fresh ports and waits for it.
func launch(ctx context.Context, o Options, bin string) (*Cluster, error) {
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	c := &Cluster{
		Name:    o.Name,
		Nodes:   o.Nodes,
		Dir:     o.Dir,
		Ports:   Ports{API: ports[0], EtcdClient: ports[1], EtcdPeer: ports[2]},
		APIURL:  fmt.Sprintf("https://127.0.0.1:%d", ports[0]),
		Created: time.Now().UTC().Truncate(time.Second),
	}
	if err := writeKubeconfig(c); err != nil {
		return nil, fmt.Errorf("cluster %s: write kubeconfig: %w", c.Name, err)
	}
	log, err := os.Create(c.LogPath())
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", c.Name, err)
	}
	defer log.Close() // the child keeps its own descriptor

	pki := filepath.Join(o.Dir, "pki")
	cmd := exec.Command(bin,
		"--data-dir="+filepath.Join(o.Dir, "data"),
		"--cert-dir="+pki,
		"--kubeconfig="+c.Kubeconfig(),
		"--secure-port="+strconv.Itoa(c.Ports.API),
		"--etcd-client-port="+strconv.Itoa(c.Ports.EtcdClient),
		"--etcd-peer-port="+strconv.Itoa(c.Ports.EtcdPeer),
		"--service-cluster-ip-range="+serviceCIDR,
		"--nodes="+strconv.Itoa(o.Nodes),
	)
	cmd.Dir = o.Dir
	cmd.Stdout, cmd.Stderr = log, log
	if o.Detach {
		// A session of its own: a terminal's Ctrl-C or hang-up after
		// `converge cluster create` returns does not reach it.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	} else {
		// Its own group, so Stop can signal everything; and killed by the
		// kernel when we die, even by SIGKILL or a panic in a test.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("cluster %s: start %s: %w", c.Name, bin, err)
	}
	c.PID = cmd.Process.Pid
	c.cmd = cmd
	exited := make(chan struct{})
	c.exited = exited
	go func() { cmd.Wait(); close(exited) }()

	if err := c.save(); err != nil {
		c.kill()
		return nil, fmt.Errorf("cluster %s: save state: %w", c.Name, err)
	}
	timeout := o.ReadyTimeout
	if timeout == 0 {
		timeout = 2 * time.Minute
	}
	if err := c.waitReady(ctx, timeout, o.WaitNodes); err != nil {
		c.kill()
		tail := controlplane.Tail(c.LogPath(), 20)
		if portBusy(tail) {
			return nil, fmt.Errorf("cluster %s: %w: %v", c.Name, ErrPortBusy, err)
		}
		return nil, fmt.Errorf("cluster %s: %w\nlast lines of %s:\n%s", c.Name, err, c.LogPath(), tail)
	}
	if o.Detach {
		// A detached cluster is found again through /proc, like one started
		// by another process. The goroutine above still reaps it if it dies
		// while this process lives (converge up); otherwise init does.
		c.cmd, c.exited = nil, nil
	}
	return c, nil
}

// waitReady polls /readyz, then (if asked, in nodes mode) the nodes and the default
// ServiceAccount, failing fast if the process exits.
func (c *Cluster) waitReady(ctx context.Context, timeout time.Duration, nodes bool) error {
	cfg, err := c.RESTConfig()
	if err != nil {
		return err
	}
	cfg.Timeout = 2 * time.Second
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ready := func() (bool, error) {
		body, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err != nil || string(body) != "ok" {
			return false, err
		}
		if c.Nodes == 0 || !nodes {
			return true, nil
		}
		nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		n := 0
		for _, node := range nodes.Items {
			for _, cond := range node.Status.Conditions {
				if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
					n++
				}
			}
		}
		if n < c.Nodes {
			return false, fmt.Errorf("%d of %d nodes ready", n, c.Nodes)
		}
		// Pods are refused until their namespace has its default
		// ServiceAccount; wait for it in "default" so the first command works.
		_, err = cs.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err == nil, err
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		ok, err := ready()
		if ok {
			return nil
		}
		if err != nil {
			last = err
		}
		select {
		case <-c.exited:
			return errors.New("control plane exited before it was ready")
		case <-ctx.Done():
			return fmt.Errorf("not ready after %s: %v", timeout, last)
		case <-tick.C:
		}
	}
}

// Stop ends the cluster's whole process group: SIGTERM, then SIGKILL if it
// has not exited when ctx is done or after 15 seconds. Its folder is kept.
func (c *Cluster) Stop(ctx context.Context) error {
	if !c.Alive() {
		return nil
	}
	if err := syscall.Kill(-c.PID, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("cluster %s: stop pid %d: %w", c.Name, c.PID, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if c.waitExit(ctx) {
		return nil
	}
	c.kill()
	if !c.waitExit(context.Background()) {
		return fmt.Errorf("cluster %s: pid %d survived SIGKILL", c.Name, c.PID)
	}
	return nil
}

func (c *Cluster) kill() {
	syscall.Kill(-c.PID, syscall.SIGKILL)
	if c.exited != nil {
		<-c.exited
	}
}

// waitExit waits for the process to be gone, or ctx (at most 10s for a
// background context).
func (c *Cluster) waitExit(ctx context.Context) bool {
	if c.exited != nil {
		select {
		case <-c.exited:
			return true
		case <-ctx.Done():
			return false
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for c.Alive() {
		if ctx.Err() != nil || (ctx.Done() == nil && time.Now().After(deadline)) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

// Alive reports whether the recorded process still runs and is this
// cluster's control plane (a recycled PID is not). A zombie counts as gone.
func (c *Cluster) Alive() bool {
	if c.PID <= 0 {
		return false
	}
	if c.exited != nil {
		select {
		case <-c.exited:
			return false
		default:
			return true
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.PID))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	if i := strings.LastIndexByte(string(stat), ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
		return false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", c.PID))
	return err == nil && strings.Contains(string(cmdline), "--cert-dir="+filepath.Join(c.Dir, "pki"))
}
