package backport

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"

	"converge.dev/converge/internal/drift"
	"converge.dev/converge/internal/object"
	"converge.dev/converge/internal/render"
	"converge.dev/converge/internal/render/kustomize"
)

// copyTree copies testdata/name to a fresh folder, which stands for a
// checkout.
func copyTree(t *testing.T, name string) string {
	t.Helper()
	dst := t.TempDir()
	src := filepath.Join("testdata", name)
	err := filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if fi.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

var (
	webImage   = fieldpath.MakePathOrDie("spec", "template", "spec", "containers", fieldpath.KeyByFields("name", "web"), "image")
	replicas   = fieldpath.MakePathOrDie("spec", "replicas")
	team       = fieldpath.MakePathOrDie("metadata", "annotations", "team")
	mode       = fieldpath.MakePathOrDie("data", "mode")
	deployment = object.Ref{Group: "apps", Version: "v1", Kind: "Deployment", Name: "web", Namespace: "shop"}
	configMap  = object.Ref{Version: "v1", Kind: "ConfigMap", Name: "web-settings", Namespace: "shop"}
)

// changes are what an incident left live: a new image, 5 replicas, the
// team annotation removed, mode green.
func changes(objs []object.Decoded, names map[string]string) []Change {
	find := func(kind, name string) object.Decoded {
		for _, d := range objs {
			if d.Object.GetKind() == kind && d.Object.GetName() == name {
				return d
			}
		}
		return object.Decoded{}
	}
	var out []Change
	for _, c := range []struct {
		ref    object.Ref
		path   fieldpath.Path
		value  any
		remove bool
	}{
		{deployment, webImage, "example/web:9", false},
		{deployment, replicas, int64(5), false},
		{deployment, team, nil, true},
		{configMap, mode, "green", false},
	} {
		ref := c.ref
		ref.Name = names[ref.Name]
		d := find(ref.Kind, ref.Name)
		ptr, _ := drift.Pointer(d.Object.Object, c.path)
		_, rendered := drift.Get(d.Object.Object, c.path)
		out = append(out, Change{Object: ref, Source: d.Source, Path: c.path, Pointer: ptr, Value: c.value, Remove: c.remove, Rendered: rendered})
	}
	return out
}

func check(t *testing.T, objs []object.Decoded, names map[string]string) {
	t.Helper()
	get := func(kind, name string, p fieldpath.Path) (any, bool) {
		for _, d := range objs {
			if d.Object.GetKind() == kind && d.Object.GetName() == names[name] {
				return drift.Get(d.Object.Object, p)
			}
		}
		t.Fatalf("%s/%s not rendered", kind, names[name])
		return nil, false
	}
	if v, _ := get("Deployment", "web", webImage); v != "example/web:9" {
		t.Errorf("image renders as %v", v)
	}
	if v, _ := get("Deployment", "web", replicas); v != int64(5) {
		t.Errorf("replicas render as %v (%T)", v, v)
	}
	if v, ok := get("Deployment", "web", team); ok {
		t.Errorf("the removed annotation renders as %v", v)
	}
	if v, _ := get("ConfigMap", "web-settings", mode); v != "green" {
		t.Errorf("mode renders as %v", v)
	}
	sidecar := fieldpath.MakePathOrDie("spec", "template", "spec", "containers", fieldpath.KeyByFields("name", "sidecar"), "image")
	if v, _ := get("Deployment", "web", sidecar); v != "example/proxy:2" {
		t.Errorf("the sidecar changed: %v", v)
	}
}

func TestWritePlainFolderKeepsComments(t *testing.T) {
	root := copyTree(t, "plain")
	names := map[string]string{"web": "web", "web-settings": "web-settings"}
	objs, err := render.RenderDirectory(root, root, render.DirectoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	files, err := Write(root, ".", render.Directory, changes(objs, names))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(files, ",") != "web.yaml" {
		t.Errorf("files: %v", files)
	}
	after, err := render.RenderDirectory(root, root, render.DirectoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	check(t, after, names)
	data, _ := os.ReadFile(filepath.Join(root, "web.yaml"))
	for _, keep := range []string{"# The web tier. Owned by team payments.", "# blue or green", "# pinned by the release process"} {
		if !strings.Contains(string(data), keep) {
			t.Errorf("comment %q lost:\n%s", keep, data)
		}
	}
}

func TestWriteOverlayPatchesNotBase(t *testing.T) {
	root := copyTree(t, "kust")
	names := map[string]string{"web": "prod-web", "web-settings": "prod-web-settings"}
	dir := filepath.Join(root, "overlays", "prod")
	objs, err := kustomize.Render(root, dir, kustomize.Options{})
	if err != nil {
		t.Fatal(err)
	}
	base, _ := os.ReadFile(filepath.Join(root, "base", "web.yaml"))
	files, err := Write(root, "overlays/prod", render.Kustomize, changes(objs, names))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("files: %v", files)
	if after, _ := os.ReadFile(filepath.Join(root, "base", "web.yaml")); string(after) != string(base) {
		t.Error("the base was edited")
	}
	rendered, err := kustomize.Render(root, dir, kustomize.Options{})
	if err != nil {
		t.Fatal(err)
	}
	check(t, rendered, names)
	k, _ := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if !strings.Contains(string(k), "# prod overlay") {
		t.Errorf("kustomization comment lost:\n%s", k)
	}
	// A second backport extends the same patch, listed once.
	if _, err := Write(root, "overlays/prod", render.Kustomize, changes(objs, names)); err != nil {
		t.Fatal(err)
	}
	k, _ = os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if n := strings.Count(string(k), "converge-backport-deployment-prod-web.yaml"); n != 1 {
		t.Errorf("patch listed %d times:\n%s", n, k)
	}
	rendered, err = kustomize.Render(root, dir, kustomize.Options{})
	if err != nil {
		t.Fatal(err)
	}
	check(t, rendered, names)
}

func TestHelmRefused(t *testing.T) {
	if _, err := Write(t.TempDir(), ".", render.Helm, nil); err != ErrHelm {
		t.Errorf("helm: %v", err)
	}
}
