package controller

import (
	"context"
	"fmt"
	"strings"
	"time"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/repo"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sourcev1 "converge.dev/converge/internal/api/fluxcd/source/v1"
	"converge.dev/converge/internal/dialect/flux"
	"converge.dev/converge/internal/engine"
	"converge.dev/converge/internal/render"
	"converge.dev/converge/internal/source/helmrepo"
	"converge.dev/converge/internal/source/oci"
)

// HelmChartMediaType is the layer of a chart pushed with `helm push`.
const HelmChartMediaType = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"

// chartRequest is a chart and where it comes from, as a HelmRelease's
// chart template, a HelmChart or a chartRef names it.
type chartRequest struct {
	// Kind is HelmRepository, GitRepository or OCIRepository.
	Kind string
	Key  types.NamespacedName
	// Chart is a name in a HelmRepository, a path in a GitRepository;
	// unused for an OCIRepository.
	Chart string
	// Version is a semver range in a HelmRepository; empty is the
	// latest.
	Version string
	// Strategy is the reconcileStrategy: "Revision" gives a chart from
	// Git the commit as build metadata of its version.
	Strategy string
}

func (c chartRequest) String() string {
	if c.Chart == "" {
		return fmt.Sprintf("%s %s", c.Kind, c.Key)
	}
	return fmt.Sprintf("chart %q from %s %s", c.Chart, c.Kind, c.Key)
}

// chartLoader fetches and loads charts from every kind of source; the
// HelmChart and HelmRelease reconcilers share it.
type chartLoader struct {
	client  client.Client
	engine  *engine.Engine
	indexes *indexes
}

// load returns the chart. Its Metadata.Version is the revision Flux
// would publish: the resolved version, with "+<commit>" for a Git chart
// under the Revision strategy.
func (l *chartLoader) load(ctx context.Context, req chartRequest) (*chart.Chart, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	switch req.Kind {
	case "", "HelmRepository":
		return l.fromHelmRepository(ctx, req)
	case "GitRepository":
		return l.fromGitRepository(ctx, req)
	case "OCIRepository":
		return l.fromOCIRepository(ctx, req)
	}
	return nil, fmt.Errorf("%s: kind %q is not supported (HelmRepository, GitRepository and OCIRepository are)", req, req.Kind)
}

// version says which chart and version req resolves to now. A chart in
// an HTTP repository is looked up in the index, without a download; the
// other sources are loaded (their pulls and snapshots are cached).
func (l *chartLoader) version(ctx context.Context, req chartRequest) (name, version string, err error) {
	if req.Kind == "" || req.Kind == "HelmRepository" {
		src, cred, err := l.helmRepository(ctx, req)
		if err != nil {
			return "", "", err
		}
		if src.Spec.Type != "oci" {
			idx, err := l.index(ctx, src, cred)
			if err != nil {
				return "", "", err
			}
			cv, err := idx.Get(req.Chart, req.Version)
			if err != nil {
				return "", "", fmt.Errorf("%s version %q: %w", req, req.Version, err)
			}
			return cv.Name, cv.Version, nil
		}
	}
	c, err := l.load(ctx, req)
	if err != nil {
		return "", "", err
	}
	return c.Metadata.Name, c.Metadata.Version, nil
}

func (l *chartLoader) helmRepository(ctx context.Context, req chartRequest) (*sourcev1.HelmRepository, helmrepo.Credentials, error) {
	repo := &sourcev1.HelmRepository{}
	if err := l.client.Get(ctx, req.Key, repo); err != nil {
		return nil, helmrepo.Credentials{}, fmt.Errorf("HelmRepository %s: %w", req.Key, err)
	}
	user, pass, err := secretCredentials(ctx, l.client, repo.Namespace, repo.Spec.SecretRef)
	if err != nil {
		return nil, helmrepo.Credentials{}, fmt.Errorf("HelmRepository %s: %w", req.Key, err)
	}
	return repo, helmrepo.Credentials{Username: user, Password: pass}, nil
}

// index is the repository's index as the HelmRepository reconciler last
// read it, or read now.
func (l *chartLoader) index(ctx context.Context, src *sourcev1.HelmRepository, cred helmrepo.Credentials) (*repo.IndexFile, error) {
	if idx := l.indexes.get(src.Spec.URL); idx != nil {
		return idx, nil
	}
	idx, _, err := helmrepo.Index(ctx, src.Spec.URL, cred)
	if err != nil {
		return nil, err
	}
	l.indexes.put(src.Spec.URL, idx)
	return idx, nil
}

