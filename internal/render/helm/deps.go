package helm

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"

	"converge.dev/converge/internal/render"
	"converge.dev/converge/internal/source/helmrepo"
	"converge.dev/converge/internal/source/oci"
)

// chartMediaType is the layer of a Helm chart pushed to an OCI registry.
const chartMediaType = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"

// depTimeout bounds fetching one chart's dependencies.
const depTimeout = 2 * time.Minute

// buildDependencies adds to chrt, in memory, each dependency its
// Chart.yaml lists that its charts/ folder does not hold, as Argo CD's
// `helm dependency build` does: from an http(s) chart repository, an
// oci:// registry, or a file:// folder inside the repository. Nothing
// is written to the snapshot. A repository named by alias ("@name",
// "alias:name") refers to Argo CD's own settings, which converge does
// not have: it is an error naming it.
func buildDependencies(root, dir, rel string, chrt *chart.Chart) error {
	ctx, cancel := context.WithTimeout(context.Background(), depTimeout)
	defer cancel()
	have := map[string]bool{}
	for _, d := range chrt.Dependencies() {
		have[d.Name()] = true
	}
	for _, dep := range chrt.Metadata.Dependencies {
		if have[dep.Name] {
			continue
		}
		sub, err := fetchDependency(ctx, root, dir, dep)
		if err != nil {
			return fmt.Errorf("%s: dependency %s %s from %q: %w", rel, dep.Name, dep.Version, dep.Repository, err)
		}
		if sub.Name() != dep.Name {
			return fmt.Errorf("%s: dependency %s from %q: the chart there is named %s", rel, dep.Name, dep.Repository, sub.Name())
		}
		chrt.AddDependency(sub)
		have[dep.Name] = true
	}
	return nil
}

func fetchDependency(ctx context.Context, root, dir string, dep *chart.Dependency) (*chart.Chart, error) {
	repo := dep.Repository
	switch {
	case repo == "":
		return nil, fmt.Errorf("no repository, and not in charts/")
	case strings.HasPrefix(repo, "@"), strings.HasPrefix(repo, "alias:"):
		return nil, fmt.Errorf("a repository alias refers to repositories configured in Argo CD, which converge does not have: write the repository's URL")
	case strings.HasPrefix(repo, "file://"):
		relDir, err := filepath.Rel(root, dir)
		if err != nil {
			return nil, err
		}
		path, err := render.Join(root, filepath.Join(relDir, strings.TrimPrefix(repo, "file://")))
		if err != nil {
			return nil, err
		}
		if err := render.CheckTree(root, path, 0); err != nil {
			return nil, err
		}
		return loader.Load(path)
	case strings.HasPrefix(repo, "http://"), strings.HasPrefix(repo, "https://"):
		idx, _, err := helmrepo.Index(ctx, repo, helmrepo.Credentials{})
		if err != nil {
			return nil, err
		}
		return helmrepo.Chart(ctx, repo, helmrepo.Credentials{}, idx, dep.Name, dep.Version)
	case strings.HasPrefix(repo, "oci://"):
		cache, err := os.MkdirTemp("", "converge-helm-dep-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(cache)
		u := strings.TrimSuffix(repo, "/") + "/" + dep.Name
		// Plain HTTP only for a registry on this machine, as a local or
		// test registry is; anything else must speak TLS.
		insecure := loopback(u)
		snap, err := oci.New(oci.Options{CacheDir: cache, Insecure: insecure}).Fetch(ctx, u, oci.Ref{SemVer: dep.Version}, chartMediaType, oci.Auth{Insecure: insecure})
		if err != nil {
			return nil, err
		}
		return helmrepo.LoadDir(snap.Dir)
	}
	return nil, fmt.Errorf("unknown repository scheme (http, https, oci and file are fetched)")
}

func loopback(rawURL string) bool {
	u, err := url.Parse(rawURL)
	if err != nil {
		return false
	}
	host := u.Hostname()
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
