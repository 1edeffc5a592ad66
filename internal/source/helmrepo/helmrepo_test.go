package helmrepo

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/repo"
)

// serve packages a chart into a folder served over HTTP with its
// index, behind basic auth when user is set; seen records each request.
func serve(t *testing.T, user, pass string, seen *[]string) string {
	t.Helper()
	dir := t.TempDir()
	c := &chart.Chart{Metadata: &chart.Metadata{APIVersion: "v2", Name: "demo", Version: "1.2.3"}}
	if _, err := chartutil.Save(c, dir); err != nil {
		t.Fatal(err)
	}
	files := http.FileServer(http.Dir(dir))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		*seen = append(*seen, r.URL.Path+" auth="+map[bool]string{true: u, false: "-"}[ok])
		if user != "" && (u != user || p != pass) {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		files.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	idx, err := repo.IndexDirectory(dir, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if err := idx.WriteFile(filepath.Join(dir, "index.yaml"), 0o644); err != nil {
		t.Fatal(err)
	}
	return srv.URL
}

func TestCredentials(t *testing.T) {
	ctx := context.Background()
	var seen []string
	url := serve(t, "reader", "s3cret", &seen)
	if _, _, err := Index(ctx, url, Credentials{}); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("anonymous index: %v, want 401", err)
	}
	idx, _, err := Index(ctx, url, Credentials{Username: "reader", Password: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := Chart(ctx, url, Credentials{Username: "reader", Password: "s3cret"}, idx, "demo", "1.x")
	if err != nil || c.Metadata.Version != "1.2.3" {
		t.Fatalf("chart: %v %v", c, err)
	}

	// A chart hosted elsewhere does not get the repository's password.
	var other []string
	elsewhere := serve(t, "", "", &other)
	idx.Entries["demo"][0].URLs = []string{elsewhere + "/demo-1.2.3.tgz"}
	idx.Entries["demo"][0].Digest = ""
	if _, err := Chart(ctx, url, Credentials{Username: "reader", Password: "s3cret"}, idx, "demo", ""); err != nil {
		t.Fatal(err)
	}
	if len(other) != 1 || other[0] != "/demo-1.2.3.tgz auth=-" {
		t.Errorf("requests to the other host: %v, want one without credentials", other)
	}
	for _, e := range append(seen, other...) {
		if strings.Contains(e, "s3cret") {
			t.Errorf("password in a request path: %s", e)
		}
	}
}

func TestLoadDir(t *testing.T) {
	dir := t.TempDir()
	c := &chart.Chart{Metadata: &chart.Metadata{APIVersion: "v2", Name: "demo", Version: "0.1.0"}}
	if err := chartutil.SaveDir(c, dir); err != nil {
		t.Fatal(err)
	}
	// The chart folder itself, and its parent (an extracted archive).
	for _, d := range []string{filepath.Join(dir, "demo"), dir} {
		got, err := LoadDir(d)
		if err != nil || got.Metadata.Name != "demo" {
			t.Errorf("LoadDir(%s): %v %v", d, got, err)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "other"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := chartutil.SaveDir(&chart.Chart{Metadata: &chart.Metadata{APIVersion: "v2", Name: "other", Version: "0.1.0"}}, dir); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadDir(dir); err == nil || !strings.Contains(err.Error(), "2 chart folders") {
		t.Errorf("two charts: %v, want an error counting them", err)
	}
}
