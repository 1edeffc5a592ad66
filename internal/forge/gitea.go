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
	State   string `json:"state"`
	Merged  bool   `json:"merged"`
	Merge   string `json:"merge_commit_sha"`
	Base    string `json:"merge_base"`
	Body    string `json:"body"`
	Head    struct {
		Ref string `json:"ref"`
		SHA string `json:"sha"`
	} `json:"head"`
	BaseRef struct {
		Ref string `json:"ref"`
	} `json:"base"`
	Title string `json:"title"`
	User  struct {
		Login string `json:"login"`
	} `json:"user"`
	Labels []struct {
		Name string `json:"name"`
	} `json:"labels"`
}

func (p giteaPR) state() State {
	s := State{Number: p.Number, URL: p.HTMLURL, Open: p.State == "open", Merged: p.Merged, Head: p.Head.SHA,
		HeadBranch: p.Head.Ref, MergeCommit: p.Merge, MergeBase: p.Base, Body: p.Body, Author: p.User.Login,
		BaseBranch: p.BaseRef.Ref, Title: p.Title}
	for _, l := range p.Labels {
		s.Labels = append(s.Labels, l.Name)
	}
	return s
}

// OpenPulls lists the repository's open pull requests, oldest first.
func (g *Gitea) OpenPulls(ctx context.Context) ([]State, error) {
	var out []State
	for page := 1; ; page++ {
		var open []giteaPR
		if err := g.call(ctx, "GET", g.repoPath("/pulls?state=open&sort=oldest&limit=50&page=%d", page), nil, &open); err != nil {
			return nil, err
		}
		for _, p := range open {
			out = append(out, p.state())
		}
		if len(open) < 50 {
			return out, nil
		}
	}
}

func (g *Gitea) repoPath(format string, a ...any) string {
	return fmt.Sprintf("/repos/%s/%s", url.PathEscape(g.Owner), url.PathEscape(g.Repo)) + fmt.Sprintf(format, a...)
}

// Get reads pull request number.
func (g *Gitea) Get(ctx context.Context, number int) (State, error) {
	var p giteaPR
	if err := g.call(ctx, "GET", g.repoPath("/pulls/%d", number), nil, &p); err != nil {
		return State{}, err
	}
	return p.state(), nil
}

// PullOfCommit is the pull request whose merge made sha (or whose head it
// is); false when the forge knows none.
func (g *Gitea) PullOfCommit(ctx context.Context, sha string) (State, bool, error) {
	var p giteaPR
	err := g.call(ctx, "GET", g.repoPath("/commits/%s/pull", url.PathEscape(sha)), nil, &p)
	var se *statusError
	if errors.As(err, &se) && se.code == http.StatusNotFound {
		return State{}, false, nil
	}
	if err != nil {
		return State{}, false, err
	}
	return p.state(), true, nil
}

// SetBody replaces the body of pull request number.
func (g *Gitea) SetBody(ctx context.Context, number int, body string) error {
	return g.call(ctx, "PATCH", g.repoPath("/pulls/%d", number), map[string]string{"body": body}, nil)
}

// SetStatus sets a commit status on sha.
func (g *Gitea) SetStatus(ctx context.Context, sha string, s Status) error {
	// Gitea cuts descriptions it finds too long with an error; forges
	// show about 140 characters anyway.
	desc := s.Description
	if len(desc) > 140 {
		desc = desc[:137] + "..."
	}
	return g.call(ctx, "POST", g.repoPath("/statuses/%s", url.PathEscape(sha)),
		map[string]string{"context": s.Context, "state": s.State, "description": desc, "target_url": s.TargetURL}, nil)
}

// Statuses are the latest status per context on sha.
func (g *Gitea) Statuses(ctx context.Context, sha string) ([]Status, error) {
	var combined struct {
		Statuses []struct {
			Context     string `json:"context"`
			Status      string `json:"status"`
			Description string `json:"description"`
			TargetURL   string `json:"target_url"`
		} `json:"statuses"`
	}
	if err := g.call(ctx, "GET", g.repoPath("/commits/%s/status?limit=100", url.PathEscape(sha)), nil, &combined); err != nil {
		return nil, err
	}
	out := make([]Status, 0, len(combined.Statuses))
	for _, s := range combined.Statuses {
		out = append(out, Status{Context: s.Context, State: s.Status, Description: s.Description, TargetURL: s.TargetURL})
	}
	return out, nil
}

