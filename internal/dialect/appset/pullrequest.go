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

// PullRequestSource is the forge repository a pullRequest generator
// lists, with the Secret holding its token.
type PullRequestSource struct {
	// API is the forge's root URL (https://gitea.example.com/).
	API, Owner, Repo string
	// TokenSecret and TokenKey name the token in the set's namespace; ""
	// lists anonymously.
	TokenSecret, TokenKey string
	Insecure              bool
	// Labels the pull requests must all carry.
	Labels []string
	// Every is how long a listing may be reused (requeueAfterSeconds,
	// default 30 minutes as in Argo CD); a refresh lists anew.
	Every time.Duration
}

// PullRequest is an open pull request.
type PullRequest struct {
	Number                               int
	Title, Branch, TargetBranch, HeadSHA string
	Author                               string
	Labels                               []string
}

// pullRequestGenerator is Argo CD's pullRequest generator; only its
// gitea source is run.
type pullRequestGenerator struct {
	Gitea *struct {
		Owner    string     `json:"owner"`
		Repo     string     `json:"repo"`
		API      string     `json:"api"`
		TokenRef *secretRef `json:"tokenRef,omitempty"`
		Insecure bool       `json:"insecure,omitempty"`
		Labels   []string   `json:"labels,omitempty"`
	} `json:"gitea,omitempty"`
	Filters []struct {
		BranchMatch       *string `json:"branchMatch,omitempty"`
		TargetBranchMatch *string `json:"targetBranchMatch,omitempty"`
	} `json:"filters,omitempty"`
	RequeueAfterSeconds *int64                           `json:"requeueAfterSeconds,omitempty"`
	Template            *v1alpha1.ApplicationSetTemplate `json:"template,omitempty"`
}

// pullRequests yields one set per open pull request that passes a
// filter (every condition of one filter; any filter), with Argo CD's
// parameters: number, title, branch, branch_slug, target_branch,
// target_branch_slug, head_sha, head_short_sha, head_short_sha_7,
// author, and labels (goTemplate).
func pullRequests(ctx context.Context, at string, raw *apiextensionsv1.JSON, in Inputs) (Generated, error) {
	var g pullRequestGenerator
	if err := strictJSON(raw.Raw, &g); err != nil {
		return Generated{}, fmt.Errorf("%s: %w (only the gitea source is supported by converge yet)", at, err)
	}
	gen := Generated{Generator: at, Template: g.Template}
	if g.Gitea == nil {
		return gen, fmt.Errorf("%s: only the gitea source is supported by converge yet", at)
	}
	if in.PullRequests == nil {
		return gen, fmt.Errorf("%s: no forge access", at)
	}
	src := PullRequestSource{API: g.Gitea.API, Owner: g.Gitea.Owner, Repo: g.Gitea.Repo, Insecure: g.Gitea.Insecure, Labels: g.Gitea.Labels,
		Every: 30 * time.Minute}
	if n := g.RequeueAfterSeconds; n != nil {
		src.Every = time.Duration(*n) * time.Second
	}
	if t := g.Gitea.TokenRef; t != nil {
		src.TokenSecret, src.TokenKey = t.SecretName, t.Key
	}
	type filter struct{ branch, target *regexp.Regexp }
	var filters []filter
	for i, f := range g.Filters {
		var fl filter
		for _, x := range []struct {
			field string
			expr  *string
			into  **regexp.Regexp
		}{{"branchMatch", f.BranchMatch, &fl.branch}, {"targetBranchMatch", f.TargetBranchMatch, &fl.target}} {
			if x.expr == nil {
				continue
			}
			re, err := regexp.Compile(*x.expr)
			if err != nil {
				return gen, fmt.Errorf("%s.filters[%d].%s: %w", at, i, x.field, err)
			}
			*x.into = re
		}
		filters = append(filters, fl)
	}
	prs, err := in.PullRequests(ctx, src)
	if err != nil {
		// Not "no pull requests": every preview would be deleted.
		return gen, fmt.Errorf("%s: %w", at, err)
	}
	for _, pr := range prs {
		if !hasAll(pr.Labels, src.Labels) {
			continue
		}
		pass := len(filters) == 0
		for _, f := range filters {
			pass = pass || ((f.branch == nil || f.branch.MatchString(pr.Branch)) && (f.target == nil || f.target.MatchString(pr.TargetBranch)))
		}
		if !pass {
			continue
		}
		short := func(n int) string { return pr.HeadSHA[:min(n, len(pr.HeadSHA))] }
		p := map[string]any{"number": strconv.Itoa(pr.Number), "title": pr.Title, "branch": pr.Branch, "branch_slug": slug(pr.Branch),
			"target_branch": pr.TargetBranch, "target_branch_slug": slug(pr.TargetBranch), "head_sha": pr.HeadSHA,
			"head_short_sha": short(8), "head_short_sha_7": short(7), "author": pr.Author}
		params := paramsOf(p)
		labels := make([]any, len(pr.Labels))
		for i, l := range pr.Labels {
			labels[i] = l
		}
		params.Go["labels"] = labels
		gen.Params = append(gen.Params, params)
	}
	return gen, nil
}

func hasAll(have, want []string) bool {
	for _, w := range want {
		found := false
		for _, h := range have {
			found = found || h == w
		}
		if !found {
			return false
		}
	}
	return true
}

// slug is a branch name fit for an object name, as Argo CD's
// branch_slug: lower case, other characters as '-', at most 50.
func slug(s string) string {
	out := strings.Trim(notSlug.ReplaceAllString(strings.ToLower(s), "-"), "-")
	if len(out) > 50 {
		out = strings.TrimRight(out[:50], "-")
	}
	return out
}

var notSlug = regexp.MustCompile(`[^a-z0-9]+`)
