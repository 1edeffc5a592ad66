package engine

import (
	"fmt"
	"strings"

	"github.com/drone/envsubst"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"converge.dev/converge/internal/object"
)

// SubstituteAnnotation, set to "disabled" on an object (as an annotation
// or a label), keeps variables in it as written, as in Flux.
const SubstituteAnnotation = "kustomize.toolkit.fluxcd.io/substitute"

// substitute replaces ${var} (with bash-like defaults, ${var:=default})
// in every rendered object, as Flux's postBuild does; an unset variable
// without a default becomes empty. It works on copies: renders are
// cached. Errors name the object and its file, never a value: values
// may come from Secrets.
func substitute(objs []object.Decoded, vars map[string]string) ([]object.Decoded, error) {
	out := make([]object.Decoded, 0, len(objs))
	for _, d := range objs {
		if strings.EqualFold(d.Object.GetAnnotations()[SubstituteAnnotation], "disabled") ||
			strings.EqualFold(d.Object.GetLabels()[SubstituteAnnotation], "disabled") {
			out = append(out, d)
			continue
		}
		data, err := yaml.Marshal(d.Object.Object)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: substitute: %w", d.Source, object.RefOf(d.Object), err)
		}
		if !strings.Contains(string(data), "${") {
			out = append(out, d)
			continue
		}
		text, err := envsubst.Eval(string(data), func(name string) string { return vars[name] })
		if err != nil {
			return nil, fmt.Errorf("%s: %s: substitute: %w", d.Source, object.RefOf(d.Object), err)
		}
		m, err := object.DecodeMap([]byte(text))
		if err != nil {
			return nil, fmt.Errorf("%s: %s: after substitution the object is not valid YAML: %w", d.Source, object.RefOf(d.Object), err)
		}
		out = append(out, object.Decoded{Object: &unstructured.Unstructured{Object: m}, Source: d.Source})
	}
	return out, nil
}
