package notify

import (
	"context"
	"fmt"
	"net/url"
	"strings"
)

// repoOf splits a repository URL into the forge's base URL and
// owner/repo.
func repoOf(address string) (base *url.URL, repo string, err error) {
	u, err := url.Parse(address)
	if err != nil || u.Host == "" {
		return nil, "", fmt.Errorf("spec.address %q is not a repository URL", address)
	}
	p := strings.TrimSuffix(strings.Trim(u.Path, "/"), ".git")
	if strings.Count(p, "/") < 1 {
		return nil, "", fmt.Errorf("spec.address: want the repository's URL (https://HOST/OWNER/REPO), not %s://%s/%s", u.Scheme, u.Host, p)
	}
	return &url.URL{Scheme: u.Scheme, Host: u.Host}, p, nil
}

// state is the commit state of e: pending while progressing, success
// for info, failure for error (GitLab spells them running and failed).
func state(typ string, e Event) string {
	s := "success"
	switch {
	case e.Reason == "Progressing":
		s = "pending"
	case e.Severity == SeverityError:
		s = "failure"
	}
	if typ == GitLab {
		s = map[string]string{"pending": "running", "success": "success", "failure": "failed"}[s]
	}
	return s
}

func commitStatus(ctx context.Context, t Target, e Event) error {
	sha := e.Commit()
	if sha == "" {
		return ErrNoCommit
	}
	base, repo, err := repoOf(t.Address)
	if err != nil {
		return err
	}
	id := t.CommitStatusID
	if id == "" {
		id = strings.ToLower(e.InvolvedObject.Kind + "/" + e.InvolvedObject.Name)
	}
	desc := words(e.Reason)
	switch t.Type {
	case Gitea:
		addr := base.String() + "/api/v1/repos/" + repo + "/statuses/" + sha
		return postJSON(ctx, t, addr, map[string]string{"state": state(t.Type, e), "context": id, "description": desc},
			map[string]string{"Authorization": "token " + t.Token})
	case GitHub:
		api := base.String() + "/api/v3"
		if base.Host == "github.com" {
			api = "https://api.github.com"
		}
		return postJSON(ctx, t, api+"/repos/"+repo+"/statuses/"+sha, map[string]string{"state": state(t.Type, e), "context": id, "description": desc},
			map[string]string{"Authorization": "Bearer " + t.Token, "Accept": "application/vnd.github+json"})
	case GitLab:
		addr := base.String() + "/api/v4/projects/" + url.PathEscape(repo) + "/statuses/" + sha
		return postJSON(ctx, t, addr, map[string]string{"state": state(t.Type, e), "name": id, "description": desc},
			map[string]string{"PRIVATE-TOKEN": t.Token})
	}
	return fmt.Errorf("%s is not a commit status provider", t.Type)
}
