package render

import (
	"os"
	"path/filepath"
	"testing"
)

func TestHasJsonnet(t *testing.T) {
	tests := []struct {
		name    string
		files   []string
		recurse bool
		want    bool
	}{
		{"yaml only", []string{"a.yaml", "b.yml", "c.json"}, false, false},
		{"a jsonnet file", []string{"a.yaml", "main.jsonnet"}, false, true},
		{"upper-case extension", []string{"MAIN.JSONNET"}, false, true},
		{"a library is not an entry point", []string{"a.yaml", "lib.libsonnet"}, false, false},
		{"in a subfolder, not recursing", []string{"a.yaml", "sub/main.jsonnet"}, false, false},
		{"in a subfolder, recursing", []string{"a.yaml", "sub/main.jsonnet"}, true, true},
		{"in a hidden subfolder, recursing", []string{"a.yaml", ".git/main.jsonnet"}, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range tt.files {
				p := filepath.Join(dir, f)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte("{}\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if got := HasJsonnet(dir, tt.recurse); got != tt.want {
				t.Errorf("HasJsonnet = %v, want %v", got, tt.want)
			}
		})
	}
	if !HasJsonnet(filepath.Join(t.TempDir(), "missing"), false) {
		t.Error("a folder that cannot be read should report true: the child then says why")
	}
}
