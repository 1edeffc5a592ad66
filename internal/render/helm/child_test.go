package helm_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart/loader"

	"converge.dev/converge/internal/render"
	"converge.dev/converge/internal/render/helm"
)

// TestMain lets this test binary serve as its own render child, as the
// converge binary does.
func TestMain(m *testing.M) {
	helm.ServeChild()
	os.Exit(m.Run())
}

var repo = filepath.Join("..", "testdata", "repo")

func child(t *testing.T) *helm.Child {
	t.Helper()
	c := helm.DefaultChild()
	if c == nil {
		t.Fatal("DefaultChild is nil although TestMain called ServeChild")
	}
	return c
}

// TestChildRendersAsInProcess: a render in the child gives the same
// objects and sources, and the same errors, as one in this process.
func TestChildRendersAsInProcess(t *testing.T) {
	o := helm.Options{ReleaseName: "shop", Namespace: "prod", ValueFiles: []string{"../values-prod.yaml"},
		Values: map[string]any{"image": "example/web:2.0"}, KubeVersion: "v1.37.2"}
	dir := filepath.Join(repo, "chart")
	want, err := helm.Render(repo, dir, o)
	if err != nil {
		t.Fatal(err)
	}
	got, err := child(t).Render(context.Background(), repo, dir, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) || len(got) == 0 {
		t.Fatalf("child rendered %d objects, in process %d", len(got), len(want))
	}
	for i := range want {
		a, _ := want[i].Object.MarshalJSON()
		b, _ := got[i].Object.MarshalJSON()
		if string(a) != string(b) || want[i].Source != got[i].Source {
			t.Errorf("object %d differs:\nin process %s %s\nchild      %s %s", i, want[i].Source, a, got[i].Source, b)
		}
	}
	o.KubeVersion = "v1.25.0"
	_, inErr := helm.Render(repo, dir, o)
	_, childErr := child(t).Render(context.Background(), repo, dir, o)
	if inErr == nil || childErr == nil || inErr.Error() != childErr.Error() {
		t.Errorf("errors differ:\nin process %v\nchild      %v", inErr, childErr)
	}
}

// bombChart writes a chart whose one template repeats a 1 MB value n
// times: small on disk, n MB rendered.
func bombChart(t *testing.T, n int) (root, dir string) {
	t.Helper()
	root = t.TempDir()
	dir = filepath.Join(root, "bomb")
	writeFiles(t, dir, map[string]string{
		"Chart.yaml":  "apiVersion: v2\nname: bomb\nversion: 0.1.0\n",
		"values.yaml": "big: " + strings.Repeat("x", 1<<20) + "\n",
		"templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bomb\ndata:\n  big: \"" +
			"{{ range until " + strconv.Itoa(n) + " }}{{ $.Values.big }}{{ end }}\"\n",
	})
	return root, dir
}

// TestChildLimits: a render over the child's memory or output limit is
// ErrRenderLimit naming the chart and the limit, and this process does
// not hold the render.
func TestChildLimits(t *testing.T) {
	cases := []struct {
		name   string
		repeat int
		child  helm.Child
		want   string
	}{
		// 4 GB rendered against a 512 MiB wall: the child dies, not us.
		{"memory", 4000, helm.Child{MaxMemory: 512 << 20}, "more than 512 MiB of memory"},
		// 3 MB rendered, 1 MiB allowed back.
		{"output", 3, helm.Child{MaxOutput: 1 << 20}, "more than 1048576 bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root, dir := bombChart(t, tc.repeat)
			c := tc.child
			c.Command = child(t).Command
			_, err := c.Render(context.Background(), root, dir, helm.Options{})
			if !errors.Is(err, helm.ErrRenderLimit) || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "bomb: helm template") {
				t.Fatalf("got %v, want ErrRenderLimit naming the chart and %q", err, tc.want)
			}
		})
	}
	// Under the limits the same chart renders.
	root, dir := bombChart(t, 2)
	objs, err := child(t).Render(context.Background(), root, dir, helm.Options{})
	if err != nil || len(objs) != 1 {
		t.Fatalf("2 MB render: %d objects, %v", len(objs), err)
	}
}

