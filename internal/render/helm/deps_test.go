package helm_test

import (
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	helmregistry "helm.sh/helm/v3/pkg/registry"
	helmrepo "helm.sh/helm/v3/pkg/repo"

	"converge.dev/converge/internal/render"
	"converge.dev/converge/internal/render/helm"
)

func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// subchart writes a chart named name whose one ConfigMap is named after
// it, and returns its folder.
func subchart(t *testing.T, name, version string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	writeFiles(t, dir, map[string]string{
		"Chart.yaml":        "apiVersion: v2\nname: " + name + "\nversion: " + version + "\n",
		"templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: {{ .Release.Name }}-" + name + "}\ndata: {version: " + version + "}\n",
	})
	return dir
}

// TestDependenciesAreBuilt: a chart whose dependencies are not in its
// charts/ folder gets them, as Argo CD's `helm dependency build` does:
// a version range from a Helm repository (real HTTP on loopback), an
// exact version from an OCI registry (pushed as `helm push` does), and a
// file:// folder of the same repository, under its alias. Nothing is
// written to the snapshot. A repository alias, or a file:// path that
// leaves the repository, is an error naming it.
func TestDependenciesAreBuilt(t *testing.T) {
	// A Helm repository with redis 1.1.0 and 1.2.0.
	repoDir := t.TempDir()
	for _, v := range []string{"1.1.0", "1.2.0"} {
		c, err := loader.LoadDir(subchart(t, "redis", v))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := chartutil.Save(c, repoDir); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(repoDir)))
	t.Cleanup(srv.Close)
	idx, err := helmrepo.IndexDirectory(repoDir, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if err := idx.WriteFile(filepath.Join(repoDir, "index.yaml"), 0o644); err != nil {
		t.Fatal(err)
	}
	// An OCI registry with postgres 2.0.0.
	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(reg.Close)
	host := strings.TrimPrefix(reg.URL, "http://")
	rc, err := helmregistry.NewClient(helmregistry.ClientOptPlainHTTP(), helmregistry.ClientOptCredentialsFile(filepath.Join(t.TempDir(), "config.json")))
	if err != nil {
		t.Fatal(err)
	}
	pg, err := loader.LoadDir(subchart(t, "postgres", "2.0.0"))
	if err != nil {
		t.Fatal(err)
	}
	archive, err := chartutil.Save(pg, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rc.Push(data, host+"/charts/postgres:2.0.0"); err != nil {
		t.Fatal(err)
	}

	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"app/Chart.yaml": "apiVersion: v2\nname: app\nversion: 0.1.0\ndependencies:\n" +
			"- {name: redis, version: 1.x, repository: \"" + srv.URL + "\"}\n" +
			"- {name: postgres, version: 2.0.0, repository: \"oci://" + host + "/charts\"}\n" +
			"- {name: common, version: 0.1.0, repository: \"file://../common\", alias: shared}\n",
		"app/templates/cm.yaml":    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app}\n",
		"common/Chart.yaml":        "apiVersion: v2\nname: common\nversion: 0.1.0\n",
		"common/templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: {{ .Release.Name }}-{{ .Chart.Name }}}\n",
	})
	for name, renderIt := range map[string]func() ([]any, error){
		"in process": func() ([]any, error) {
			objs, err := helm.Render(root, filepath.Join(root, "app"), helm.Options{ReleaseName: "r"})
			out := make([]any, len(objs))
			for i, o := range objs {
				out[i] = o.Object.GetName() + "@" + o.Source.File
			}
			return out, err
		},
		"in the child": func() ([]any, error) {
			objs, err := child(t).Render(context.Background(), root, filepath.Join(root, "app"), helm.Options{ReleaseName: "r"})
			out := make([]any, len(objs))
			for i, o := range objs {
				out[i] = o.Object.GetName() + "@" + o.Source.File
			}
			return out, err
		},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := renderIt()
			if err != nil {
				t.Fatal(err)
			}
			joined := ""
			for _, g := range got {
				joined += g.(string) + " "
			}
			for _, want := range []string{"app@app/templates/cm.yaml", "r-redis@app/charts/redis/templates/cm.yaml",
				"r-postgres@app/charts/postgres/templates/cm.yaml", "r-shared@app/charts/shared/templates/cm.yaml"} {
				if !strings.Contains(joined, want) {
					t.Errorf("rendered %s\nmissing %s", joined, want)
				}
			}
		})
	}
	if _, err := os.Stat(filepath.Join(root, "app", "charts")); !os.IsNotExist(err) {
		t.Error("the render wrote charts/ into the snapshot")
	}

	for _, tc := range []struct{ repo, want string }{
		{"@bitnami", "repository alias refers to repositories configured in Argo CD"},
		{"file://../../outside", render.ErrPathEscapes.Error()},
		{srv.URL, `no chart version found for redis-9.x`},
	} {
		writeFiles(t, root, map[string]string{"bad/Chart.yaml": "apiVersion: v2\nname: bad\nversion: 0.1.0\ndependencies:\n" +
			"- {name: redis, version: 9.x, repository: \"" + tc.repo + "\"}\n"})
		_, err := helm.Render(root, filepath.Join(root, "bad"), helm.Options{})
		if !errors.Is(err, helm.ErrDependenciesMissing) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "dependency redis") {
			t.Errorf("repository %s: got %v, want ErrDependenciesMissing naming redis and %q", tc.repo, err, tc.want)
		}
	}
}
