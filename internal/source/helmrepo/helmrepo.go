// Package helmrepo reads Helm chart repositories over HTTP: an index,
// and a chart resolved in it, downloaded with bounded size and checked
// against the index's digest. Flux's HelmRepository and HelmChart, and
// a chart's own dependencies, are fetched with it.
package helmrepo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/repo"
	"sigs.k8s.io/yaml"
)

// maxDownload bounds an index or a chart archive.
const maxDownload = 64 << 20

var httpClient = &http.Client{Timeout: time.Minute}

// Credentials are a repository's basic-auth username and password;
// the zero value is anonymous.
type Credentials struct {
	Username, Password string
}

func get(ctx context.Context, u string, cred Credentials) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	if cred != (Credentials{}) {
		req.SetBasicAuth(cred.Username, cred.Password)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", redact(u), resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxDownload+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxDownload {
		return nil, fmt.Errorf("GET %s: larger than %d bytes", redact(u), maxDownload)
	}
	return data, nil
}

func redact(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "<unparsable URL>"
	}
	return p.Redacted()
}

// Index reads a repository's index.yaml and returns it with its digest.
func Index(ctx context.Context, repoURL string, cred Credentials) (*repo.IndexFile, string, error) {
	data, err := get(ctx, strings.TrimSuffix(repoURL, "/")+"/index.yaml", cred)
	if err != nil {
		return nil, "", fmt.Errorf("helm repository %s: %w", redact(repoURL), err)
	}
	idx := &repo.IndexFile{}
	if err := yaml.Unmarshal(data, idx); err != nil {
		return nil, "", fmt.Errorf("helm repository %s: index.yaml: %w", redact(repoURL), err)
	}
	idx.SortEntries()
	sum := sha256.Sum256(data)
	return idx, "sha256:" + hex.EncodeToString(sum[:]), nil
}

// Chart resolves a version (a semver range, or "" for the latest) in an
// index and downloads and loads that chart. Credentials go only to the
// repository's own host, as Flux does without passCredentials.
func Chart(ctx context.Context, repoURL string, cred Credentials, idx *repo.IndexFile, name, version string) (*chart.Chart, error) {
	cv, err := idx.Get(name, version)
	if err != nil {
		return nil, fmt.Errorf("chart %s version %q in %s: %w", name, version, redact(repoURL), err)
	}
	if len(cv.URLs) == 0 {
		return nil, fmt.Errorf("chart %s %s: no download URL in the index", name, cv.Version)
	}
	u, err := url.Parse(cv.URLs[0])
	if err != nil {
		return nil, fmt.Errorf("chart %s %s: %w", name, cv.Version, err)
	}
	if !u.IsAbs() {
		base, err := url.Parse(strings.TrimSuffix(repoURL, "/") + "/")
		if err != nil {
			return nil, err
		}
		u = base.ResolveReference(u)
	}
	if base, err := url.Parse(repoURL); err != nil || base.Host != u.Host {
		cred = Credentials{}
	}
	data, err := get(ctx, u.String(), cred)
	if err != nil {
		return nil, fmt.Errorf("chart %s %s: %w", name, cv.Version, err)
	}
	if cv.Digest != "" {
		sum := sha256.Sum256(data)
		if hex.EncodeToString(sum[:]) != cv.Digest {
			return nil, fmt.Errorf("chart %s %s: digest mismatch with the index", name, cv.Version)
		}
	}
	c, err := loader.LoadArchive(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("chart %s %s: %w", name, cv.Version, err)
	}
	return c, nil
}

// LoadDir loads the chart in dir, or in its only sub-folder holding a
// Chart.yaml: the layout of an extracted chart archive.
func LoadDir(dir string) (*chart.Chart, error) {
	if _, err := os.Stat(filepath.Join(dir, "Chart.yaml")); err != nil {
		entries, rerr := os.ReadDir(dir)
		if rerr != nil {
			return nil, rerr
		}
		var found []string
		for _, e := range entries {
			if _, err := os.Stat(filepath.Join(dir, e.Name(), "Chart.yaml")); e.IsDir() && err == nil {
				found = append(found, e.Name())
			}
		}
		if len(found) != 1 {
			return nil, fmt.Errorf("%s: no Chart.yaml, and %d chart folders under it (want one)", filepath.Base(dir), len(found))
		}
		dir = filepath.Join(dir, found[0])
	}
	return loader.LoadDir(dir)
}
