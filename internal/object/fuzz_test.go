package object

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzDecode: whatever bytes a repository holds, Decode never panics, and
// every object it returns has what the rest of converge relies on.
func FuzzDecode(f *testing.F) {
	for _, name := range []string{"multi.yaml", "single.json", "broken.yaml", "duplicate-key.yaml"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("---\n---\napiVersion: v1\nkind: List\nitems: [{apiVersion: v1, kind: ConfigMap, metadata: {name: a}}]\n"))
	f.Add([]byte("a: &x [*x]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		objs, err := Decode(data, "fuzz.yaml")
		if err != nil {
			return
		}
		for _, d := range objs {
			o := d.Object
			if o.GetAPIVersion() == "" || o.GetKind() == "" || (o.GetName() == "" && o.GetGenerateName() == "") {
				t.Errorf("decoded an object without apiVersion, kind or name: %v", o.Object)
			}
			if d.Source.File != "fuzz.yaml" || d.Source.Document < 1 {
				t.Errorf("source %+v", d.Source)
			}
		}
	})
}
