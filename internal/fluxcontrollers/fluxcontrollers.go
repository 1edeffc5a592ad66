// Package fluxcontrollers builds and runs Flux's own source-controller
// and kustomize-controller, so that converge can be measured side by
// side with them on the same cluster. Flux is not a dependency of
// converge: each controller is built once from the Go module proxy at a
// pinned version into a cache, under a file lock, as forgetest builds
// Gitea.
package fluxcontrollers

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/gofrs/flock"
)

// Controller is one Flux controller at a pinned version.
type Controller struct {
	// Name is the module's last element and the binary's name.
	Name    string
	Version string
}

// The versions measured against. Both build with Go 1.26; the v1.10
// releases need Go 1.27. source-controller v1.9.1 and later need
// github.com/fluxcd/pkg/artifact versions that the module proxy here
// does not serve, so it stays at v1.9.0, the release kustomize-controller
// v1.9.6 itself was built against (its go.mod requires
// source-controller/api v1.9.0).
var (
	SourceController    = Controller{Name: "source-controller", Version: "v1.9.0"}
	KustomizeController = Controller{Name: "kustomize-controller", Version: "v1.9.6"}
)

func (c Controller) module() string { return "github.com/fluxcd/" + c.Name }

// Binary returns the controller's cached binary, building it first if
// needed (a few minutes on two cores). Progress goes to w.
func (c Controller) Binary(ctx context.Context, w io.Writer) (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	dir := filepath.Join(base, "converge", "flux", c.Name+"-"+c.Version)
	bin := filepath.Join(dir, c.Name)
	if isFile(bin) {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("%s cache: %w", c.Name, err)
	}
	lock := flock.New(filepath.Join(dir, "build.lock"))
	if _, err := lock.TryLockContext(ctx, time.Second); err != nil {
		return "", fmt.Errorf("%s build lock: %w", c.Name, err)
	}
	defer lock.Unlock()
	if isFile(bin) {
		return bin, nil
	}
	return bin, c.build(ctx, dir, bin, w)
}

// sources returns the module's folder in the module cache, downloading
// it if needed.
func (c Controller) sources(ctx context.Context) (string, error) {
	at := c.module() + "@" + c.Version
	out, err := exec.CommandContext(ctx, "go", "mod", "download", "-json", at).Output()
	if err != nil {
		return "", fmt.Errorf("download %s: %w", at, err)
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		return "", fmt.Errorf("download %s: no module folder in %s", at, out)
	}
	return mod.Dir, nil
}

// CRDs returns the two controllers' own CustomResourceDefinitions, as
// their releases install them (with Flux's schema defaults, which the
// controllers rely on), one file's bytes each.
func CRDs(ctx context.Context) ([][]byte, error) {
	var out [][]byte
	for _, c := range []Controller{SourceController, KustomizeController} {
		dir, err := c.sources(ctx)
		if err != nil {
			return nil, err
		}
		files, err := filepath.Glob(filepath.Join(dir, "config", "crd", "bases", "*.yaml"))
		if err != nil || len(files) == 0 {
			return nil, fmt.Errorf("%s CRDs: none under config/crd/bases (%v)", c.Name, err)
		}
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("%s CRDs: %w", c.Name, err)
			}
			out = append(out, data)
		}
	}
	return out, nil
}

