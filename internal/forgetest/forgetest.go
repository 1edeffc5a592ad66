// Package forgetest runs a real Git forge, Gitea, on loopback for tests
// of webhooks and pull requests (package gitea builds and runs it), with
// helpers to create repositories, push, protect branches and review.
package forgetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"converge.dev/converge/internal/gitea"
)

// Binary returns the cached Gitea binary, building it first if needed.
func Binary(ctx context.Context, w io.Writer) (string, error) { return gitea.Binary(ctx, w) }

// Forge is one running Gitea with an admin user and an access token.
type Forge struct {
	// URL is the forge's root, e.g. http://127.0.0.1:41234/.
	URL    string
	User   string
	Token  string
	server *gitea.Server
}

// Start runs a Gitea for the test and stops it in cleanup.
func Start(t testing.TB) *Forge {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	bin, err := gitea.Binary(ctx, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	s, err := gitea.Start(ctx, bin, gitea.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return &Forge{URL: s.URL, User: s.User, Token: s.Token, server: s}
}

// API calls the REST API as the admin and decodes the JSON answer into
// out (if not nil). A status of 300 or more fails the test.
func (f *Forge) API(t testing.TB, method, path string, body, out any) {
	t.Helper()
	s := f.server
	if s == nil || s.Token != f.Token {
		// Another user's view of the same forge (Approve).
		s = &gitea.Server{URL: f.URL, User: f.User, Token: f.Token}
	}
	if err := s.API(context.Background(), method, path, body, out); err != nil {
		t.Fatal(err)
	}
}

// Repo is a forge repository with a local clone to commit and push from.
type Repo struct {
	f *Forge
	t testing.TB
	// CloneURL is the repository's public HTTP URL.
	CloneURL string
	// Owner is the user or organization owning it.
	Owner  string
	Name   string
	dir    string
	pushed bool
}

// CreateRepo creates a public repository owned by the admin.
func (f *Forge) CreateRepo(t testing.TB, name string) *Repo {
	t.Helper()
	var created struct {
		CloneURL string `json:"clone_url"`
	}
	f.API(t, "POST", "/user/repos", map[string]any{"name": name, "private": false, "default_branch": "main"}, &created)
	return f.clone(t, f.User, name, created.CloneURL)
}

// CreateOrgRepo creates a public repository owned by organization org,
// creating the organization (the admin owns it) the first time.
func (f *Forge) CreateOrgRepo(t testing.TB, org, name string) *Repo {
	t.Helper()
	var found []struct {
		Name string `json:"name"`
	}
	f.API(t, "GET", "/user/orgs", nil, &found)
	exists := false
	for _, o := range found {
		exists = exists || o.Name == org
	}
	if !exists {
		f.API(t, "POST", "/orgs", map[string]any{"username": org, "visibility": "public"}, nil)
	}
	var created struct {
		CloneURL string `json:"clone_url"`
	}
	f.API(t, "POST", "/orgs/"+org+"/repos", map[string]any{"name": name, "private": false, "default_branch": "main"}, &created)
	return f.clone(t, org, name, created.CloneURL)
}

func (f *Forge) clone(t testing.TB, owner, name, cloneURL string) *Repo {
	t.Helper()
	dir := t.TempDir()
	r := &Repo{f: f, t: t, CloneURL: cloneURL, Owner: owner, Name: name, dir: dir}
	r.git("init", "-q", "-b", "main")
	r.git("config", "user.email", "test@converge.dev")
	r.git("config", "user.name", "test")
	return r
}

// AddPushHook makes the forge deliver push events to url, signed with
// secret (X-Gitea-Signature).
func (r *Repo) AddPushHook(url, secret string) {
	r.t.Helper()
	r.f.API(r.t, "POST", "/repos/"+r.Owner+"/"+r.Name+"/hooks", map[string]any{
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
	r.f.WaitBranch(r.t, r.Owner+"/"+r.Name, "main", head)
	return head
}

// WaitBranch waits until the forge has recorded that branch of repo
// (the admin's, or owner/repo)
// points at commit: Gitea updates its records a moment after a push
// returns, and until then its API answers as before the push (an empty
// repository's pull requests are "not found").
func (f *Forge) WaitBranch(t testing.TB, repo, branch, commit string) {
	t.Helper()
	if !strings.Contains(repo, "/") {
		repo = f.User + "/" + repo
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		req, _ := http.NewRequest("GET", f.URL+"api/v1/repos/"+repo+"/branches/"+branch, nil)
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

func randomHex(n int) string {
	b := make([]byte, n/2)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// User is a second forge user, for reviews by someone other than the
// author.
type User struct {
	Name, Token string
	// Password logs in to the web UI (single sign-on tests).
	Password string
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
	return User{Name: name, Token: tok.SHA1, Password: password}
}

// AddWriter gives user write access to the repository, so that their
// approval counts toward branch protection.
func (r *Repo) AddWriter(u User) {
	r.t.Helper()
	r.f.API(r.t, "PUT", "/repos/"+r.Owner+"/"+r.Name+"/collaborators/"+u.Name, map[string]any{"permission": "write"}, nil)
}

// Protect protects branch: merges need every status context to
// succeed and approvals approving reviews. Pushes stay allowed, as CI
// pushes to the first stage.
func (r *Repo) Protect(branch string, contexts []string, approvals int) {
	r.t.Helper()
	r.f.API(r.t, "POST", "/repos/"+r.Owner+"/"+r.Name+"/branch_protections", map[string]any{
		"rule_name": branch, "enable_status_check": len(contexts) > 0, "status_check_contexts": contexts,
		"required_approvals": approvals, "enable_push": true,
	}, nil)
}

// Approve approves pull request number as u.
func (r *Repo) Approve(u User, number int) {
	r.t.Helper()
	as := &Forge{URL: r.f.URL, User: u.Name, Token: u.Token}
	as.API(r.t, "POST", fmt.Sprintf("/repos/%s/%s/pulls/%d/reviews", r.Owner, r.Name, number), map[string]any{"event": "APPROVED", "body": "looks right"}, nil)
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
	r.f.WaitBranch(r.t, r.Owner+"/"+r.Name, branch, head)
	return head
}
