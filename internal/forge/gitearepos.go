package forge

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// Repository is a forge repository as an owner's listing shows it.
type Repository struct {
	ID                     int64
	Owner, Name            string
	CloneURL, SSHURL, HTML string
	DefaultBranch          string
	Archived, Empty        bool
}

// Branch is a branch and its head commit.
type Branch struct {
	Name, Commit string
}

type giteaRepo struct {
	ID       int64  `json:"id"`
	Name     string `json:"name"`
	CloneURL string `json:"clone_url"`
	SSHURL   string `json:"ssh_url"`
	HTMLURL  string `json:"html_url"`
	Default  string `json:"default_branch"`
	Archived bool   `json:"archived"`
	Empty    bool   `json:"empty"`
	Owner    struct {
		Login string `json:"login"`
	} `json:"owner"`
}

// OwnerRepos lists the repositories of g.Owner, an organization or (when
// no organization has that name) a user, as far as the token may see.
func (g *Gitea) OwnerRepos(ctx context.Context) ([]Repository, error) {
	out, err := g.listRepos(ctx, "/orgs/"+url.PathEscape(g.Owner)+"/repos")
	var se *statusError
	if errors.As(err, &se) && se.code == http.StatusNotFound {
		out, err = g.listRepos(ctx, "/users/"+url.PathEscape(g.Owner)+"/repos")
	}
	return out, err
}

func (g *Gitea) listRepos(ctx context.Context, path string) ([]Repository, error) {
	var out []Repository
	for page := 1; ; page++ {
		var repos []giteaRepo
		if err := g.call(ctx, "GET", fmt.Sprintf("%s?limit=50&page=%d", path, page), nil, &repos); err != nil {
			return nil, err
		}
		for _, r := range repos {
			out = append(out, Repository{ID: r.ID, Owner: r.Owner.Login, Name: r.Name, CloneURL: r.CloneURL, SSHURL: r.SSHURL,
				HTML: r.HTMLURL, DefaultBranch: r.Default, Archived: r.Archived, Empty: r.Empty})
		}
		if len(repos) < 50 {
			return out, nil
		}
	}
}

// Labels are the names of g.Repo's issue labels.
func (g *Gitea) Labels(ctx context.Context) ([]string, error) {
	var out []string
	for page := 1; ; page++ {
		var labels []struct {
			Name string `json:"name"`
		}
		if err := g.call(ctx, "GET", g.repoPath("/labels?limit=50&page=%d", page), nil, &labels); err != nil {
			return nil, err
		}
		for _, l := range labels {
			out = append(out, l.Name)
		}
		if len(labels) < 50 {
			return out, nil
		}
	}
}

type giteaBranch struct {
	Name   string `json:"name"`
	Commit struct {
		ID string `json:"id"`
	} `json:"commit"`
}

// Branches lists g.Repo's branches with their heads.
func (g *Gitea) Branches(ctx context.Context) ([]Branch, error) {
	var out []Branch
	for page := 1; ; page++ {
		var bs []giteaBranch
		if err := g.call(ctx, "GET", g.repoPath("/branches?limit=50&page=%d", page), nil, &bs); err != nil {
			return nil, err
		}
		for _, b := range bs {
			out = append(out, Branch{Name: b.Name, Commit: b.Commit.ID})
		}
		if len(bs) < 50 {
			return out, nil
		}
	}
}

// Branch reads one branch of g.Repo.
func (g *Gitea) Branch(ctx context.Context, name string) (Branch, error) {
	var b giteaBranch
	if err := g.call(ctx, "GET", g.repoPath("/branches/%s", url.PathEscape(name)), nil, &b); err != nil {
		return Branch{}, err
	}
	return Branch{Name: b.Name, Commit: b.Commit.ID}, nil
}

// HasPath says whether path (a file or a folder) exists in g.Repo at
// ref. Only "not found" is false: any other failure is an error.
func (g *Gitea) HasPath(ctx context.Context, ref, path string) (bool, error) {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	err := g.call(ctx, "GET", g.repoPath("/contents/%s?ref=%s", strings.Join(segs, "/"), url.QueryEscape(ref)), nil, nil)
	var se *statusError
	if errors.As(err, &se) && se.code == http.StatusNotFound {
		return false, nil
	}
	return err == nil, err
}
