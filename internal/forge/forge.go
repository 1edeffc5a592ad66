// Package forge opens pull requests on a Git forge. Gitea is the first
// (it runs on loopback in tests, see design/FORGE.md); GitHub and GitLab
// go behind the same interface.
package forge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"converge.dev/converge/internal/redact"
)

// PullRequest is what to open: Head merged into Base.
type PullRequest struct {
	Base, Head  string
	Title, Body string
}

// Opened is an open pull request.
type Opened struct {
	Number int
	URL    string
	// Existing is true when one was open for the head already: opening
	// is idempotent, so a retry never opens a second one.
	Existing bool
}

// Forge opens pull requests.
type Forge interface {
	Open(ctx context.Context, pr PullRequest) (Opened, error)
}

// Gitea is a Gitea repository, reached through its REST API.
type Gitea struct {
	// API is the forge's API root (http://host:port/api/v1).
	API         string
	Owner, Repo string
	// Token authenticates as a user who may open pull requests.
	Token string
	// Client sends the requests. If nil, http.DefaultClient.
	Client *http.Client
}

// NewGitea reads the forge, owner and repository from a clone URL
// (http(s)://host[:port][/prefix]/owner/repo[.git]).
func NewGitea(cloneURL, token string) (*Gitea, error) {
	u, err := url.Parse(cloneURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("forge: %q is not an http(s) clone URL", redact.URL(cloneURL))
	}
	parts := strings.Split(strings.Trim(strings.TrimSuffix(u.Path, ".git"), "/"), "/")
	if len(parts) < 2 {
		return nil, fmt.Errorf("forge: %q names no owner/repository", redact.URL(cloneURL))
	}
	prefix := strings.Join(parts[:len(parts)-2], "/")
	if prefix != "" {
		prefix = "/" + prefix
	}
	api := fmt.Sprintf("%s://%s%s/api/v1", u.Scheme, u.Host, prefix)
	return &Gitea{API: api, Owner: parts[len(parts)-2], Repo: parts[len(parts)-1], Token: token}, nil
}

type giteaPR struct {
	Number  int    `json:"number"`
	HTMLURL string `json:"html_url"`
	Head    struct {
		Ref string `json:"ref"`
	} `json:"head"`
}

// Open finds an open pull request from pr.Head, or opens one.
func (g *Gitea) Open(ctx context.Context, pr PullRequest) (Opened, error) {
	var open []giteaPR
	if err := g.call(ctx, "GET", fmt.Sprintf("/repos/%s/%s/pulls?state=open&limit=50", g.Owner, g.Repo), nil, &open); err != nil {
		return Opened{}, err
	}
	for _, p := range open {
		if p.Head.Ref == pr.Head {
			return Opened{Number: p.Number, URL: p.HTMLURL, Existing: true}, nil
		}
	}
	var made giteaPR
	body := map[string]string{"base": pr.Base, "head": pr.Head, "title": pr.Title, "body": pr.Body}
	// Gitea records a pushed branch a moment after the push returns, and
	// until then answers 404 for a pull request from it: try again for a
	// few seconds.
	for try := 0; ; try++ {
		err := g.call(ctx, "POST", fmt.Sprintf("/repos/%s/%s/pulls", g.Owner, g.Repo), body, &made)
		if err == nil {
			return Opened{Number: made.Number, URL: made.HTMLURL}, nil
		}
		var se *statusError
		if !errors.As(err, &se) || se.code != http.StatusNotFound || try == 20 {
			return Opened{}, err
		}
		select {
		case <-ctx.Done():
			return Opened{}, err
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// statusError is an answer of 300 or more.
type statusError struct {
	code int
	msg  string
}

func (e *statusError) Error() string { return e.msg }

func (g *Gitea) call(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, g.API+path, rd)
	if err != nil {
		return fmt.Errorf("gitea %s %s: %w", method, path, err)
	}
	req.Header.Set("Content-Type", "application/json")
	if g.Token != "" {
		req.Header.Set("Authorization", "token "+g.Token)
	}
	c := g.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("gitea %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode >= 300 {
		return &statusError{resp.StatusCode, fmt.Sprintf("gitea %s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(data)))}
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("gitea %s %s: %w", method, path, err)
		}
	}
	return nil
}
