// Package install holds what `converge install` puts in a cluster: the
// CRDs of the dialects converge runs (generated from internal/api by
// controller-gen), the controller's RBAC and its Deployment.
package install

import (
	"embed"
	"io/fs"
	"sort"

	"converge.dev/converge/internal/object"
)

//go:generate go run sigs.k8s.io/controller-tools/cmd/controller-gen@v0.23.0 object paths=../api/... crd:crdVersions=v1 output:crd:dir=./crds

//go:embed crds/*.yaml
var crdFiles embed.FS

// CRDs returns the CRDs, in file name order.
func CRDs() ([]object.Decoded, error) {
	names, err := fs.Glob(crdFiles, "crds/*.yaml")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var out []object.Decoded
	for _, name := range names {
		data, err := crdFiles.ReadFile(name)
		if err != nil {
			return nil, err
		}
		objs, err := object.Decode(data, name)
		if err != nil {
			return nil, err
		}
		out = append(out, objs...)
	}
	return out, nil
}
