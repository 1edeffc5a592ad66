package kustomize

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/resid"

	"converge.dev/converge/internal/object"
)

const app = `apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {k: v}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: registry.example.com/web:1.0.0
        envFrom: [{configMapRef: {name: settings}}]
`

// TestOverlay: a name prefix follows references, common labels stay out
// of selectors, images and patches apply, and every object keeps its
// source file.
func TestOverlay(t *testing.T) {
	objs, err := object.Decode([]byte(app), "apps/web/all.yaml")
	if err != nil {
		t.Fatal(err)
	}
	o := Overlay{
		NamePrefix: "prod-", Labels: map[string]string{"team": "orders"}, Annotations: map[string]string{"owner": "platform"},
		Images: []types.Image{{Name: "registry.example.com/web", NewTag: "1.4.2"}},
		Patches: []types.Patch{{Patch: `[{"op": "add", "path": "/spec/replicas", "value": 3}]`,
			Target: &types.Selector{ResId: resid.ResId{Gvk: resid.Gvk{Kind: "Deployment"}}}}},
	}
	out, err := o.Apply(objs)
	if err != nil {
		t.Fatal(err)
	}
	byKind := map[string]map[string]any{}
	for _, d := range out {
		byKind[d.Object.GetKind()] = d.Object.Object
		if d.Source.File != "apps/web/all.yaml" {
			t.Errorf("%s lost its source: %+v", d.Object.GetName(), d.Source)
		}
		if _, ok := d.Object.GetAnnotations()[sourceIndex]; ok {
			t.Errorf("%s keeps the internal annotation", d.Object.GetName())
		}
		if d.Object.GetLabels()["team"] != "orders" || d.Object.GetAnnotations()["owner"] != "platform" {
			t.Errorf("%s: labels %v annotations %v", d.Object.GetName(), d.Object.GetLabels(), d.Object.GetAnnotations())
		}
	}
	dep := byKind["Deployment"]
	spec := dep["spec"].(map[string]any)
	if name := dep["metadata"].(map[string]any)["name"]; name != "prod-web" {
		t.Errorf("deployment name %v", name)
	}
	if sel := spec["selector"].(map[string]any)["matchLabels"].(map[string]any); len(sel) != 1 {
		t.Errorf("common labels reached the selector: %v", sel)
	}
	c := spec["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)
	if c["image"] != "registry.example.com/web:1.4.2" {
		t.Errorf("image %v", c["image"])
	}
	if ref := c["envFrom"].([]any)[0].(map[string]any)["configMapRef"].(map[string]any)["name"]; ref != "prod-settings" {
		t.Errorf("configMapRef %v, want prod-settings: references follow renames", ref)
	}
	if spec["replicas"] != int64(3) {
		t.Errorf("replicas %v (%T), want 3 from the patch", spec["replicas"], spec["replicas"])
	}
	if same, _ := (Overlay{}).Apply(objs); len(same) != 2 || same[0].Object != objs[0].Object {
		t.Error("the zero Overlay must return the objects as they are")
	}
}

// TestComponents: components are added to a folder's kustomization, or
// to one made of its manifests, without touching the files.
func TestComponents(t *testing.T) {
	root := t.TempDir()
	write := func(rel, content string) {
		p := filepath.Join(root, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("components/team/kustomization.yaml", "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\ncommonLabels: {team: orders}\n")
	write("plain/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: plain}\n")
	write("kust/kustomization.yaml", "resources: [cm.yaml]\nnamePrefix: k-\n")
	write("kust/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\n")
	for _, tc := range []struct{ dir, name string }{{"plain", "plain"}, {"kust", "k-cm"}} {
		objs, err := Render(root, filepath.Join(root, tc.dir), Options{Components: []string{"../components/team"}})
		if err != nil {
			t.Fatalf("%s: %v", tc.dir, err)
		}
		if len(objs) != 1 || objs[0].Object.GetName() != tc.name || objs[0].Object.GetLabels()["team"] != "orders" {
			t.Errorf("%s: got %d objects, first %v", tc.dir, len(objs), objs[0].Object.Object)
		}
	}
	if data, _ := os.ReadFile(filepath.Join(root, "kust/kustomization.yaml")); strings.Contains(string(data), "components") {
		t.Error("the kustomization on disk was changed")
	}
}
