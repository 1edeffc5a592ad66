package helm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"converge.dev/converge/internal/object"
	"converge.dev/converge/internal/render"
)

// Helm's engine renders each template into a strings.Builder, with no
// hook and no context: a template that repeats a large value can take
// gigabytes before any check of ours runs, and nothing in the process can
// stop it. So a render can run in a child process with a hard limit on
// its memory; going over it kills the child, not the controller.

// ErrRenderLimit is a Helm render that went over Child.MaxMemory or
// Child.MaxOutput.
var ErrRenderLimit = errors.New("helm render went over its limit")

const (
	childEnv       = "CONVERGE_HELM_RENDER_CHILD"
	childMemoryEnv = "CONVERGE_HELM_RENDER_MEMORY"
)

// Child renders charts in a child process.
type Child struct {
	// Command is a binary whose main calls ServeChild first; usually
	// os.Executable(). Required.
	Command string
	// MaxMemory bounds the child's data memory (RLIMIT_DATA: its heap and
	// other private writable mappings), in bytes.
	// Zero means 2 GiB.
	MaxMemory int64
	// MaxOutput bounds what the child sends back: the rendered objects as
	// JSON, in bytes. Zero means 64 MiB, the engine's limit for a unit.
	MaxOutput int64
	// Timeout bounds one render. Zero means two minutes.
	Timeout time.Duration
}

var canServe atomic.Bool

// ServeChild turns this process into a render child when it was started
// as one, and then never returns. Otherwise it notes that this binary can
// serve children, so that DefaultChild returns one. Call it first thing
// in main (or in TestMain of tests that render through a child).
func ServeChild() {
	if os.Getenv(childEnv) == "" {
		canServe.Store(true)
		return
	}
	os.Exit(serve(os.Stdin, os.Stdout))
}

// DefaultChild returns a Child that runs this binary, or nil when main
// did not call ServeChild (renders then run in process). Its memory
// limit is $CONVERGE_HELM_RENDER_MEMORY (bytes) when set, else 2 GiB.
func DefaultChild() *Child {
	if !canServe.Load() {
		return nil
	}
	exe, err := os.Executable()
	if err != nil {
		return nil
	}
	c := &Child{Command: exe}
	if v, err := strconv.ParseInt(os.Getenv(childMemoryEnv), 10, 64); err == nil && v > 0 {
		c.MaxMemory = v
	}
	return c
}

type childRequest struct {
	Root, Dir string
	Options   Options
	// SizeOnly asks for the size of the render, not its objects.
	SizeOnly bool
	// Directory, if set, renders a plain folder (with its Jsonnet files)
	// instead of a chart: Jsonnet, like a template, can build values of
	// any size and has no way to be stopped.
	Directory *render.DirectoryOptions `json:",omitempty"`
}

type childObject struct {
	Object map[string]any `json:"object"`
	Source object.Source  `json:"source"`
}

type childResponse struct {
	Objects []childObject `json:"objects,omitempty"`
	Size    int           `json:"size,omitempty"`
	Error   string        `json:"error,omitempty"`
}

// decoded is the response's objects as the renderers return them.
func (r childResponse) decoded() []object.Decoded {
	out := make([]object.Decoded, 0, len(r.Objects))
	for _, co := range r.Objects {
		out = append(out, object.Decoded{Object: &unstructured.Unstructured{Object: co.Object}, Source: co.Source})
	}
	return out
}

// serve runs in the child: it limits its own memory before
// reading anything, renders, and writes one response. RLIMIT_DATA counts
// the heap the runtime maps, not address space it only reserves, so the
// limit means what it says; what package init mapped already counts.
func serve(in io.Reader, out io.Writer) int {
	if limit, err := strconv.ParseInt(os.Getenv(childMemoryEnv), 10, 64); err == nil && limit > 0 {
		lim := &syscall.Rlimit{Cur: uint64(limit), Max: uint64(limit)}
		if err := syscall.Setrlimit(syscall.RLIMIT_DATA, lim); err != nil {
			fmt.Fprintf(os.Stderr, "set memory limit: %v\n", err)
			return 2
		}
	}
	var req childRequest
	if err := json.NewDecoder(in).Decode(&req); err != nil {
		fmt.Fprintf(os.Stderr, "read request: %v\n", err)
		return 2
	}
	var resp childResponse
	var objs []object.Decoded
	var err error
	if req.Directory != nil {
		objs, err = render.RenderDirectory(req.Root, req.Dir, *req.Directory)
	} else {
		objs, err = Render(req.Root, req.Dir, req.Options)
	}
	if err != nil {
		resp.Error = err.Error()
	}
	for _, d := range objs {
		if req.SizeOnly {
			data, _ := d.Object.MarshalJSON()
			resp.Size += len(data)
			continue
		}
		resp.Objects = append(resp.Objects, childObject{Object: d.Object.Object, Source: d.Source})
	}
	if err := json.NewEncoder(out).Encode(resp); err != nil {
		fmt.Fprintf(os.Stderr, "write response: %v\n", err)
		return 2
	}
	return 0
}

// Render renders the chart in dir, as the package's Render does, in a
// child process. Over MaxMemory or MaxOutput, it returns ErrRenderLimit.
func (c *Child) Render(ctx context.Context, root, dir string, o Options) ([]object.Decoded, error) {
	// The tree is checked here too, so that its errors keep their type.
	if err := render.CheckTree(root, dir, o.MaxFileSize); err != nil {
		return nil, err
	}
	resp, err := c.run(ctx, childRequest{Root: root, Dir: dir, Options: o}, relName(root, dir))
	if err != nil {
		return nil, err
	}
	return resp.decoded(), nil
}

