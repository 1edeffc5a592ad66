package setters

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/types"
)

const digest = "sha256:1111111111111111111111111111111111111111111111111111111111111111"

func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
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

func policy(name string) types.NamespacedName {
	return types.NamespacedName{Namespace: "flux-system", Name: name}
}

func TestApply(t *testing.T) {
	dir := copyDir(t, "testdata/apps/in")
	images := map[types.NamespacedName]Image{
		policy("web"):   {Name: "registry.local/shop/web", Tag: "1.2.0", Digest: digest},
		policy("proxy"): {Name: "registry.local/shop/proxy", Tag: "1.0"},
	}
	res, err := Apply(dir, "", images)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"apps/deploy.yaml", "apps/kustomization.yml", "apps/notes.txt"} {
		got, _ := os.ReadFile(filepath.Join(dir, f))
		want, _ := os.ReadFile(filepath.Join("testdata/apps/want", f))
		if string(got) != string(want) {
			t.Errorf("%s:\n%s\nwant:\n%s", f, got, want)
		}
	}
	if n := len(res.Changes()); n != 7 {
		t.Errorf("%d changes, want 7: %+v", n, res.Changes())
	}
	deploy := res.FileChanges["apps/deploy.yaml"][ObjectIdentifier{Name: "web", Namespace: "shop", APIVersion: "apps/v1", Kind: "Deployment"}]
	if len(deploy) != 2 || deploy[0].OldValue != "registry.local/shop/web:1.0.0" || deploy[0].Setter != "flux-system:web" ||
		deploy[1].NewValue != "registry.local/shop/proxy:1.0" {
		t.Errorf("Deployment's changes: %+v", deploy)
	}
	hr := res.Objects()[ObjectIdentifier{Name: "web-chart", Namespace: "shop", APIVersion: "helm.toolkit.fluxcd.io/v2", Kind: "HelmRelease"}]
	if len(hr) != 3 || hr[2] != (Change{OldValue: "sha256:0000", NewValue: digest, Setter: "flux-system:web:digest"}) {
		t.Errorf("HelmRelease's changes: %+v", hr)
	}

	// A second run changes nothing.
	again, err := Apply(dir, "", images)
	if err != nil || len(again.FileChanges) != 0 {
		t.Errorf("second run: %+v, %v", again, err)
	}
}

func TestFind(t *testing.T) {
	ms, err := Find("testdata/apps/in", "apps")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range ms {
		got = append(got, fmt.Sprintf("%s:%02d %s", m.File, m.Line, m.Ref))
	}
	want := []string{
		"apps/deploy.yaml:12 flux-system:web", "apps/deploy.yaml:14 flux-system:proxy", "apps/deploy.yaml:16 team-b:other",
		"apps/deploy.yaml:26 flux-system:web:name", "apps/deploy.yaml:27 flux-system:web:tag", "apps/deploy.yaml:28 flux-system:web:digest",
		"apps/kustomization.yml:03 flux-system:web:tag", "apps/kustomization.yml:05 flux-system:web",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("markers:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		name, dir, path, file, content string
		images                         map[types.NamespacedName]Image
		want                           string
	}{
		{name: "flow mapping", dir: "testdata/flowvalue/in", images: map[types.NamespacedName]Image{policy("web"): {Name: "web", Tag: "2"}},
			want: "values.yaml:1: marker flux-system:web: the marked line holds no plain scalar value to set"},
		{name: "digest not reflected", file: "a.yaml", content: "digest: x # {\"$imagepolicy\": \"flux-system:web:digest\"}\n",
			images: map[types.NamespacedName]Image{policy("web"): {Name: "web", Tag: "2"}},
			want:   "a.yaml:1: marker flux-system:web:digest: the policy records no digest"},
		{name: "bad field", file: "a.yaml", content: "x: y # {\"$imagepolicy\": \"flux-system:web:version\"}\n",
			want: "a.yaml:1: marker {\"$imagepolicy\": \"flux-system:web:version\"}: unknown field \"version\""},
		{name: "no namespace", file: "a.yaml", content: "x: y # {\"$imagepolicy\": \"web\"}\n",
			want: "a.yaml:1: marker {\"$imagepolicy\": \"web\"}: want \"NAMESPACE:NAME\""},
		{name: "path outside", path: "../x", want: `spec.update.path "../x" leaves the repository`},
		{name: "path missing", path: "nope", want: `spec.update.path "nope": file does not exist`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.dir != "" {
				dir = copyDir(t, tc.dir)
			}
			if tc.file != "" {
				if err := os.WriteFile(filepath.Join(dir, tc.file), []byte(tc.content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, err := Apply(dir, tc.path, tc.images)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if tc.file != "" {
				if got, _ := os.ReadFile(filepath.Join(dir, tc.file)); string(got) != tc.content {
					t.Errorf("file written on error:\n%s", got)
				}
			}
		})
	}
}
