package appset

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
)

// SCMSource is the forge owner an scmProvider generator scans.
type SCMSource struct {
	// API is the forge's root URL (https://gitea.example.com/).
	API, Owner string
	// TokenSecret and TokenKey name the token in the set's namespace; ""
	// lists anonymously.
	TokenSecret, TokenKey string
	Insecure              bool
	// AllBranches scans every branch, not only the default one.
	AllBranches bool
	// Every is how long a listing may be reused (requeueAfterSeconds,
	// default 30 minutes as in Argo CD); a refresh lists anew.
	Every time.Duration
}

// Repository is one repository (at one branch, once Branches has run).
type Repository struct {
	Organization, Name string
	ID                 int64
	// SSHURL and HTTPSURL are how to clone it; cloneProtocol picks one.
	SSHURL, HTTPSURL string
	Branch, SHA      string
	// Labels are the repository's labels (for Gitea, its issue labels, as
	// Argo CD reads them).
	Labels []string
}

type secretRef struct {
	SecretName string `json:"secretName"`
	Key        string `json:"key"`
}

// scmProviderGenerator is Argo CD's scmProvider generator; only its gitea
// source is run.
type scmProviderGenerator struct {
	Gitea *struct {
		Owner                string     `json:"owner"`
		API                  string     `json:"api"`
		TokenRef             *secretRef `json:"tokenRef,omitempty"`
		AllBranches          bool       `json:"allBranches,omitempty"`
		Insecure             bool       `json:"insecure,omitempty"`
		ExcludeArchivedRepos bool       `json:"excludeArchivedRepos,omitempty"`
	} `json:"gitea,omitempty"`
	CloneProtocol string `json:"cloneProtocol,omitempty"`
	Filters       []struct {
		RepositoryMatch *string  `json:"repositoryMatch,omitempty"`
		PathsExist      []string `json:"pathsExist,omitempty"`
		PathsDoNotExist []string `json:"pathsDoNotExist,omitempty"`
		LabelMatch      *string  `json:"labelMatch,omitempty"`
		BranchMatch     *string  `json:"branchMatch,omitempty"`
	} `json:"filters,omitempty"`
	RequeueAfterSeconds *int64                           `json:"requeueAfterSeconds,omitempty"`
	Values              map[string]string                `json:"values,omitempty"`
	Template            *v1alpha1.ApplicationSetTemplate `json:"template,omitempty"`
}

// scmFilter is one compiled filter: every condition it sets must hold.
type scmFilter struct {
	repo, label, branch *regexp.Regexp
	exist, notExist     []string
}