// RenderDirectory renders a plain folder, as render.RenderDirectory
// does, in a child process, for folders whose Jsonnet files are
// evaluated. o.Exclude and o.Subfolder (functions) cannot cross to the
// child and must be nil.
func (c *Child) RenderDirectory(ctx context.Context, root, dir string, o render.DirectoryOptions) ([]object.Decoded, error) {
	if o.Exclude != nil || o.Subfolder != nil {
		return nil, fmt.Errorf("%s: a render child cannot take an Exclude or Subfolder function", relName(root, dir))
	}
	if err := render.CheckTree(root, dir, o.MaxFileSize); err != nil {
		return nil, err
	}
	resp, err := c.run(ctx, childRequest{Root: root, Dir: dir, Directory: &o}, relName(root, dir))
	if err != nil {
		return nil, err
	}
	return resp.decoded(), nil
}

// Check renders a loaded chart with vals in a child, client-side, and
// fails only when the render goes over the child's limits. Helm
// releases are installed in process by Helm's own actions; this guards
// them. Template errors are left for the install to report, since a
// client-side render cannot answer lookups and may fail where the
// install would not.
func (c *Child) Check(ctx context.Context, chrt *chart.Chart, vals map[string]any, o Options) error {
	dir, err := os.MkdirTemp("", "converge-helm-check-")
	if err != nil {
		return fmt.Errorf("chart %s: %w", chrt.Name(), err)
	}
	defer os.RemoveAll(dir)
	archive, err := chartutil.Save(chrt, dir)
	if err != nil {
		return fmt.Errorf("chart %s: save for the render check: %w", chrt.Name(), err)
	}
	// The chart was loaded already; only the render is in question.
	o.ValueFiles, o.Values, o.MaxFileSize = nil, vals, 1<<40
	name := "chart " + chrt.Name()
	_, err = c.run(ctx, childRequest{Root: dir, Dir: archive, Options: o, SizeOnly: true}, name)
	return err
}

// run starts the child, sends req and reads one response, killing the
// child when it sends more than MaxOutput.
func (c *Child) run(ctx context.Context, req childRequest, name string) (childResponse, error) {
	maxMemory, maxOutput, timeout := c.MaxMemory, c.MaxOutput, c.Timeout
	if maxMemory == 0 {
		maxMemory = 2 << 30
	}
	if maxOutput == 0 {
		maxOutput = 64 << 20
	}
	if timeout == 0 {
		timeout = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	step := "helm template"
	if req.Directory != nil {
		step = "render"
	}
	name += ": " + step
	in, err := json.Marshal(req)
	if err != nil {
		return childResponse{}, fmt.Errorf("%s: %w", name, err)
	}
	cmd := exec.CommandContext(ctx, c.Command)
	cmd.Env = append(os.Environ(), childEnv+"=1", childMemoryEnv+"="+strconv.FormatInt(maxMemory, 10))
	cmd.Stdin = bytes.NewReader(in)
	var stderr head
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return childResponse{}, fmt.Errorf("%s: %w", name, err)
	}
	if err := cmd.Start(); err != nil {
		return childResponse{}, fmt.Errorf("%s: start the render process: %w", name, err)
	}
	data, rerr := io.ReadAll(io.LimitReader(stdout, maxOutput+1))
	if int64(len(data)) > maxOutput {
		cmd.Process.Kill()
		cmd.Wait()
		return childResponse{}, fmt.Errorf("%s: %w: the rendered objects are more than %d bytes", name, ErrRenderLimit, maxOutput)
	}
	werr := cmd.Wait()
	switch {
	case ctx.Err() != nil:
		return childResponse{}, fmt.Errorf("%s: %w", name, ctx.Err())
	case werr != nil && outOfMemory(stderr.String()):
		return childResponse{}, fmt.Errorf("%s: %w: it needed more than %d MiB of memory", name, ErrRenderLimit, maxMemory>>20)
	case werr != nil:
		return childResponse{}, fmt.Errorf("%s: render process: %w: %s", name, werr, stderr.firstLine())
	case rerr != nil:
		return childResponse{}, fmt.Errorf("%s: read the render: %w", name, rerr)
	}
	var resp childResponse
	if err := json.Unmarshal(data, &resp); err != nil {
		return childResponse{}, fmt.Errorf("%s: read the render: %w", name, err)
	}
	if resp.Error != "" {
		if req.SizeOnly {
			return resp, nil
		}
		return childResponse{}, errors.New(resp.Error)
	}
	return resp, nil
}

// outOfMemory reads the Go runtime's dying words: the heap could not
// grow, or a thread stack could not be mapped, under the limit. A stack
// mapped by cgo's pthread_create fails with EAGAIN rather than ENOMEM
// ("pthread_create failed: Resource temporarily unavailable"), which a
// CI run met once when the heap was near the limit.
func outOfMemory(stderr string) bool {
	return strings.Contains(stderr, "out of memory") || strings.Contains(stderr, "cannot allocate memory") ||
		strings.Contains(stderr, "pthread_create failed")
}

func relName(root, dir string) string {
	rel, err := filepath.Rel(root, dir)
	if err != nil {
		return dir
	}
	return filepath.ToSlash(rel)
}

// head keeps the first 4 KiB of a child's standard error: enough for the
// runtime's "fatal error" line, without keeping a whole stack dump.
type head struct{ buf bytes.Buffer }

func (t *head) Write(p []byte) (int, error) {
	if room := 4096 - t.buf.Len(); room > 0 {
		t.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (t *head) String() string { return t.buf.String() }

// firstLine is the first line of the child's error output.
func (t *head) firstLine() string {
	line, _, _ := strings.Cut(strings.TrimSpace(t.buf.String()), "\n")
	return line
}
