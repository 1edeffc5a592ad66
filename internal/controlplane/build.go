package controlplane

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/gofrs/flock"
)

// BinaryName is the file name of the built control plane.
const BinaryName = "kube-controlplane"

// Options say where the sources are and where the binary goes.
type Options struct {
	// SourceDir is the nested module's folder. If empty, Locate finds it.
	SourceDir string
	// CacheDir holds built binaries, one folder per source hash. If empty,
	// it is converge/controlplane under the user's cache folder.
	CacheDir string
	// Progress receives one line when a build starts, one every
	// ProgressEvery while it runs, and one when it ends. If nil, nothing
	// is written.
	Progress io.Writer
	// ProgressEvery is the interval between progress lines. If zero, 20s.
	ProgressEvery time.Duration
}

// BuildError is a failed `go build`, with the tail of its log.
type BuildError struct {
	Log  string // path of the full build log
	Tail string // its last lines
	Err  error
}

func (e *BuildError) Error() string {
	return fmt.Sprintf("build control plane: %v (full log: %s)\n%s", e.Err, e.Log, e.Tail)
}

func (e *BuildError) Unwrap() error { return e.Err }

// Ensure returns the path of a binary built from the current sources,
// building it first if no cached one matches.
func Ensure(ctx context.Context, o Options) (string, error) {
	src := o.SourceDir
	if src == "" {
		var err error
		if src, err = Locate(); err != nil {
			return "", err
		}
	} else if err := checkModule(src); err != nil {
		return "", fmt.Errorf("control-plane source %s: %w", src, err)
	}
	cache := o.CacheDir
	if cache == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("control-plane cache: %w", err)
		}
		cache = filepath.Join(base, "converge", "controlplane")
	}
	hash, err := sourceHash(src)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, hash)
	bin := filepath.Join(dir, BinaryName)
	if isFile(bin) {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("control-plane cache: %w", err)
	}

	lock := flock.New(filepath.Join(dir, "build.lock"))
	locked, err := lock.TryLock()
	if err != nil {
		return "", fmt.Errorf("lock %s: %w", lock.Path(), err)
	}
	if !locked {
		progress(o.Progress, "converge: another process is building the control plane; waiting for it\n")
		if _, err := lock.TryLockContext(ctx, 500*time.Millisecond); err != nil {
			return "", fmt.Errorf("wait for control-plane build lock: %w", err)
		}
	}
	defer lock.Unlock()
	if isFile(bin) { // built while we waited
		return bin, nil
	}
	return bin, build(ctx, src, bin, o)
}

func build(ctx context.Context, src, bin string, o Options) error {
	logPath := bin + ".build.log"
	logFile, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("build log: %w", err)
	}
	defer logFile.Close()

	tmp := bin + ".tmp"
	cmd := exec.CommandContext(ctx, "go", "build", "-ldflags", ldflags, "-o", tmp, ".")
	cmd.Dir = src
	// The product's tests compile client-go and friends with these same
	// settings, so the control plane reuses their build cache. Changing
	// compile flags here would double a 3.6 GB cache.
	cmd.Env = append(os.Environ(), "GOFLAGS=-buildvcs=false", "GOWORK=off")
	cmd.Stdout, cmd.Stderr = logFile, logFile

	start := time.Now()
	progress(o.Progress, "converge: building the Kubernetes control plane (%s); the first build takes about 7 minutes\n", KubeVersion)
	every := o.ProgressEvery
	if every == 0 {
		every = 20 * time.Second
	}
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				progress(o.Progress, "converge: still building the control plane, %s elapsed\n", time.Since(start).Round(time.Second))
			}
		}
	}()
	err = cmd.Run()
	close(done)
	if err != nil {
		os.Remove(tmp)
		return &BuildError{Log: logPath, Tail: Tail(logPath, 30), Err: err}
	}
	if err := os.Rename(tmp, bin); err != nil {
		return fmt.Errorf("install control plane: %w", err)
	}
	progress(o.Progress, "converge: built the control plane in %s\n", time.Since(start).Round(time.Second))
	return nil
}

func progress(w io.Writer, format string, args ...any) {
	if w != nil {
		fmt.Fprintf(w, format, args...)
	}
}

func isFile(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular()
}

// Tail returns the last n lines of a file, for error messages that show
// a log.
func Tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.TrimRight(string(bytes.Join(lines, []byte("\n"))), "\n")
}
