package locator

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"converge.dev/converge/internal/promotion"
)

const (
	dA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	dB = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

var app = promotion.Artifact{Name: "app", Image: "registry.example.com/orders-api", Tag: "1.42.0", Digest: dB}

// TestWriteKeepsTheFile writes each fixture's in.yaml and compares it
// with want.yaml byte for byte: only the scalars move, every comment,
// quote and indent stays. Writing again changes nothing.
func TestWriteKeepsTheFile(t *testing.T) {
	tests := []struct {
		dir     string
		loc     Locator
		art     promotion.Artifact
		old     string
		written string
	}{
		{"images-add-digest", Locator{Kind: KustomizeImages}, app, "registry.example.com/orders-api:1.41.3", app.Reference()},
		{"images-quoted", Locator{Kind: KustomizeImages}, app, "registry.example.com/orders-api:1.41.3@" + dA, app.Reference()},
		{"values-digest", Locator{Kind: YAMLPath, Field: ".image.digest"}, app, dA, dB},
		{"manifest-reference", Locator{Kind: YAMLPath, Field: "spec.template.spec.containers[0].image"}, app,
			"registry.example.com/orders-api:1.41.3@" + dA, app.Reference()},
		{"tag-quoted", Locator{Kind: YAMLPath, Field: "image.tag", Format: FormatTag}, promotion.Artifact{Name: "app", Tag: "1.50", Digest: dB}, "1.41.3", "1.50"},
	}
	for _, tc := range tests {
		t.Run(tc.dir, func(t *testing.T) {
			root := t.TempDir()
			in, err := os.ReadFile(filepath.Join("testdata", tc.dir, "in.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(filepath.Join("testdata", tc.dir, "want.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(root, "f.yaml"), in, 0o644); err != nil {
				t.Fatal(err)
			}
			tc.loc.Path = "f.yaml"
			e, err := Write(root, tc.loc, []promotion.Artifact{tc.art})
			if err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(filepath.Join(root, "f.yaml"))
			if string(got) != string(want) {
				t.Errorf("wrote:\n%s\nwant:\n%s", got, want)
			}
			if e.Old["app"] != tc.old || e.New["app"] != tc.written {
				t.Errorf("edit %+v", e)
			}
			if _, err := Write(root, tc.loc, []promotion.Artifact{tc.art}); err != nil {
				t.Fatal(err)
			}
			again, _ := os.ReadFile(filepath.Join(root, "f.yaml"))
			if string(again) != string(want) {
				t.Errorf("a second write changed the file:\n%s", again)
			}
		})
	}
}

func TestWriteRefusesWhatItCannotPlace(t *testing.T) {
	tests := []struct {
		name, file string
		loc        Locator
		arts       []promotion.Artifact
		err        string
	}{
		{"no images list", "resources: [a]\n", Locator{Kind: KustomizeImages}, []promotion.Artifact{app}, "has no images: list"},
		{"no entry", "images:\n- name: other\n", Locator{Kind: KustomizeImages}, []promotion.Artifact{app}, "no entry named registry.example.com/orders-api"},
		{"flow entry", "images: [{name: registry.example.com/orders-api}]\n", Locator{Kind: KustomizeImages}, []promotion.Artifact{app}, "flow style"},
		{"missing field", "image: {tag: x}\n", Locator{Kind: YAMLPath, Field: ".image.digest"}, []promotion.Artifact{app}, "no document has .image.digest"},
		{"not a scalar", "image: {tag: x}\n", Locator{Kind: YAMLPath, Field: "image"}, []promotion.Artifact{app}, "is not a scalar"},
		{"two artifacts", "a: b\n", Locator{Kind: YAMLPath, Field: "a"}, []promotion.Artifact{app, app}, "has 2 artifacts"},
		{"unknown kind", "a: b\n", Locator{Kind: "helm-values"}, []promotion.Artifact{app}, `kind "helm-values"`},
		{"bad field", "a: b\n", Locator{Kind: YAMLPath, Field: "a[x]"}, []promotion.Artifact{app}, "is not key or key[N]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			if err := os.WriteFile(filepath.Join(root, "k.yaml"), []byte(tc.file), 0o644); err != nil {
				t.Fatal(err)
			}
			tc.loc.Path = "k.yaml"
			_, err := Write(root, tc.loc, tc.arts)
			if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "k.yaml") {
				t.Errorf("err %v, want %q naming k.yaml", err, tc.err)
			}
			if got, _ := os.ReadFile(filepath.Join(root, "k.yaml")); string(got) != tc.file {
				t.Errorf("a refused write changed the file: %s", got)
			}
		})
	}
	if _, err := Write(t.TempDir(), Locator{Path: "../x.yaml", Kind: YAMLPath}, []promotion.Artifact{app}); err == nil {
		t.Error("a path out of the checkout was accepted")
	}
}