// Reviews lists the reviews of pull request number, oldest first.
func (g *Gitea) Reviews(ctx context.Context, number int) ([]Review, error) {
	var rs []struct {
		User struct {
			Login string `json:"login"`
		} `json:"user"`
		State     string `json:"state"`
		CommitID  string `json:"commit_id"`
		Dismissed bool   `json:"dismissed"`
		Stale     bool   `json:"stale"`
	}
	if err := g.call(ctx, "GET", g.repoPath("/pulls/%d/reviews?limit=50", number), nil, &rs); err != nil {
		return nil, err
	}
	out := make([]Review, 0, len(rs))
	for _, r := range rs {
		out = append(out, Review{User: r.User.Login, State: r.State, Commit: r.CommitID, Dismissed: r.Dismissed, Stale: r.Stale})
	}
	return out, nil
}

// Merge merges pull request number if its head is still m.Head, and
// returns the merge commit.
func (g *Gitea) Merge(ctx context.Context, number int, m Merge) (string, error) {
	style := m.Style
	if style == "" {
		style = "merge"
	}
	body := map[string]any{"Do": style, "MergeTitleField": m.Title, "MergeMessageField": m.Message,
		"head_commit_id": m.Head, "delete_branch_after_merge": m.DeleteBranch}
	// Gitea answers 405 "Please try again later" while it recomputes
	// whether the pull request can merge, after a push, a status or a
	// review: try again for a few seconds.
	for try := 0; ; try++ {
		err := g.call(ctx, "POST", g.repoPath("/pulls/%d/merge", number), body, nil)
		if err == nil {
			break
		}
		var se *statusError
		if !errors.As(err, &se) {
			return "", err
		}
		switch {
		case se.code == http.StatusMethodNotAllowed && strings.Contains(se.msg, "try again later") && try < 40:
		case strings.Contains(se.msg, "Not all required status checks successful"):
			return "", fmt.Errorf("%w: %s", ErrChecksPending, se.msg)
		case strings.Contains(se.msg, "Does not have enough approvals"):
			return "", fmt.Errorf("%w: %s", ErrNotApproved, se.msg)
		case se.code == http.StatusConflict && strings.Contains(strings.ToLower(se.msg), "head out of date"):
			return "", fmt.Errorf("%w: %s", ErrHeadMoved, se.msg)
		case se.code == http.StatusMethodNotAllowed && strings.Contains(se.msg, "has been merged"):
			return "", fmt.Errorf("%w: %s", ErrNotOpen, se.msg)
		default:
			return "", err
		}
		select {
		case <-ctx.Done():
			return "", err
		case <-time.After(250 * time.Millisecond):
		}
	}
	st, err := g.Get(ctx, number)
	if err != nil {
		return "", err
	}
	return st.MergeCommit, nil
}

// Close comments why, then closes pull request number unmerged.
func (g *Gitea) Close(ctx context.Context, number int, comment string) error {
	if comment != "" {
		if err := g.Comment(ctx, number, comment); err != nil {
			return err
		}
	}
	return g.call(ctx, "PATCH", g.repoPath("/pulls/%d", number), map[string]string{"state": "closed"}, nil)
}

// Comment comments on pull request number.
func (g *Gitea) Comment(ctx context.Context, number int, text string) error {
	return g.call(ctx, "POST", g.repoPath("/issues/%d/comments", number), map[string]string{"body": text}, nil)
}

// Find finds the open pull request from head.
func (g *Gitea) Find(ctx context.Context, head string) (State, bool, error) {
	// Newest first, so a head reused after a merge finds its open one.
	for page := 1; page <= 20; page++ {
		var open []giteaPR
		if err := g.call(ctx, "GET", g.repoPath("/pulls?state=open&sort=recentupdate&limit=50&page=%d", page), nil, &open); err != nil {
			return State{}, false, err
		}
		for _, p := range open {
			if p.Head.Ref == head {
				return p.state(), true, nil
			}
		}
		if len(open) < 50 {
			break
		}
	}
	return State{}, false, nil
}

// Open finds an open pull request from pr.Head, or opens one.
func (g *Gitea) Open(ctx context.Context, pr PullRequest) (Opened, error) {
	if st, ok, err := g.Find(ctx, pr.Head); err != nil || ok {
		return Opened{Number: st.Number, URL: st.URL, Head: st.Head, Existing: ok}, err
	}
	var made giteaPR
	body := map[string]string{"base": pr.Base, "head": pr.Head, "title": pr.Title, "body": pr.Body}
	// Gitea records a pushed branch a moment after the push returns, and
	// until then answers 404 for a pull request from it: try again for a
	// few seconds.
	for try := 0; ; try++ {
		err := g.call(ctx, "POST", fmt.Sprintf("/repos/%s/%s/pulls", g.Owner, g.Repo), body, &made)
		if err == nil {
			return Opened{Number: made.Number, URL: made.HTMLURL, Head: made.Head.SHA}, nil
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
