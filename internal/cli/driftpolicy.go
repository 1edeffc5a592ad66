package cli

import (
	"fmt"
	"os"

	"k8s.io/apimachinery/pkg/runtime"

	convergev1 "converge.dev/converge/internal/api/converge/v1alpha1"
	"converge.dev/converge/internal/drift"
	"converge.dev/converge/internal/engine"
	"converge.dev/converge/internal/object"
)

// readDriftPolicies reads the DriftPolicy manifests in files, the way
// the controller would apply them to a unit they select. A document of
// another kind is an error naming it: a policy silently not read would
// leave drift ungoverned.
func readDriftPolicies(files []string) (drift.Policy, error) {
	var ps []convergev1.DriftPolicy
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return drift.Policy{}, fmt.Errorf("--drift-policy: %w", err)
		}
		objs, err := object.Decode(data, f)
		if err != nil {
			return drift.Policy{}, fmt.Errorf("--drift-policy: %w", err)
		}
		for _, d := range objs {
			if gvk := d.Object.GroupVersionKind(); gvk != convergev1.GroupVersion.WithKind("DriftPolicy") {
				return drift.Policy{}, fmt.Errorf("--drift-policy: %s: %s is not a %s DriftPolicy", d.Source, gvk.Kind, convergev1.GroupVersion)
			}
			var p convergev1.DriftPolicy
			if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(d.Object.Object, &p, true); err != nil {
				return drift.Policy{}, fmt.Errorf("--drift-policy: %s: %w", d.Source, err)
			}
			ps = append(ps, p)
		}
	}
	return engine.DriftPolicyOf(ps)
}
