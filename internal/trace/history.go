package trace

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	convergev1 "converge.dev/converge/internal/api/converge/v1alpha1"
	sourcev1 "converge.dev/converge/internal/api/fluxcd/source/v1"
	"converge.dev/converge/internal/dialect/flux"
	"converge.dev/converge/internal/forge"
	"converge.dev/converge/internal/promotion"
	"converge.dev/converge/internal/source"
	"converge.dev/converge/internal/source/git"
)

// repoURL is the Git repository of the unit's source, and its auth.
func (o Options) repoURL(ctx context.Context, rep *Report) (string, git.Auth, bool) {
	url, _, _ := strings.Cut(rep.Source, " ")
	switch {
	case rep.Unit.Kind == "Application":
		if !o.trusted(url) {
			return url, git.Auth{}, url != ""
		}
		return url, o.GitAuth, url != ""
	case strings.HasPrefix(rep.Source, "GitRepository/"):
		repo, auth, err := gitRepository(ctx, o.Client, strings.TrimPrefix(url, "GitRepository/"))
		if err != nil {
			rep.Notes = append(rep.Notes, err.Error())
			return "", git.Auth{}, false
		}
		return repo, auth, true
	}
	return "", git.Auth{}, false
}

// commit reads the applied commit's author, time and message.
func (o Options) commit(ctx context.Context, rep *Report) {
	if o.Git == nil || rep.Revision == "" {
		return
	}
	url, auth, ok := o.repoURL(ctx, rep)
	if !ok || !isSHA(rep.Revision) {
		return
	}
	if _, err := o.Git.Fetch(ctx, url, source.Ref{Commit: rep.Revision}, auth); err != nil {
		rep.Notes = append(rep.Notes, fmt.Sprintf("commit %s: %v", short(rep.Revision), err))
		return
	}
	c, err := o.Git.Commit(url, rep.Revision)
	if err != nil {
		rep.Notes = append(rep.Notes, fmt.Sprintf("commit %s: %v", short(rep.Revision), err))
		return
	}
	rep.Commit = &c
}

// promotion finds the converge promotion that made the commit (by its
// merge commit, or by the commit's Converge-* trailers), and the pull
// request that merged the commit with its reviews.
func (o Options) promotion(ctx context.Context, rep *Report) {
	var trailers map[string][]string
	if rep.Commit != nil {
		trailers = promotion.ParseTrailers(rep.Commit.Message)
	}
	list := &convergev1.PromotionList{}
	var pipeline *convergev1.Pipeline
	if err := o.Client.List(ctx, list); err == nil {
		for _, p := range list.Items {
			byMerge := p.Status.PR != nil && p.Status.PR.MergeCommit == rep.Revision && rep.Revision != ""
			byTrailers := first(trailers["Converge-Pipeline"]) == p.Spec.Pipeline && first(trailers["Converge-Stage"]) == p.Spec.Stage &&
				first(trailers["Converge-Freight"]) == p.Spec.Freight.ID && p.Spec.Freight.ID != ""
			if !byMerge && !byTrailers {
				continue
			}
			rep.Promotion = &Promotion{Namespace: p.Namespace, Name: p.Name, Pipeline: p.Spec.Pipeline, Stage: p.Spec.Stage, Phase: p.Status.Phase}
			if p.Status.PR != nil {
				rep.PullRequest = &PullRequest{Number: p.Status.PR.Number, URL: p.Status.PR.URL}
			}
			pl := &convergev1.Pipeline{}
			if o.Client.Get(ctx, types.NamespacedName{Namespace: p.Namespace, Name: p.Spec.Pipeline}, pl) == nil {
				pipeline = pl
			}
			break
		}
	}
	if !o.Forge || rep.Revision == "" || !isSHA(rep.Revision) {
		return
	}
	url, token := "", ""
	if pipeline != nil {
		url = pipeline.Spec.Repo.URL
		sec := &corev1.Secret{}
		key := types.NamespacedName{Namespace: pipeline.Namespace, Name: pipeline.Spec.Repo.SecretRef.Name}
		if err := o.Client.Get(ctx, key, sec); err != nil {
			rep.Notes = append(rep.Notes, fmt.Sprintf("Pipeline %s/%s: forge token: %v", pipeline.Namespace, pipeline.Name, err))
			return
		}
		token = string(sec.Data["token"])
	} else if u, _, ok := o.repoURL(ctx, rep); ok {
		url = u
		if o.trusted(u) {
			token = o.ForgeToken
		}
	}
	if url == "" {
		return
	}
	g, err := forge.NewGitea(url, token)
	if err != nil {
		rep.Notes = append(rep.Notes, fmt.Sprintf("forge of %s: %v", url, err))
		return
	}
	number := 0
	if rep.PullRequest != nil {
		number = rep.PullRequest.Number
	}
	st, found, err := g.PullOfCommit(ctx, rep.Revision)
	switch {
	case err != nil:
		rep.Notes = append(rep.Notes, fmt.Sprintf("pull request of %s: %v", short(rep.Revision), err))
	case found:
		number = st.Number
		rep.PullRequest = &PullRequest{Number: st.Number, URL: st.URL, Title: st.Title, Author: st.Author}
	}
	if number == 0 {
		return
	}
	reviews, err := g.Reviews(ctx, number)
	if err != nil {
		rep.Notes = append(rep.Notes, fmt.Sprintf("reviews of #%d: %v", number, err))
		return
	}
	last := map[string]string{}
	var order []string
	for _, r := range reviews {
		if r.Dismissed || r.State == "PENDING" {
			continue
		}
		if _, ok := last[r.User]; !ok {
			order = append(order, r.User)
		}
		last[r.User] = r.State
	}
	for _, u := range order {
		rep.PullRequest.Reviewers = append(rep.PullRequest.Reviewers, Review{User: u, State: last[u]})
	}
}

// environment names the Pipeline stages the unit deploys.
func (o Options) environment(ctx context.Context, rep *Report) {
	list := &convergev1.PipelineList{}
	if err := o.Client.List(ctx, list); err != nil {
		return
	}
	for _, p := range list.Items {
		for _, st := range p.Spec.Stages {
			for _, t := range st.Targets {
				if t.Kind == rep.Unit.Kind && t.Namespace == rep.Unit.Namespace && t.Name == rep.Unit.Name {
					rep.Environment = append(rep.Environment, fmt.Sprintf("stage %s of Pipeline %s/%s", st.Name, p.Namespace, p.Name))
				}
			}
		}
	}
}

// gitRepository reads GitRepository "namespace/name"'s URL and
// credentials.
func gitRepository(ctx context.Context, c client.Reader, ref string) (string, git.Auth, error) {
	ns, name, _ := strings.Cut(ref, "/")
	repo := &sourcev1.GitRepository{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, repo); err != nil {
		return "", git.Auth{}, fmt.Errorf("GitRepository %s: %w", ref, err)
	}
	auth, err := flux.GitAuth(ctx, c, repo)
	if err != nil {
		return "", git.Auth{}, fmt.Errorf("GitRepository %s: %w", ref, err)
	}
	return repo.Spec.URL, auth, nil
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

func isSHA(s string) bool {
	if len(s) != 40 {
		return false
	}
	for _, r := range s {
		if !strings.ContainsRune("0123456789abcdef", r) {
			return false
		}
	}
	return true
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}
