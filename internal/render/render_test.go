package render_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart/loader"

	"converge.dev/converge/internal/object"
	"converge.dev/converge/internal/render"
	"converge.dev/converge/internal/render/helm"
	"converge.dev/converge/internal/render/kustomize"
)

var repo, _ = filepath.Abs(filepath.Join("testdata", "repo"))

// names lists kind/name@source for each object, in order.
func names(objs []object.Decoded) string {
	var s []string
	for _, d := range objs {
		s = append(s, d.Object.GetKind()+"/"+d.Object.GetName()+"@"+d.Source.File)
	}
	return strings.Join(s, " ")
}

func TestDetect(t *testing.T) {
	for dir, want := range map[string]render.Kind{
		"plain": render.Directory, "kustomize/overlays/dev": render.Kustomize, "chart": render.Helm,
	} {
		if got := render.Detect(filepath.Join(repo, dir)); got != want {
			t.Errorf("Detect(%s) = %s, want %s", dir, got, want)
		}
	}
}

func TestDirectory(t *testing.T) {
	tests := []struct {
		recurse bool
		want    string
	}{
		{false, "ConfigMap/a@plain/a.yaml ConfigMap/a2@plain/a.yaml"},
		{true, "ConfigMap/a@plain/a.yaml ConfigMap/a2@plain/a.yaml ConfigMap/b@plain/sub/b.json ConfigMap/c@plain/sub/deeper/c.yml"},
	}
	for _, tt := range tests {
		objs, err := render.RenderDirectory(repo, filepath.Join(repo, "plain"), render.DirectoryOptions{Recurse: tt.recurse})
		if err != nil {
			t.Fatal(err)
		}
		if got := names(objs); got != tt.want {
			t.Errorf("recurse=%t:\n got %s\nwant %s", tt.recurse, got, tt.want)
		}
	}
}