func (l *chartLoader) fromHelmRepository(ctx context.Context, req chartRequest) (*chart.Chart, error) {
	repo, cred, err := l.helmRepository(ctx, req)
	if err != nil {
		return nil, err
	}
	if repo.Spec.Type == "oci" {
		// A chart in a registry is <url>/<name>, its versions are tags.
		version := req.Version
		if version == "" {
			version = "*"
		}
		u := engine.Unit{RepoURL: strings.TrimSuffix(repo.Spec.URL, "/") + "/" + req.Chart, Revision: "semver:" + version,
			OCIMediaType: HelmChartMediaType, OCIAuth: oci.Auth{Username: cred.Username, Password: cred.Password, Insecure: repo.Spec.Insecure}}
		snap, err := l.engine.Snapshot(ctx, u)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", req, err)
		}
		c, err := helmrepo.LoadDir(snap.Dir)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", req, err)
		}
		return c, nil
	}
	idx, err := l.index(ctx, repo, cred)
	if err != nil {
		return nil, err
	}
	return helmrepo.Chart(ctx, repo.Spec.URL, cred, idx, req.Chart, req.Version)
}

func (l *chartLoader) fromGitRepository(ctx context.Context, req chartRequest) (*chart.Chart, error) {
	repo := &sourcev1.GitRepository{}
	if err := getReady(ctx, l.client, req, repo, &repo.Status.Conditions, &repo.Status.Artifact); err != nil {
		return nil, err
	}
	auth, err := flux.GitAuth(ctx, l.client, repo)
	if err != nil {
		return nil, fmt.Errorf("GitRepository %s: %w", req.Key, err)
	}
	incs, err := gitIncludes(ctx, l.client, repo)
	if err != nil {
		return nil, err
	}
	commit := flux.CommitOf(repo.Status.Artifact.Revision)
	snap, err := l.engine.Snapshot(ctx, engine.Unit{RepoURL: repo.Spec.URL, Revision: commit, Auth: auth, Includes: incs})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", req, err)
	}
	dir, err := render.Join(snap.Dir, req.Chart)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", req, err)
	}
	c, err := helmrepo.LoadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("%s at %.12s: %w", req, commit, err)
	}
	if req.Strategy == "Revision" {
		// The commit joins the version, so a new commit is a new
		// release even when Chart.yaml did not change.
		c.Metadata.Version += "+" + commit[:min(12, len(commit))]
	}
	return c, nil
}

func (l *chartLoader) fromOCIRepository(ctx context.Context, req chartRequest) (*chart.Chart, error) {
	repo := &sourcev1.OCIRepository{}
	if err := getReady(ctx, l.client, req, repo, &repo.Status.Conditions, &repo.Status.Artifact); err != nil {
		return nil, err
	}
	auth, err := ociAuth(ctx, l.client, repo)
	if err != nil {
		return nil, fmt.Errorf("OCIRepository %s: %w", req.Key, err)
	}
	mediaType := HelmChartMediaType
	if ls := repo.Spec.LayerSelector; ls != nil && ls.MediaType != "" {
		mediaType = ls.MediaType
	}
	snap, err := l.engine.Snapshot(ctx, engine.Unit{RepoURL: repo.Spec.URL, Revision: repo.Status.Artifact.Digest,
		OCIMediaType: mediaType, OCIAuth: auth})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", req, err)
	}
	c, err := helmrepo.LoadDir(snap.Dir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", req, err)
	}
	return c, nil
}

// getReady reads the source req names into obj and refuses one without
// a Ready artifact; conds and artifact point into obj's status.
func getReady(ctx context.Context, c client.Client, req chartRequest, obj client.Object, conds *[]metav1.Condition, artifact **sourcev1.Artifact) error {
	if err := c.Get(ctx, req.Key, obj); err != nil {
		return fmt.Errorf("%s %s: %w", req.Kind, req.Key, err)
	}
	if *artifact == nil || !meta.IsStatusConditionTrue(*conds, flux.ReadyCondition) {
		return fmt.Errorf("%s %s is not ready", req.Kind, req.Key)
	}
	return nil
}

// secretCredentials reads username and password from a Secret, as Flux
// names the keys; no Secret is anonymous.
func secretCredentials(ctx context.Context, c client.Client, namespace string, ref *sourcev1.LocalObjectReference) (user, pass string, err error) {
	if ref == nil {
		return "", "", nil
	}
	sec := &corev1.Secret{}
	key := types.NamespacedName{Namespace: namespace, Name: ref.Name}
	if err := c.Get(ctx, key, sec); err != nil {
		return "", "", fmt.Errorf("secretRef %s: %w", key, err)
	}
	return string(sec.Data["username"]), string(sec.Data["password"]), nil
}