func (c Controller) build(ctx context.Context, dir, bin string, w io.Writer) error {
	at := c.module() + "@" + c.Version
	modDir, err := c.sources(ctx)
	if err != nil {
		return err
	}
	// The module cache is read-only, and the go.mod replaces the api
	// module with ./api, a nested module that the module's zip leaves
	// out: build from a copy that takes the api module from the proxy
	// at the version it requires.
	src := filepath.Join(dir, "src")
	os.RemoveAll(src)
	for _, args := range [][]string{{"cp", "-r", modDir, src}, {"chmod", "-R", "u+w", src}} {
		if out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("copy %s sources: %w: %s", c.Name, err, out)
		}
	}
	env := append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod", "CGO_ENABLED=0")
	edit := exec.CommandContext(ctx, "go", "mod", "edit", "-dropreplace", c.module()+"/api")
	edit.Dir, edit.Env = src, env
	if out, err := edit.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: go mod edit: %w: %s", c.Name, err, out)
	}
	logPath := filepath.Join(dir, "build.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	tmp := bin + ".tmp"
	cmd := exec.CommandContext(ctx, "go", "build", "-ldflags", "-s -w", "-o", tmp, ".")
	cmd.Dir, cmd.Env = src, env
	cmd.Stdout, cmd.Stderr = logFile, logFile
	start := time.Now()
	fmt.Fprintf(w, "fluxcontrollers: building %s; the first build takes a few minutes\n", at)
	if err := cmd.Run(); err != nil {
		tail, _ := os.ReadFile(logPath)
		if len(tail) > 3000 {
			tail = tail[len(tail)-3000:]
		}
		return fmt.Errorf("build %s: %w (log %s)\n%s", at, err, logPath, tail)
	}
	fmt.Fprintf(w, "fluxcontrollers: built %s in %s\n", at, time.Since(start).Round(time.Second))
	os.RemoveAll(src)
	return os.Rename(tmp, bin)
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// Options configure Start.
type Options struct {
	// Kubeconfig is the cluster's admin kubeconfig. Required.
	Kubeconfig string
	// Dir holds the source-controller's artifacts and the logs. Required.
	Dir string
	// Concurrent is kustomize-controller's --concurrent. If zero, 4
	// (Flux's default).
	Concurrent int
	// Log receives both controllers' output. If nil, it is dropped.
	Log io.Writer
}

// Running is a started pair of controllers.
type Running struct {
	Source, Kustomize *exec.Cmd
}

// Start runs source-controller and kustomize-controller against the
// cluster, watching all namespaces, without leader election. Both
// binaries must be built (Binary). Stop ends them.
func Start(ctx context.Context, o Options) (*Running, error) {
	if o.Concurrent == 0 {
		o.Concurrent = 4
	}
	srcBin, err := SourceController.Binary(ctx, io.Discard)
	if err != nil {
		return nil, err
	}
	ksBin, err := KustomizeController.Binary(ctx, io.Discard)
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(5)
	if err != nil {
		return nil, err
	}
	addr := func(i int) string { return "127.0.0.1:" + strconv.Itoa(ports[i]) }
	storage := filepath.Join(o.Dir, "artifacts")
	if err := os.MkdirAll(storage, 0o755); err != nil {
		return nil, err
	}
	env := append(os.Environ(), "KUBECONFIG="+o.Kubeconfig, "RUNTIME_NAMESPACE=flux-system")
	log := o.Log
	if log == nil {
		log = io.Discard
	}
	src := exec.Command(srcBin, "--storage-path="+storage, "--storage-addr="+addr(0), "--storage-adv-addr="+addr(0),
		"--metrics-addr="+addr(1), "--health-addr="+addr(2), "--enable-leader-election=false", "--log-level=error")
	ks := exec.Command(ksBin, "--concurrent="+strconv.Itoa(o.Concurrent),
		"--metrics-addr="+addr(3), "--health-addr="+addr(4), "--enable-leader-election=false", "--log-level=error")
	r := &Running{Source: src, Kustomize: ks}
	for _, cmd := range []*exec.Cmd{src, ks} {
		cmd.Env, cmd.Stdout, cmd.Stderr = env, log, log
		if err := cmd.Start(); err != nil {
			r.Stop()
			return nil, fmt.Errorf("start %s: %w", cmd.Path, err)
		}
	}
	return r, nil
}

// Stop kills both controllers and waits for them.
func (r *Running) Stop() {
	for _, cmd := range []*exec.Cmd{r.Source, r.Kustomize} {
		if cmd != nil && cmd.Process != nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}
}

func freePorts(n int) ([]int, error) {
	var out []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}
