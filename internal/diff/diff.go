// Package diff compares a live object with what it would become, the way
// `kubectl diff` shows it: server-set metadata, managedFields and status
// are left out, Secret values are masked, and the result is a unified diff
// of YAML. It is pure: the predicted object comes from a server-side dry
// run that the caller performs.
package diff

import (
	"fmt"
	"sort"
	"strings"

	"github.com/pmezard/go-difflib/difflib"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// serverSet are metadata fields the API server owns; they differ between
// any two reads and say nothing about desired state.
var serverSet = []string{"managedFields", "resourceVersion", "uid", "generation", "creationTimestamp", "selfLink"}

// ignoredAnnotations are written by tools and controllers as bookkeeping.
var ignoredAnnotations = []string{
	"kubectl.kubernetes.io/last-applied-configuration",
	"deployment.kubernetes.io/revision",
}

// Normalize returns a copy of obj without server-set metadata, status and
// bookkeeping annotations. A nil obj stays nil.
func Normalize(obj *unstructured.Unstructured) *unstructured.Unstructured {
	if obj == nil {
		return nil
	}
	out := obj.DeepCopy()
	for _, f := range serverSet {
		unstructured.RemoveNestedField(out.Object, "metadata", f)
	}
	unstructured.RemoveNestedField(out.Object, "status")
	if ann := out.GetAnnotations(); ann != nil {
		for _, a := range ignoredAnnotations {
			delete(ann, a)
		}
		if len(ann) == 0 {
			ann = nil
		}
		out.SetAnnotations(ann)
	}
	return out
}

// Result is the comparison of one object.
type Result struct {
	// Changed is false when the normalized objects are equal.
	Changed bool
	// Unified is the unified diff, empty when unchanged.
	Unified string
}

// Compare diffs live against predicted (either may be nil: created or
// deleted) under the label name, masking Secret values in both. Fields
// that ignore rules cover are left out of both sides.
func Compare(name string, live, predicted *unstructured.Unstructured, ignore []Ignore) (Result, error) {
	a, b := live.DeepCopy(), predicted.DeepCopy()
	if len(ignore) > 0 {
		for _, o := range []*unstructured.Unstructured{a, b} {
			if o == nil {
				continue
			}
			if err := Strip(o, live, ignore); err != nil {
				return Result{}, fmt.Errorf("%s: ignoreDifferences: %w", name, err)
			}
		}
	}
	a, b = Normalize(a), Normalize(b)
	// Most objects of a steady-state resync are unchanged: compare the
	// trees before paying for two YAML renderings.
	if a != nil && b != nil && equality.Semantic.DeepEqual(a.Object, b.Object) {
		return Result{}, nil
	}
	MaskSecrets(a, b)
	ya, err := toYAML(a)
	if err != nil {
		return Result{}, fmt.Errorf("%s: %w", name, err)
	}
	yb, err := toYAML(b)
	if err != nil {
		return Result{}, fmt.Errorf("%s: %w", name, err)
	}
	if ya == yb {
		return Result{}, nil
	}
	u, err := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A: difflib.SplitLines(ya), B: difflib.SplitLines(yb),
		FromFile: "live/" + name, ToFile: "merged/" + name, Context: 3,
	})
	if err != nil {
		return Result{}, fmt.Errorf("%s: %w", name, err)
	}
	return Result{Changed: true, Unified: u}, nil
}

func toYAML(obj *unstructured.Unstructured) (string, error) {
	if obj == nil {
		return "", nil
	}
	data, err := yaml.Marshal(obj.Object)
	return string(data), err
}

// MaskSecrets replaces the values of Secrets' data and stringData with
// runs of '+', the same run for the same value across both objects, so a
// diff shows that a value changed but never what it is. Other kinds are
// left alone.
func MaskSecrets(objs ...*unstructured.Unstructured) {
	var values []string
	seen := map[string]bool{}
	for _, o := range objs {
		if !isSecret(o) {
			continue
		}
		for _, field := range []string{"data", "stringData"} {
			m, _, _ := unstructured.NestedMap(o.Object, field)
			for _, v := range m {
				s := fmt.Sprint(v)
				if !seen[s] {
					seen[s] = true
					values = append(values, s)
				}
			}
		}
	}
	sort.Strings(values) // masks must not depend on map order
	mask := map[string]string{}
	for i, v := range values {
		mask[v] = strings.Repeat("+", 8+i)
	}
	for _, o := range objs {
		if !isSecret(o) {
			continue
		}
		for _, field := range []string{"data", "stringData"} {
			m, ok, _ := unstructured.NestedMap(o.Object, field)
			if !ok {
				continue
			}
			for k, v := range m {
				m[k] = mask[fmt.Sprint(v)]
			}
			unstructured.SetNestedMap(o.Object, m, field)
		}
	}
}

func isSecret(o *unstructured.Unstructured) bool {
	return o != nil && o.GetKind() == "Secret" && o.GroupVersionKind().Group == ""
}
