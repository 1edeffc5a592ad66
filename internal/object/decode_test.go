package object

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDecode(t *testing.T) {
	tests := []struct {
		file    string
		want    []string // kind/name in order
		wantErr string
	}{
		{file: "multi.yaml", want: []string{"Deployment/web", "Service/web", "ConfigMap/a", "ConfigMap/b"}},
		{file: "single.json", want: []string{"ConfigMap/from-json"}},
		{file: "no-kind.yaml", wantErr: "no-kind.yaml: document 2: field kind is missing"},
		{file: "no-name.yaml", wantErr: "no-name.yaml: document 1: Service: field metadata.name is missing"},
		{file: "broken.yaml", wantErr: "broken.yaml: document 1:"},
		{file: "duplicate-key.yaml", wantErr: `duplicate-key.yaml: document 2: yaml: unmarshal errors:
  line 11: key "mode" already set in map`},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := Decode(data, tt.file)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, d := range got {
				names = append(names, d.Object.GetKind()+"/"+d.Object.GetName())
			}
			if strings.Join(names, " ") != strings.Join(tt.want, " ") {
				t.Errorf("got %v, want %v", names, tt.want)
			}
		})
	}
}
