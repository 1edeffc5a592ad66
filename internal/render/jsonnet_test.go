package render_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"converge.dev/converge/internal/render"
)

func TestJsonnet(t *testing.T) {
	dir := filepath.Join(repo, "jsonnet", "app")
	jo := &render.JsonnetOptions{
		ExtVars: []render.JsonnetVar{{Name: "app", Value: "${ARGOCD_APP_NAME}"}, {Name: "env", Value: "prod-$$1"}},
		TLAs:    []render.JsonnetVar{{Name: "replicas", Value: "1 + 2", Code: true}},
		Libs:    []string{"jsonnet/vendor/k"},
		Env:     map[string]string{"ARGOCD_APP_NAME": "shop"},
	}
	tests := []struct {
		name             string
		o                render.DirectoryOptions
		want             string
		replicas, config string
	}{
		{"yaml only without jsonnet (Flux)", render.DirectoryOptions{}, "ConfigMap/plain@jsonnet/app/plain.yaml", "", ""},
		{"jsonnet files too (Argo CD)", render.DirectoryOptions{Jsonnet: jo},
			"ConfigMap/shop-config@jsonnet/app/main.jsonnet Deployment/shop@jsonnet/app/main.jsonnet ConfigMap/plain@jsonnet/app/plain.yaml ConfigMap/single@jsonnet/app/single.jsonnet",
			"3", "prod-$1"},
		{"include", render.DirectoryOptions{Jsonnet: jo, IncludeGlob: "{single.jsonnet,*.yaml}"},
			"ConfigMap/plain@jsonnet/app/plain.yaml ConfigMap/single@jsonnet/app/single.jsonnet", "", ""},
		{"exclude", render.DirectoryOptions{Jsonnet: jo, ExcludeGlob: "*main*"},
			"ConfigMap/plain@jsonnet/app/plain.yaml ConfigMap/single@jsonnet/app/single.jsonnet", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := render.RenderDirectory(repo, dir, tt.o)
			if err != nil {
				t.Fatal(err)
			}
			if got := names(objs); got != tt.want {
				t.Fatalf("got  %s\nwant %s", got, tt.want)
			}
			for _, d := range objs {
				switch d.Object.GetName() {
				case "shop":
					if r, _, _ := unstructuredInt(d.Object.Object, "spec", "replicas"); tt.replicas != "" && r != 3 {
						t.Errorf("tla replicas = %d, want 3", r)
					}
					if d.Object.GetLabels()["tier"] != "web" {
						t.Errorf("relative import not read: labels %v", d.Object.GetLabels())
					}
				case "shop-config":
					if env := d.Object.Object["data"].(map[string]any)["env"]; env != tt.config {
						t.Errorf("extVar env = %v, want %q", env, tt.config)
					}
				}
			}
		})
	}
}

// TestJsonnetRefused: a Jsonnet file reads only the repository, and its
// output must be objects; neither is ever an empty success.
func TestJsonnetRefused(t *testing.T) {
	tests := []struct {
		dir  string
		want error
		text string
	}{
		{"abs", render.ErrPathEscapes, `jsonnet-escape/abs/a.jsonnet: jsonnet:`},
		{"climb", render.ErrPathEscapes, `jsonnet-escape/climb/a.jsonnet: jsonnet:`},
		{"link", render.ErrSymlinkEscapes, `jsonnet-escape/link/outside.libsonnet`},
		{"notobject", render.ErrJsonnetOutput, `jsonnet-escape/notobject/a.jsonnet: jsonnet output is not an object or a list of objects: found string`},
	}
	for _, tt := range tests {
		t.Run(tt.dir, func(t *testing.T) {
			objs, err := render.RenderDirectory(repo, filepath.Join(repo, "jsonnet-escape", tt.dir), render.DirectoryOptions{Jsonnet: &render.JsonnetOptions{}})
			if err == nil {
				t.Fatalf("rendered %d objects, want an error", len(objs))
			}
			// go-jsonnet formats import errors as text: the sentinel
			// survives for the checks made before it runs.
			if !errors.Is(err, tt.want) && !strings.Contains(err.Error(), tt.want.Error()) {
				t.Errorf("error %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.text) {
				t.Errorf("error %q does not name %q", err, tt.text)
			}
		})
	}
}
