// Package forgetest runs a real Git forge, Gitea, on loopback for tests
// of webhooks and pull requests. Gitea is not a dependency of converge:
// it is built once from the Go module proxy into a cache, by version,
// under a file lock, as ../shared/design/FORGE.md describes.
package forgetest

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
	"testing"
	"time"

	"github.com/gofrs/flock"
)

// Version is the Gitea release the tests run.
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
				fmt.Fprintf(w, "forgetest: still building Gitea, %s elapsed\n", time.Since(start).Round(time.Second))
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
	fmt.Fprintf(w, "forgetest: built Gitea in %s\n", time.Since(start).Round(time.Second))
	// The sources stay: Gitea's templates and locales are read from them
	// at run time (STATIC_ROOT_PATH).
	return os.Rename(tmp, bin)
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// Forge is one running Gitea with an admin user and an access token.
type Forge struct {
	// URL is the forge's root, e.g. http://127.0.0.1:41234/.
	URL   string
	User  string
	Token string
	bin   string
	work  string
	ini   string
}

// Start runs a Gitea for the test and stops it in cleanup.
func Start(t testing.TB) *Forge {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	bin, err := Binary(ctx, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	work, err := filepath.Abs(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	f := &Forge{URL: fmt.Sprintf("http://127.0.0.1:%d/", port), User: "converge", bin: bin, work: work, ini: filepath.Join(work, "app.ini")}
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
		t.Fatal(err)
	}
	f.run(t, "migrate")
	pass := randomHex(12)
	f.run(t, "admin", "user", "create", "--admin", "--username", f.User, "--password", pass, "--email", "converge@example.test", "--must-change-password=false")
	out := f.run(t, "admin", "user", "generate-access-token", "--username", f.User, "--scopes", "all", "--raw")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	f.Token = strings.TrimSpace(lines[len(lines)-1])

	web := f.command("web")
	web.Stdout, web.Stderr = io.Discard, io.Discard
	if err := web.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		web.Process.Kill()
		web.Wait()
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(f.URL + "api/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("gitea not healthy at %s within 60s: %v", f.URL, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return f
}

func (f *Forge) command(args ...string) *exec.Cmd {
	cmd := exec.Command(f.bin, append([]string{"--config", f.ini, "--work-path", f.work}, args...)...)
	cmd.Dir = f.work
	cmd.Env = append(os.Environ(), "GITEA_I_AM_BEING_UNSAFE_RUNNING_AS_ROOT=true", "HOME="+f.work)
	return cmd
}

func (f *Forge) run(t testing.TB, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	cmd := f.command(args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("gitea %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

// API calls the REST API as the admin and decodes the JSON answer into
// out (if not nil). A status of 300 or more fails the test.
func (f *Forge) API(t testing.TB, method, path string, body, out any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		data, _ := json.Marshal(body)
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, f.URL+"api/v1"+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "token "+f.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		t.Fatalf("gitea %s %s: %s: %s", method, path, resp.Status, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("gitea %s %s: %v", method, path, err)
		}
	}
}

// Repo is a forge repository with a local clone to commit and push from.
type Repo struct {
	f *Forge
	t testing.TB
	// CloneURL is the repository's public HTTP URL.
	CloneURL string
	Name     string
	dir      string
	pushed   bool
}

// CreateRepo creates a public repository owned by the admin.
func (f *Forge) CreateRepo(t testing.TB, name string) *Repo {
	t.Helper()
	var created struct {
		CloneURL string `json:"clone_url"`
	}
	f.API(t, "POST", "/user/repos", map[string]any{"name": name, "private": false, "default_branch": "main"}, &created)
	dir := t.TempDir()
	r := &Repo{f: f, t: t, CloneURL: created.CloneURL, Name: name, dir: dir}
	r.git("init", "-q", "-b", "main")
	r.git("config", "user.email", "test@converge.dev")
	r.git("config", "user.name", "test")
	return r
}

// AddPushHook makes the forge deliver push events to url, signed with
// secret (X-Gitea-Signature).
func (r *Repo) AddPushHook(url, secret string) {
	r.t.Helper()
	r.f.API(r.t, "POST", "/repos/"+r.f.User+"/"+r.Name+"/hooks", map[string]any{
		"type": "gitea", "active": true, "events": []string{"push"},
		"config": map[string]string{"url": url, "content_type": "json", "secret": secret},
	}, nil)
}

// Push writes files (empty content deletes), commits, and pushes main
// with git over HTTP. It returns the new commit.
func (r *Repo) Push(msg string, files map[string]string) string {
	r.t.Helper()
	for name, content := range files {
		p := filepath.Join(r.dir, name)
		if content == "" {
			os.Remove(p)
			continue
		}
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
	r.git("add", "-A")
	r.git("commit", "-q", "--allow-empty", "-m", msg)
	remote := strings.Replace(r.CloneURL, "http://", "http://"+r.f.User+":"+r.f.Token+"@", 1)
	if r.pushed {
		// The forge's main may have moved (a merged pull request): put
		// this commit on top of it, as CI would.
		r.git("pull", "-q", "--rebase", remote, "main")
	}
	r.git("push", "-q", remote, "main")
	r.pushed = true
	head := strings.TrimSpace(r.git("rev-parse", "HEAD"))
	r.f.WaitBranch(r.t, r.Name, "main", head)
	return head
}

// WaitBranch waits until the forge has recorded that branch of repo
// points at commit: Gitea updates its records a moment after a push
// returns, and until then its API answers as before the push (an empty
// repository's pull requests are "not found").
func (f *Forge) WaitBranch(t testing.TB, repo, branch, commit string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		req, _ := http.NewRequest("GET", f.URL+"api/v1/repos/"+f.User+"/"+repo+"/branches/"+branch, nil)
		req.Header.Set("Authorization", "token "+f.Token)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			var b struct {
				Commit struct {
					ID string `json:"id"`
				} `json:"commit"`
			}
			json.NewDecoder(resp.Body).Decode(&b)
			resp.Body.Close()
			if b.Commit.ID == commit {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("gitea did not record %s/%s at %s within 20s", repo, branch, commit)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (r *Repo) git(args ...string) string {
	r.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = r.dir
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		// The token is in the push URL: never print it.
		t := strings.ReplaceAll(string(out), r.f.Token, "***")
		r.t.Fatalf("git %s: %v\n%s", args[0], err, t)
	}
	return string(out)
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func randomHex(n int) string {
	b := make([]byte, n/2)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// User is a second forge user, for reviews by someone other than the
// author.
type User struct {
	Name, Token string
}

// CreateUser creates a user and an access token for them.
func (f *Forge) CreateUser(t testing.TB, name string) User {
	t.Helper()
	password := randomHex(12)
	f.API(t, "POST", "/admin/users", map[string]any{"username": name, "email": name + "@converge.dev", "password": password,
		"must_change_password": false}, nil)
	req, _ := http.NewRequest("POST", f.URL+"api/v1/users/"+name+"/tokens",
		strings.NewReader(`{"name":"test","scopes":["all"]}`))
	req.SetBasicAuth(name, password)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		SHA1 string `json:"sha1"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || tok.SHA1 == "" {
		t.Fatalf("token for %s: %s %v", name, resp.Status, err)
	}
	return User{Name: name, Token: tok.SHA1}
}

// AddWriter gives user write access to the repository, so that their
// approval counts toward branch protection.
func (r *Repo) AddWriter(u User) {
	r.t.Helper()
	r.f.API(r.t, "PUT", "/repos/"+r.f.User+"/"+r.Name+"/collaborators/"+u.Name, map[string]any{"permission": "write"}, nil)
}

// Protect protects branch: merges need every status context to
// succeed and approvals approving reviews. Pushes stay allowed, as CI
// pushes to the first stage.
func (r *Repo) Protect(branch string, contexts []string, approvals int) {
	r.t.Helper()
	r.f.API(r.t, "POST", "/repos/"+r.f.User+"/"+r.Name+"/branch_protections", map[string]any{
		"rule_name": branch, "enable_status_check": len(contexts) > 0, "status_check_contexts": contexts,
		"required_approvals": approvals, "enable_push": true,
	}, nil)
}

// Approve approves pull request number as u.
func (r *Repo) Approve(u User, number int) {
	r.t.Helper()
	as := &Forge{URL: r.f.URL, User: u.Name, Token: u.Token}
	as.API(r.t, "POST", fmt.Sprintf("/repos/%s/%s/pulls/%d/reviews", r.f.User, r.Name, number), map[string]any{"event": "APPROVED", "body": "looks right"}, nil)
}

// PushBranch commits files on top of branch as the forge has it (a person
// pushing to a pull request's branch) and returns the new commit.
func (r *Repo) PushBranch(branch, msg string, files map[string]string) string {
	r.t.Helper()
	remote := strings.Replace(r.CloneURL, "http://", "http://"+r.f.User+":"+r.f.Token+"@", 1)
	r.git("fetch", "-q", remote, "+refs/heads/"+branch+":refs/heads/"+branch)
	r.git("checkout", "-q", branch)
	defer r.git("checkout", "-q", "main")
	for name, content := range files {
		p := filepath.Join(r.dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
	r.git("add", "-A")
	r.git("commit", "-q", "-m", msg)
	r.git("push", "-q", remote, branch)
	head := strings.TrimSpace(r.git("rev-parse", "HEAD"))
	r.f.WaitBranch(r.t, r.Name, branch, head)
	return head
}