func TestKustomize(t *testing.T) {
	objs, err := kustomize.Render(repo, filepath.Join(repo, "kustomize/overlays/dev"), kustomize.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := names(objs), "Deployment/dev-orders-api@kustomize/overlays/dev/kustomization.yaml"; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	d := objs[0].Object
	replicas, _, _ := unstructuredInt(d.Object, "spec", "replicas")
	image := d.Object["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)["image"]
	if d.GetNamespace() != "orders-dev" || replicas != 2 || image != "registry.example.com/orders-api:1.4.2" {
		t.Errorf("overlay not applied: namespace %q replicas %d image %v", d.GetNamespace(), replicas, image)
	}
}

func TestHelm(t *testing.T) {
	objs, err := helm.Render(repo, filepath.Join(repo, "chart"), helm.Options{
		ReleaseName: "shop", Namespace: "prod", ValueFiles: []string{"../values-prod.yaml"},
		Values: map[string]any{"image": "example/web:2.0"}, KubeVersion: "v1.37.2",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "CustomResourceDefinition/widgets.test.converge.dev@chart/crds/widget.yaml Deployment/shop@chart/templates/deployment.yaml" +
		" Job/shop-migrate@chart/templates/hook.yaml"
	if got := names(objs); got != want {
		t.Fatalf("got %s\nwant %s (hooks last, with their annotations)", got, want)
	}
	if h := objs[2].Object.GetAnnotations()["helm.sh/hook"]; h != "pre-install" {
		t.Errorf("hook annotation %q, want pre-install", h)
	}
	d := objs[1].Object
	replicas, _, _ := unstructuredInt(d.Object, "spec", "replicas")
	if d.GetNamespace() != "prod" || replicas != 5 || d.GetAnnotations()["kube-version"] != "v1.37.2" {
		t.Errorf("values or capabilities not applied: ns %q replicas %d annotations %v", d.GetNamespace(), replicas, d.GetAnnotations())
	}
	if !strings.Contains(names(objs), "shop") {
		t.Error("release name not used")
	}
	// The chart's kubeVersion constraint is checked against the cluster's.
	_, err = helm.Render(repo, filepath.Join(repo, "chart"), helm.Options{KubeVersion: "v1.25.0"})
	if err == nil || !strings.Contains(err.Error(), "chart: helm template") {
		t.Errorf("kubeVersion 1.25 against >=1.30: got %v, want an error naming the chart", err)
	}
}

// TestHelmLoadedChart: a chart loaded from a repository or an OCI
// artifact renders as the same chart in a folder does, and values files
// (which it has no folder for) are refused by name.
func TestHelmLoadedChart(t *testing.T) {
	chrt, err := loader.Load(filepath.Join(repo, "chart"))
	if err != nil {
		t.Fatal(err)
	}
	o := helm.Options{ReleaseName: "shop", Namespace: "prod", Values: map[string]any{"replicas": 7}, KubeVersion: "v1.37.2"}
	objs, err := helm.RenderChart(chrt, o)
	if err != nil {
		t.Fatal(err)
	}
	want := "CustomResourceDefinition/widgets.test.converge.dev@chart web/crds/widget.yaml Deployment/shop@chart web/templates/deployment.yaml" +
		" Job/shop-migrate@chart web/templates/hook.yaml"
	if got := names(objs); got != want {
		t.Fatalf("got %s\nwant %s", got, want)
	}
	replicas, _, _ := unstructuredInt(objs[1].Object.Object, "spec", "replicas")
	if objs[1].Object.GetNamespace() != "prod" || replicas != 7 {
		t.Errorf("values not applied: ns %q replicas %d", objs[1].Object.GetNamespace(), replicas)
	}
	if _, err := helm.RenderChart(chrt, helm.Options{ValueFiles: []string{"values-prod.yaml"}}); err == nil || !strings.Contains(err.Error(), "values files [values-prod.yaml]") {
		t.Errorf("values files with a loaded chart: got %v, want a refusal naming them", err)
	}
}

// TestRefused covers input that must be refused with a named error before
// anything is rendered.
func TestRefused(t *testing.T) {
	tmp := t.TempDir()
	copyTree(t, repo, tmp)
	os.Symlink("/etc/passwd", filepath.Join(tmp, "plain", "sub", "leak.yaml"))
	os.MkdirAll(filepath.Join(tmp, "big"), 0o755)
	os.WriteFile(filepath.Join(tmp, "big", "huge.yaml"), make([]byte, render.DefaultMaxFileSize+1), 0o644)

	tests := []struct {
		name    string
		run     func() error
		wantErr error
		wantIn  string
	}{
		{"alias bomb", func() error {
			_, err := render.RenderDirectory(tmp, filepath.Join(tmp, "bomb"), render.DirectoryOptions{})
			return err
		}, render.ErrAliasBomb, "bomb/bomb.yaml"},
		{"symlink out of the repository", func() error {
			_, err := render.RenderDirectory(tmp, filepath.Join(tmp, "plain"), render.DirectoryOptions{Recurse: true})
			return err
		}, render.ErrSymlinkEscapes, "plain/sub/leak.yaml"},
		{"file over the size limit", func() error {
			_, err := render.RenderDirectory(tmp, filepath.Join(tmp, "big"), render.DirectoryOptions{})
			return err
		}, render.ErrFileTooLarge, "big/huge.yaml"},
		{"path climbing out", func() error {
			_, err := render.Join(tmp, "plain/../../..")
			return err
		}, render.ErrPathEscapes, "plain/../../.."},
		{"absolute path", func() error {
			_, err := render.Join(tmp, "/etc")
			return err
		}, render.ErrPathEscapes, "/etc"},
		{"kustomize remote base", func() error {
			_, err := kustomize.Render(tmp, filepath.Join(tmp, "kustomize-remote"), kustomize.Options{})
			return err
		}, kustomize.ErrRemoteBase, "kustomize-remote/kustomization.yaml"},
		{"kustomize base outside the repository", func() error {
			_, err := kustomize.Render(tmp, filepath.Join(tmp, "kustomize-escape"), kustomize.Options{})
			return err
		}, nil, "kustomize-escape/kustomization.yaml"},
		{"helm values file outside the repository", func() error {
			_, err := helm.Render(tmp, filepath.Join(tmp, "chart"), helm.Options{ValueFiles: []string{"../../../etc/passwd"}})
			return err
		}, render.ErrPathEscapes, "values file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.run()
			if err == nil {
				t.Fatal("got no error")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("got %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantIn) {
				t.Errorf("error %q does not name %q", err, tt.wantIn)
			}
		})
	}
	// A path inside the repository with ".." that stays inside is fine.
	if _, err := render.Join(tmp, "plain/sub/../sub"); err != nil {
		t.Errorf("Join(plain/sub/../sub): %v", err)
	}
}

func unstructuredInt(m map[string]any, path ...string) (int64, bool, error) {
	var cur any = m
	for _, p := range path {
		mm, ok := cur.(map[string]any)
		if !ok {
			return 0, false, nil
		}
		cur = mm[p]
	}
	n, ok := cur.(int64)
	return n, ok, nil
}

func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestRenderDirectoryExclude(t *testing.T) {
	root := t.TempDir()
	write := func(rel, name string) {
		p := filepath.Join(root, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: "+name+"}\n"), 0o644)
	}
	write("apps/a.yaml", "a")
	write("apps/drafts/b.yaml", "b")
	write("apps/c.draft.yaml", "c")
	objs, err := render.RenderDirectory(root, filepath.Join(root, "apps"), render.DirectoryOptions{Recurse: true,
		Exclude: func(rel string, isDir bool) bool {
			return (isDir && rel == "apps/drafts") || strings.HasSuffix(rel, ".draft.yaml")
		}})
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 1 || objs[0].Object.GetName() != "a" {
		t.Errorf("got %d objects, want only a", len(objs))
	}
}