// TestChildCheck: the guard in front of a Helm release install fails on
// a render over the limits, and leaves template errors to the install.
func TestChildCheck(t *testing.T) {
	_, dir := bombChart(t, 4000)
	bomb, err := loader.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	c := helm.Child{Command: child(t).Command, MaxMemory: 512 << 20}
	err = c.Check(context.Background(), bomb, bomb.Values, helm.Options{ReleaseName: "r", Namespace: "ns"})
	if !errors.Is(err, helm.ErrRenderLimit) || !strings.HasPrefix(err.Error(), "chart bomb: helm template") {
		t.Errorf("bomb: got %v, want ErrRenderLimit naming the chart", err)
	}
	small := map[string]any{"big": "x"}
	if err := c.Check(context.Background(), bomb, small, helm.Options{}); err != nil {
		t.Errorf("small values: %v", err)
	}
	failing := map[string]any{"big": map[string]any{"not": "a string"}}
	bomb.Templates[0].Data = []byte(`{{ fail "needs a lookup" }}`)
	if err := c.Check(context.Background(), bomb, failing, helm.Options{}); err != nil {
		t.Errorf("a template error is the install's to report, got %v", err)
	}
	if !reflect.DeepEqual(small, map[string]any{"big": "x"}) {
		t.Error("Check changed the values")
	}
}

// TestDependenciesNotBuilt: a chart whose dependencies are not in
// charts/ is refused, naming them, rather than rendered without them.
// The same chart with its dependency in charts/ renders both.
func TestDependenciesNotBuilt(t *testing.T) {
	root := t.TempDir()
	write := func(name, body string) { writeFiles(t, root, map[string]string{name: body}) }
	write("app/Chart.yaml", "apiVersion: v2\nname: app\nversion: 0.1.0\ndependencies:\n- name: redis\n  version: 1.0.0\n  repository: https://charts.example.com\n")
	write("app/templates/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app}\n")
	for _, render := range []func() error{
		func() error { _, err := helm.Render(root, filepath.Join(root, "app"), helm.Options{}); return err },
		func() error {
			_, err := child(t).Render(context.Background(), root, filepath.Join(root, "app"), helm.Options{})
			return err
		},
	} {
		if err := render(); err == nil || !strings.Contains(err.Error(), "chart dependencies are not built") || !strings.Contains(err.Error(), "redis") {
			t.Errorf("got %v, want a refusal naming redis", err)
		}
	}
	write("app/charts/redis/Chart.yaml", "apiVersion: v2\nname: redis\nversion: 1.0.0\n")
	write("app/charts/redis/templates/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: redis}\n")
	objs, err := helm.Render(root, filepath.Join(root, "app"), helm.Options{})
	if err != nil || len(objs) != 2 {
		t.Fatalf("with charts/redis: %d objects, %v", len(objs), err)
	}
}

// TestChildJsonnet: a folder with Jsonnet renders in the child as in
// process, and a Jsonnet file that builds a 4 GB string dies in the
// child, under its memory limit, not in this process.
func TestChildJsonnet(t *testing.T) {
	dir := filepath.Join(repo, "jsonnet", "app")
	o := render.DirectoryOptions{Jsonnet: &render.JsonnetOptions{
		ExtVars: []render.JsonnetVar{{Name: "app", Value: "shop"}, {Name: "env", Value: "prod"}},
		Libs:    []string{"jsonnet/vendor/k"},
	}}
	want, err := render.RenderDirectory(repo, dir, o)
	if err != nil {
		t.Fatal(err)
	}
	got, err := child(t).RenderDirectory(context.Background(), repo, dir, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) || len(got) != 4 {
		t.Fatalf("child rendered %d objects, in process %d, want 4", len(got), len(want))
	}
	for i := range want {
		a, _ := want[i].Object.MarshalJSON()
		b, _ := got[i].Object.MarshalJSON()
		if string(a) != string(b) || want[i].Source != got[i].Source {
			t.Errorf("object %d differs:\nin process %s %s\nchild      %s %s", i, want[i].Source, a, got[i].Source, b)
		}
	}

	root := t.TempDir()
	writeFiles(t, root, map[string]string{"bomb/bomb.jsonnet": `local d(s, n) = if n == 0 then s else d(s + s, n - 1);
{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'bomb' }, data: { big: d('x', 32) } }`})
	c := helm.Child{Command: child(t).Command, MaxMemory: 512 << 20}
	_, err = c.RenderDirectory(context.Background(), root, filepath.Join(root, "bomb"), render.DirectoryOptions{Jsonnet: &render.JsonnetOptions{}})
	if !errors.Is(err, helm.ErrRenderLimit) || !strings.HasPrefix(err.Error(), "bomb: render:") {
		t.Fatalf("got %v, want ErrRenderLimit naming the folder", err)
	}
}
