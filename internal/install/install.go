// Package install holds what `converge install` puts in a cluster: the
// CRDs of the dialects converge runs (generated from internal/api by
// controller-gen), the controller's RBAC and its Deployment.
package install

import (
	"context"
	"embed"
	"io/fs"
	"sort"

	"converge.dev/converge/internal/cluster"
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

// Apply server-side applies objs in order, waiting for each CRD to be
// Established so that what follows can use it. It returns the refs
// applied, in order.
func Apply(ctx context.Context, c *cluster.Client, objs []object.Decoded) ([]object.Ref, error) {
	var done []object.Ref
	for _, d := range objs {
		if _, err := c.Apply(ctx, d.Object, cluster.ApplyOptions{Force: true}); err != nil {
			return done, err
		}
		if d.Object.GetKind() == "CustomResourceDefinition" {
			if err := c.WaitEstablished(ctx, d.Object.GetName()); err != nil {
				return done, err
			}
		}
		done = append(done, object.RefOf(d.Object))
	}
	return done, nil
}
