// Package gitea runs a real Git forge, Gitea, on loopback: for the tests
// of webhooks and pull requests, and for `converge up --forge`. Gitea is
// not a dependency of converge: it is built once from the Go module proxy
// into a cache, by version, under a file lock, as
// ../shared/design/FORGE.md describes.
package gitea

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/gofrs/flock"
)

// Version is the Gitea release converge builds and runs.
const Version = "v1.26.0"

const module = "code.gitea.io/gitea"

// Binary returns the cached Gitea binary, building it first if needed.
// Progress lines go to w every 20s during a build (about 5 minutes on
// two cores).
func Binary(ctx context.Context, w io.Writer) (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	dir := filepath.Join(base, "converge", "gitea-"+Version)
	bin := filepath.Join(dir, "gitea")
	if isFile(bin) {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("gitea cache: %w", err)
	}
	lock := flock.New(filepath.Join(dir, "build.lock"))
	if _, err := lock.TryLockContext(ctx, time.Second); err != nil {
		return "", fmt.Errorf("gitea build lock: %w", err)
	}
	defer lock.Unlock()
	if isFile(bin) {
		return bin, nil
	}
	return bin, build(ctx, dir, bin, w)
}

func build(ctx context.Context, dir, bin string, w io.Writer) error {
	out, err := exec.CommandContext(ctx, "go", "mod", "download", "-json", module+"@"+Version).Output()
	if err != nil {
		return fmt.Errorf("download %s@%s: %w", module, Version, err)
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		return fmt.Errorf("download %s@%s: no module folder in %s", module, Version, out)
	}
	// The module cache is read-only, and Gitea's go.mod has replace
	// directives (so `go install` refuses it): build from a copy.
	src := filepath.Join(dir, "src")
	os.RemoveAll(src)
	if err := exec.CommandContext(ctx, "cp", "-r", mod.Dir, src).Run(); err != nil {
		return fmt.Errorf("copy gitea sources: %w", err)
	}
	if err := exec.CommandContext(ctx, "chmod", "-R", "u+w", src).Run(); err != nil {
		return fmt.Errorf("copy gitea sources: %w", err)
	}
	logPath := filepath.Join(dir, "build.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	tmp := bin + ".tmp"
	cmd := exec.CommandContext(ctx, "go", "build", "-tags", "sqlite sqlite_unlock_notify", "-ldflags", "-s -w", "-o", tmp, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1", "GOWORK=off")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	start := time.Now()
	fmt.Fprintf(w, "forgetest: building Gitea %s for webhook tests; the first build takes about 5 minutes\n", Version)
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(20 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				fmt.Fprintf(w, "converge: still building Gitea, %s elapsed\n", time.Since(start).Round(time.Second))
			}
		}
	}()
	err = cmd.Run()
	close(done)
	if err != nil {
		tail, _ := os.ReadFile(logPath)
		if len(tail) > 3000 {
			tail = tail[len(tail)-3000:]
		}
		return fmt.Errorf("build gitea: %w (log %s)\n%s", err, logPath, tail)
	}
	fmt.Fprintf(w, "converge: built Gitea in %s\n", time.Since(start).Round(time.Second))
	// The sources stay: Gitea's templates and locales are read from them
	// at run time (STATIC_ROOT_PATH).
	return os.Rename(tmp, bin)
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// Server is one running Gitea with an admin user and an access token.
type Server struct {
	// URL is the forge's root, e.g. http://127.0.0.1:41234/.
	URL   string
	User  string
	Token string
	bin   string
	work  string
	ini   string
	web   *exec.Cmd
}

// Options configure Start.
type Options struct {
	// Dir is the forge's work folder (its database and repositories).
	// Required.
	Dir string
	// Port is the HTTP port on 127.0.0.1. If zero, a free one.
	Port int
}

// Start runs bin (see Binary) with a fresh configuration in o.Dir, an
// admin user "converge" and an access token, and waits until it answers.
func Start(ctx context.Context, bin string, o Options) (*Server, error) {
	work, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(work, 0o755); err != nil {
		return nil, err
	}
	port := o.Port
	if port == 0 {
		if port, err = freePort(); err != nil {
			return nil, err
		}
	}
	f := &Server{URL: fmt.Sprintf("http://127.0.0.1:%d/", port), User: "converge", bin: bin, work: work, ini: filepath.Join(work, "app.ini")}
	static := filepath.Join(filepath.Dir(bin), "src")
	ini := fmt.Sprintf(`APP_NAME = converge-test
RUN_MODE = prod
WORK_PATH = %[1]s

[server]
PROTOCOL = http
HTTP_ADDR = 127.0.0.1
HTTP_PORT = %[2]d
ROOT_URL = %[3]s
DISABLE_SSH = true
OFFLINE_MODE = true
APP_DATA_PATH = %[1]s/data
STATIC_ROOT_PATH = %[6]s

[database]
DB_TYPE = sqlite3
PATH = %[1]s/data/gitea.db

[repository]
ROOT = %[1]s/repos
DEFAULT_BRANCH = main

[security]
INSTALL_LOCK = true
SECRET_KEY = %[4]s
INTERNAL_TOKEN = %[5]s

[service]
DISABLE_REGISTRATION = true

[webhook]
ALLOWED_HOST_LIST = loopback
DELIVER_TIMEOUT = 5

[queue]
TYPE = channel

[cache]
ADAPTER = memory

[session]
PROVIDER = memory

[actions]
ENABLED = false

[cron.update_checker]
ENABLED = false

[log]
MODE = file
LEVEL = warn
ROOT_PATH = %[1]s/log
`, work, port, f.URL, randomHex(32), randomHex(48), static)
	if err := os.WriteFile(f.ini, []byte(ini), 0o600); err != nil {
		return nil, err
	}
	if _, err := f.run(ctx, "migrate"); err != nil {
		return nil, err
	}
	pass := randomHex(12)
	if _, err := f.run(ctx, "admin", "user", "create", "--admin", "--username", f.User, "--password", pass, "--email", "converge@example.test", "--must-change-password=false"); err != nil {
		return nil, err
	}
	out, err := f.run(ctx, "admin", "user", "generate-access-token", "--username", f.User, "--scopes", "all", "--raw")
	if err != nil {
		return nil, err
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	f.Token = strings.TrimSpace(lines[len(lines)-1])

	f.web = f.command("web")
	f.web.Stdout, f.web.Stderr = io.Discard, io.Discard
	if err := f.web.Start(); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(f.URL + "api/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return f, nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			f.Stop()
			return nil, fmt.Errorf("gitea not healthy at %s within 60s: %v", f.URL, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop kills the forge.
func (f *Server) Stop() {
	if f.web != nil && f.web.Process != nil {
		f.web.Process.Kill()
		f.web.Wait()
	}
}

func (f *Server) command(args ...string) *exec.Cmd {
	cmd := exec.Command(f.bin, append([]string{"--config", f.ini, "--work-path", f.work}, args...)...)
	cmd.Dir = f.work
	cmd.Env = append(os.Environ(), "GITEA_I_AM_BEING_UNSAFE_RUNNING_AS_ROOT=true", "HOME="+f.work)
	return cmd
}

func (f *Server) run(ctx context.Context, args ...string) (string, error) {
	var out bytes.Buffer
	cmd := f.command(args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("gitea %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String(), nil
}

// API calls the REST API as the admin and decodes the JSON answer into
// out (if not nil). A status of 300 or more is an error.
func (f *Server) API(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		data, _ := json.Marshal(body)
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, f.URL+"api/v1"+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "token "+f.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("gitea %s %s: %s: %s", method, path, resp.Status, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("gitea %s %s: %w", method, path, err)
		}
	}
	return nil
}

// CreateRepo creates a public repository owned by the admin, with main
// as its default branch, and returns its clone URL.
func (f *Server) CreateRepo(ctx context.Context, name string) (string, error) {
	var created struct {
		CloneURL string `json:"clone_url"`
	}
	err := f.API(ctx, "POST", "/user/repos", map[string]any{"name": name, "private": false, "default_branch": "main"}, &created)
	return created.CloneURL, err
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(n int) string {
	b := make([]byte, n/2)
	rand.Read(b)
	return hex.EncodeToString(b)
}
