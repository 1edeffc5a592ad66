// Package webhook reads push events from Git forges (GitHub, GitLab and
// Gitea), verifies them, and decides which sources a push affects. It is
// pure: the controller owns the HTTP server and the refreshes.
package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Secrets verify deliveries, one per forge. A forge with no secret is
// refused: an unverified push could make the controller poll a
// repository at anyone's request, and converge does not take that risk
// by default (Argo CD accepts unsigned events when no secret is set).
type Secrets struct {
	// GitHub is the HMAC key of X-Hub-Signature-256.
	GitHub string
	// GitLab is the token GitLab sends in X-Gitlab-Token.
	GitLab string
	// Gitea is the HMAC key of X-Gitea-Signature (also Gogs and Forgejo).
	Gitea string
}

// Push is one verified push.
type Push struct {
	// Forge is github, gitlab or gitea.
	Forge string
	// RepoURLs are the repository's URLs as the forge gives them (web,
	// HTTPS clone, SSH).
	RepoURLs []string
	// Ref is the full ref pushed, e.g. refs/heads/main or refs/tags/v1.
	Ref string
	// After is the commit the ref points to now.
	After string
	// DefaultBranch is the repository's default branch, if the forge says.
	DefaultBranch string
	// Changed are the files the pushed commits added, modified or removed.
	// Nil when the forge did not list them (treat as "anything changed").
	Changed []string
}

// Errors Parse returns. Callers answer 401 for ErrUnverified, 202 for
// ErrIgnored, 400 otherwise.
var (
	ErrUnverified = errors.New("webhook: delivery not verified")
	ErrIgnored    = errors.New("webhook: not a push event")
)

// MaxBody bounds a delivery; GitHub caps payloads at 25 MB.
const MaxBody = 25 << 20

// Parse reads and verifies one delivery.
func Parse(r *http.Request, s Secrets) (Push, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxBody+1))
	if err != nil {
		return Push{}, fmt.Errorf("webhook: read body: %w", err)
	}
	if len(body) > MaxBody {
		return Push{}, fmt.Errorf("webhook: body larger than %d bytes", MaxBody)
	}
	h := r.Header
	switch {
	case h.Get("X-Gitea-Event") != "" || h.Get("X-Gogs-Event") != "":
		// Gitea also sends X-GitHub-Event for compatibility; its own
		// header is checked first so its own signature is used.
		sig := h.Get("X-Gitea-Signature")
		if sig == "" {
			sig = h.Get("X-Gogs-Signature")
		}
		if !hmacOK(s.Gitea, body, sig, "") {
			return Push{}, fmt.Errorf("%w: gitea: bad or missing X-Gitea-Signature", ErrUnverified)
		}
		ev := h.Get("X-Gitea-Event")
		if ev == "" {
			ev = h.Get("X-Gogs-Event")
		}
		if ev != "push" {
			return Push{}, fmt.Errorf("%w: gitea event %q", ErrIgnored, ev)
		}
		return parseGitHubLike("gitea", body)
	case h.Get("X-GitHub-Event") != "":
		if !hmacOK(s.GitHub, body, h.Get("X-Hub-Signature-256"), "sha256=") {
			return Push{}, fmt.Errorf("%w: github: bad or missing X-Hub-Signature-256", ErrUnverified)
		}
		if ev := h.Get("X-GitHub-Event"); ev != "push" {
			return Push{}, fmt.Errorf("%w: github event %q", ErrIgnored, ev)
		}
		return parseGitHubLike("github", body)
	case h.Get("X-Gitlab-Event") != "":
		tok := h.Get("X-Gitlab-Token")
		if s.GitLab == "" || subtle.ConstantTimeCompare([]byte(tok), []byte(s.GitLab)) != 1 {
			return Push{}, fmt.Errorf("%w: gitlab: bad or missing X-Gitlab-Token", ErrUnverified)
		}
		if ev := h.Get("X-Gitlab-Event"); ev != "Push Hook" && ev != "Tag Push Hook" {
			return Push{}, fmt.Errorf("%w: gitlab event %q", ErrIgnored, ev)
		}
		return parseGitLab(body)
	}
	return Push{}, fmt.Errorf("%w: no X-GitHub-Event, X-Gitlab-Event or X-Gitea-Event header", ErrIgnored)
}

// hmacOK checks hex(HMAC-SHA256(secret, body)) in constant time. An empty
// secret verifies nothing.
func hmacOK(secret string, body []byte, header, prefix string) bool {
	if secret == "" || !strings.HasPrefix(header, prefix) {
		return false
	}
	got, err := hex.DecodeString(strings.TrimPrefix(header, prefix))
	if err != nil {
		return false
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hmac.Equal(got, m.Sum(nil))
}

type commit struct {
	Added    []string `json:"added"`
	Modified []string `json:"modified"`
	Removed  []string `json:"removed"`
}

func changed(commits []commit) []string {
	if len(commits) == 0 {
		return nil
	}
	var out []string
	for _, c := range commits {
		if c.Added == nil && c.Modified == nil && c.Removed == nil {
			return nil // the forge did not list files: assume anything changed
		}
		out = append(out, c.Added...)
		out = append(out, c.Modified...)
		out = append(out, c.Removed...)
	}
	return out
}

// parseGitHubLike reads GitHub's push payload, which Gitea mirrors.
func parseGitHubLike(forge string, body []byte) (Push, error) {
	var p struct {
		Ref        string   `json:"ref"`
		After      string   `json:"after"`
		Commits    []commit `json:"commits"`
		Repository struct {
			HTMLURL       string `json:"html_url"`
			CloneURL      string `json:"clone_url"`
			SSHURL        string `json:"ssh_url"`
			GitURL        string `json:"git_url"`
			DefaultBranch string `json:"default_branch"`
		} `json:"repository"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return Push{}, fmt.Errorf("webhook: %s push payload: %w", forge, err)
	}
	r := p.Repository
	return Push{Forge: forge, Ref: p.Ref, After: p.After, DefaultBranch: r.DefaultBranch, Changed: changed(p.Commits),
		RepoURLs: nonEmpty(r.HTMLURL, r.CloneURL, r.SSHURL, r.GitURL)}, nil
}

func parseGitLab(body []byte) (Push, error) {
	var p struct {
		Ref     string   `json:"ref"`
		After   string   `json:"after"`
		Commits []commit `json:"commits"`
		Project struct {
			WebURL        string `json:"web_url"`
			HTTPURL       string `json:"git_http_url"`
			SSHURL        string `json:"git_ssh_url"`
			DefaultBranch string `json:"default_branch"`
		} `json:"project"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return Push{}, fmt.Errorf("webhook: gitlab push payload: %w", err)
	}
	r := p.Project
	return Push{Forge: "gitlab", Ref: p.Ref, After: p.After, DefaultBranch: r.DefaultBranch, Changed: changed(p.Commits),
		RepoURLs: nonEmpty(r.WebURL, r.HTTPURL, r.SSHURL)}, nil
}

func nonEmpty(ss ...string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}
