// Package install holds what `converge install` puts in a cluster: the
// CRDs of the dialects converge runs (generated from internal/api by
// controller-gen), the controller's RBAC and its Deployment.
package install

import (
	"embed"
	"io/fs"
	"sort"
)

//go:generate go run sigs.k8s.io/controller-tools/cmd/controller-gen@v0.23.0 object paths=../api/... crd:crdVersions=v1 output:crd:dir=./crds

//go:embed crds/*.yaml
var crdFiles embed.FS

// CRDs returns the CRD manifests, in file name order.
func CRDs() (map[string][]byte, []string) {
	out := map[string][]byte{}
	var names []string
	entries, _ := fs.ReadDir(crdFiles, "crds")
	for _, e := range entries {
		data, err := crdFiles.ReadFile("crds/" + e.Name())
		if err != nil {
			continue
		}
		out["crds/"+e.Name()] = data
		names = append(names, "crds/"+e.Name())
	}
	sort.Strings(names)
	return out, names
}
