package helm

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"sigs.k8s.io/yaml"
)

// FuzzValues: merging a values file with inline values never panics, and
// an inline scalar always wins over the file, as Argo CD's
// spec.source.helm.values does over valueFiles.
func FuzzValues(f *testing.F) {
	f.Add([]byte("replicas: 1\nimage: {tag: a}\n"), []byte("replicas: 3\n"))
	f.Add([]byte("a: {b: {c: 1}}\n"), []byte("a: {b: null}\n"))
	f.Add([]byte("- not a map\n"), []byte("x: 1\n"))
	f.Add([]byte("a: &x {b: *x}\n"), []byte("{}"))
	f.Fuzz(func(t *testing.T, file, inline []byte) {
		var in map[string]any
		if yaml.Unmarshal(inline, &in) != nil {
			return
		}
		root := t.TempDir()
		chart := filepath.Join(root, "chart")
		if err := os.MkdirAll(chart, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(chart, "v.yaml"), file, 0o644); err != nil {
			t.Fatal(err)
		}
		merged, err := values(root, chart, "chart", Options{ValueFiles: []string{"v.yaml"}, Values: in})
		if err != nil {
			return
		}
		for k, v := range in {
			if _, isMap := v.(map[string]any); v == nil || isMap {
				continue
			}
			// Compare as YAML reads them back: numbers may change type.
			want, _ := yaml.Marshal(v)
			got, _ := yaml.Marshal(merged[k])
			if !reflect.DeepEqual(want, got) {
				t.Errorf("key %q: merged %s, want the inline %s", k, got, want)
			}
		}
	})
}
