package controller

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"converge.dev/converge/internal/dialect/appset"
	"converge.dev/converge/internal/forge"
)

// listings are forge answers kept for a while, by what was asked.
type listings struct {
	sync.Mutex
	byKey map[string]listing
}

type listing struct {
	at    time.Time
	every time.Duration
	value any
}

// cached returns key's answer if it is younger than every and no refresh
// is asked for; else it asks (list) and keeps the answer. Errors are not
// kept: the next round asks again.
func cached[T any](l *listings, key string, every time.Duration, refresh bool, list func() (T, error)) (T, error) {
	l.Lock()
	got, ok := l.byKey[key]
	l.Unlock()
	if ok && !refresh && time.Since(got.at) < every {
		return got.value.(T), nil
	}
	v, err := list()
	if err != nil {
		return v, err
	}
	l.Lock()
	defer l.Unlock()
	if l.byKey == nil {
		l.byKey = map[string]listing{}
	}
	now := time.Now()
	for k, old := range l.byKey {
		// Answers for generators since removed would stay forever.
		if now.Sub(old.at) > old.every {
			delete(l.byKey, k)
		}
	}
	l.byKey[key] = listing{at: now, every: every, value: v}
	return v, nil
}

// forgeInputs are the generators' view of Gitea for a set in namespace:
// tokens are read from that namespace, answers kept for the generator's
// requeueAfterSeconds unless refresh.
func (r *ApplicationSetReconciler) forgeInputs(namespace string, refresh bool) appset.Inputs {
	scmKey := func(src appset.SCMSource, more ...string) string {
		return strings.Join(append([]string{"scm", namespace, src.API, src.Owner, src.TokenSecret, src.TokenKey,
			strconv.FormatBool(src.Insecure), strconv.FormatBool(src.AllBranches)}, more...), "\x00")
	}
	scmForge := func(ctx context.Context, src appset.SCMSource, repo string) (*forge.Gitea, error) {
		return r.gitea(ctx, namespace, src.API, src.Owner, repo, src.TokenSecret, src.TokenKey, src.Insecure)
	}
	return appset.Inputs{
		PullRequests: func(ctx context.Context, src appset.PullRequestSource) ([]appset.PullRequest, error) {
			key := strings.Join([]string{"pulls", namespace, src.API, src.Owner, src.Repo, src.TokenSecret, src.TokenKey, strconv.FormatBool(src.Insecure)}, "\x00")
			return cached(&r.listings, key, src.Every, refresh, func() ([]appset.PullRequest, error) {
				g, err := r.gitea(ctx, namespace, src.API, src.Owner, src.Repo, src.TokenSecret, src.TokenKey, src.Insecure)
				if err != nil {
					return nil, err
				}
				open, err := g.OpenPulls(ctx)
				if err != nil {
					return nil, fmt.Errorf("gitea %s/%s: %w", src.Owner, src.Repo, err)
				}
				out := make([]appset.PullRequest, 0, len(open))
				for _, p := range open {
					out = append(out, appset.PullRequest{Number: p.Number, Title: p.Title, Branch: p.HeadBranch, TargetBranch: p.BaseBranch,
						HeadSHA: p.Head, Author: p.Author, Labels: p.Labels})
				}
				return out, nil
			})
		},
		Repositories: func(ctx context.Context, src appset.SCMSource) ([]appset.Repository, error) {
			return cached(&r.listings, scmKey(src), src.Every, refresh, func() ([]appset.Repository, error) {
				g, err := scmForge(ctx, src, "")
				if err != nil {
					return nil, err
				}
				repos, err := g.OwnerRepos(ctx)
				if err != nil {
					return nil, fmt.Errorf("gitea owner %s: %w", src.Owner, err)
				}
				var out []appset.Repository
				for _, repo := range repos {
					if repo.Empty {
						// No branch to deploy from yet.
						continue
					}
					g.Repo = repo.Name
					labels, err := g.Labels(ctx)
					if err != nil {
						return nil, fmt.Errorf("gitea %s/%s: %w", src.Owner, repo.Name, err)
					}
					out = append(out, appset.Repository{Organization: src.Owner, Name: repo.Name, ID: repo.ID, SSHURL: repo.SSHURL,
						HTTPSURL: repo.HTML, Branch: repo.DefaultBranch, Labels: labels})
				}
				return out, nil
			})
		},
		Branches: func(ctx context.Context, src appset.SCMSource, repo appset.Repository) ([]appset.Repository, error) {
			return cached(&r.listings, scmKey(src, repo.Name), src.Every, refresh, func() ([]appset.Repository, error) {
				g, err := scmForge(ctx, src, repo.Name)
				if err != nil {
					return nil, err
				}
				var branches []forge.Branch
				if src.AllBranches {
					branches, err = g.Branches(ctx)
				} else {
					var b forge.Branch
					b, err = g.Branch(ctx, repo.Branch)
					branches = []forge.Branch{b}
				}
				if err != nil {
					return nil, err
				}
				out := make([]appset.Repository, 0, len(branches))
				for _, b := range branches {
					at := repo
					at.Branch, at.SHA = b.Name, b.Commit
					out = append(out, at)
				}
				return out, nil
			})
		},
		HasPath: func(ctx context.Context, src appset.SCMSource, repo appset.Repository, path string) (bool, error) {
			// By commit: the answer for one commit never changes.
			return cached(&r.listings, scmKey(src, repo.Name, repo.SHA, path), src.Every, false, func() (bool, error) {
				g, err := scmForge(ctx, src, repo.Name)
				if err != nil {
					return false, err
				}
				return g.HasPath(ctx, repo.SHA, path)
			})
		},
	}
}

// gitea is a client for owner/repo on the forge at api, with the token
// that secret's key holds in namespace ("" for none).
func (r *ApplicationSetReconciler) gitea(ctx context.Context, namespace, api, owner, repo, secret, key string, insecure bool) (*forge.Gitea, error) {
	token := ""
	if secret != "" {
		sec := &corev1.Secret{}
		name := types.NamespacedName{Namespace: namespace, Name: secret}
		if err := r.Client.Get(ctx, name, sec); err != nil {
			return nil, fmt.Errorf("gitea.tokenRef %s: %w", name, err)
		}
		v, ok := sec.Data[key]
		if !ok {
			return nil, fmt.Errorf("gitea.tokenRef %s: no key %q", name, key)
		}
		token = string(v)
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	if insecure {
		transport.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // the generator's insecure: true asks for it
	}
	return &forge.Gitea{API: strings.TrimRight(api, "/") + "/api/v1", Owner: owner, Repo: repo, Token: token,
		Client: &http.Client{Transport: transport, Timeout: time.Minute}}, nil
}