// scmProvider yields one set per repository of the owner (per branch
// with allBranches) that passes the filters, with Argo CD's parameters:
// organization, repository, repository_id, url, branch,
// branchNormalized, sha, short_sha, short_sha_7, labels, and values.
//
// Filters work as Argo CD's: a filter with repositoryMatch or labelMatch
// is a repository filter, one with branchMatch, pathsExist or
// pathsDoNotExist a branch filter (a filter may be both). A repository
// passes when any repository filter passes (or there is none), and
// its branch when any branch filter passes (or there is none).
func scmProvider(ctx context.Context, at string, raw *apiextensionsv1.JSON, in Inputs) (Generated, error) {
	var g scmProviderGenerator
	if err := strictJSON(raw.Raw, &g); err != nil {
		return Generated{}, fmt.Errorf("%s: %w (only the gitea source is supported by converge yet)", at, err)
	}
	gen := Generated{Generator: at, Template: g.Template}
	switch {
	case g.Gitea == nil:
		return gen, fmt.Errorf("%s: only the gitea source is supported by converge yet", at)
	case g.Gitea.Owner == "":
		return gen, fmt.Errorf("%s.gitea.owner is required", at)
	case g.Gitea.ExcludeArchivedRepos:
		return gen, fmt.Errorf("%s.gitea.excludeArchivedRepos is not supported by converge yet; nothing was generated, created or deleted", at)
	case g.CloneProtocol != "" && g.CloneProtocol != "ssh" && g.CloneProtocol != "https":
		return gen, fmt.Errorf("%s.cloneProtocol: %q is neither ssh nor https", at, g.CloneProtocol)
	case in.Repositories == nil || in.Branches == nil || in.HasPath == nil:
		return gen, fmt.Errorf("%s: no forge access", at)
	}
	src := SCMSource{API: g.Gitea.API, Owner: g.Gitea.Owner, Insecure: g.Gitea.Insecure, AllBranches: g.Gitea.AllBranches, Every: 30 * time.Minute}
	if n := g.RequeueAfterSeconds; n != nil {
		src.Every = time.Duration(*n) * time.Second
	}
	if t := g.Gitea.TokenRef; t != nil {
		src.TokenSecret, src.TokenKey = t.SecretName, t.Key
	}
	var repoFilters, branchFilters []scmFilter
	for i, f := range g.Filters {
		var sf scmFilter
		for _, x := range []struct {
			field string
			expr  *string
			into  **regexp.Regexp
		}{{"repositoryMatch", f.RepositoryMatch, &sf.repo}, {"labelMatch", f.LabelMatch, &sf.label}, {"branchMatch", f.BranchMatch, &sf.branch}} {
			if x.expr == nil {
				continue
			}
			re, err := regexp.Compile(*x.expr)
			if err != nil {
				return gen, fmt.Errorf("%s.filters[%d].%s: %w", at, i, x.field, err)
			}
			*x.into = re
		}
		sf.exist, sf.notExist = f.PathsExist, f.PathsDoNotExist
		if sf.repo != nil || sf.label != nil {
			repoFilters = append(repoFilters, sf)
		}
		if sf.branch != nil || len(sf.exist) > 0 || len(sf.notExist) > 0 {
			branchFilters = append(branchFilters, sf)
		}
	}
	repos, err := in.Repositories(ctx, src)
	if err != nil {
		// Not "no repositories": every Application would be deleted.
		return gen, fmt.Errorf("%s: %w", at, err)
	}
	for _, repo := range repos {
		if ok, _ := anyFilter(repoFilters, func(f scmFilter) (bool, error) { return repoMatches(f, repo), nil }); !ok {
			continue
		}
		branches, err := in.Branches(ctx, src, repo)
		if err != nil {
			return gen, fmt.Errorf("%s: %s/%s: %w", at, repo.Organization, repo.Name, err)
		}
		for _, b := range branches {
			pass, err := anyFilter(branchFilters, func(f scmFilter) (bool, error) { return branchMatches(ctx, in, src, f, b) })
			if err != nil {
				// A path the forge could not check is not "absent".
				return gen, fmt.Errorf("%s: %s/%s@%s: %w", at, b.Organization, b.Name, b.Branch, err)
			}
			if !pass {
				continue
			}
			url := b.SSHURL
			if g.CloneProtocol == "https" {
				url = b.HTTPSURL
			}
			short := func(n int) string { return b.SHA[:min(n, len(b.SHA))] }
			p, err := withValues(paramsOf(map[string]any{"organization": b.Organization, "repository": b.Name,
				"repository_id": strconv.FormatInt(b.ID, 10), "url": url, "branch": b.Branch, "branchNormalized": normalize(b.Branch),
				"sha": b.SHA, "short_sha": short(8), "short_sha_7": short(7), "labels": strings.Join(b.Labels, ",")}), g.Values, in)
			if err != nil {
				return gen, fmt.Errorf("%s.values: %s/%s: %w", at, b.Organization, b.Name, err)
			}
			gen.Params = append(gen.Params, p)
		}
	}
	return gen, nil
}

// anyFilter: no filters pass everything; else some filter must pass.
func anyFilter(filters []scmFilter, pass func(scmFilter) (bool, error)) (bool, error) {
	if len(filters) == 0 {
		return true, nil
	}
	for _, f := range filters {
		if ok, err := pass(f); err != nil || ok {
			return ok, err
		}
	}
	return false, nil
}

func repoMatches(f scmFilter, r Repository) bool {
	if f.repo != nil && !f.repo.MatchString(r.Name) {
		return false
	}
	if f.label != nil {
		found := false
		for _, l := range r.Labels {
			found = found || f.label.MatchString(l)
		}
		if !found {
			return false
		}
	}
	return true
}

// branchMatches checks all of f's conditions on one branch, the
// repository ones too (as Argo CD does for a filter of both kinds).
func branchMatches(ctx context.Context, in Inputs, src SCMSource, f scmFilter, b Repository) (bool, error) {
	if !repoMatches(f, b) || (f.branch != nil && !f.branch.MatchString(b.Branch)) {
		return false, nil
	}
	for _, want := range []struct {
		paths  []string
		exists bool
	}{{f.exist, true}, {f.notExist, false}} {
		for _, p := range want.paths {
			has, err := in.HasPath(ctx, src, b, p)
			if err != nil {
				return false, fmt.Errorf("path %s: %w", p, err)
			}
			if has != want.exists {
				return false, nil
			}
		}
	}
	return true, nil
}
