//go:build ignore

// gen writes schemas/kubernetes-VERSION.json.gz: the definitions of
// Kubernetes' OpenAPI v2 document (api/openapi-spec/swagger.json of
// k8s.io/kubernetes), without descriptions, which validate ships.
//
//	go run gen.go v1.37.2
package main

import (
	"compress/gzip"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

func main() {
	version := os.Args[1]
	out, err := exec.Command("go", "mod", "download", "-json", "k8s.io/kubernetes@"+version).Output()
	if err != nil {
		panic(err)
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil {
		panic(err)
	}
	data, err := os.ReadFile(filepath.Join(mod.Dir, "api", "openapi-spec", "swagger.json"))
	if err != nil {
		panic(err)
	}
	var doc struct {
		Definitions map[string]any `json:"definitions"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		panic(err)
	}
	slim, _ := json.Marshal(map[string]any{"definitions": strip(doc.Definitions)})
	minor := strings.Join(strings.Split(strings.TrimPrefix(version, "v"), ".")[:2], ".")
	f, err := os.Create(filepath.Join("schemas", "kubernetes-"+minor+".json.gz"))
	if err != nil {
		panic(err)
	}
	zw, _ := gzip.NewWriterLevel(f, gzip.BestCompression)
	zw.Write(slim)
	zw.Close()
	f.Close()
	fmt.Printf("%d definitions of %s\n", len(doc.Definitions), version)
}

func strip(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, x := range v {
			if k != "description" {
				out[k] = strip(x)
			}
		}
		return out
	case []any:
		for i := range v {
			v[i] = strip(v[i])
		}
	}
	return v
}
