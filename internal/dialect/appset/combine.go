package appset

import (
	"context"
	"fmt"
	"strings"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
)

// matrixGenerator is Argo CD's matrix: the product of two generators.
type matrixGenerator struct {
	Generators []v1alpha1.ApplicationSetGenerator `json:"generators"`
	Template   *v1alpha1.ApplicationSetTemplate   `json:"template,omitempty"`
}

// matrix yields every pair of its two children's sets, merged; the
// second child's value wins a key both have.
func matrix(ctx context.Context, at string, raw *apiextensionsv1.JSON, in Inputs) (Generated, error) {
	var m matrixGenerator
	if err := strictJSON(raw.Raw, &m); err != nil {
		return Generated{}, fmt.Errorf("%s: %w", at, err)
	}
	gen := Generated{Generator: at, Template: m.Template}
	if len(m.Generators) != 2 {
		return gen, fmt.Errorf("%s.generators: a matrix takes exactly two generators, not %d", at, len(m.Generators))
	}
	var sides [2]Generated
	for i, child := range m.Generators {
		g, err := generate(ctx, fmt.Sprintf("%s.generators[%d]", at, i), child, in, false)
		if err != nil {
			return gen, err
		}
		if g.Template != nil {
			return gen, fmt.Errorf("%s.generators[%d]: a template inside a matrix's generator is not supported by converge yet", at, i)
		}
		sides[i] = g
	}
	for _, a := range sides[0].Params {
		for _, b := range sides[1].Params {
			gen.Params = append(gen.Params, combine(a, b))
		}
	}
	return gen, nil
}

// mergeGenerator is Argo CD's merge: the first generator's sets, each
// overridden by the sets of the later ones that agree with it on every
// merge key.
type mergeGenerator struct {
	MergeKeys  []string                           `json:"mergeKeys"`
	Generators []v1alpha1.ApplicationSetGenerator `json:"generators"`
	Template   *v1alpha1.ApplicationSetTemplate   `json:"template,omitempty"`
}

// merge joins on the merge keys (flat names: "server", "values.region");
// a later set that matches no base set adds nothing, as in Argo CD.
func merge(ctx context.Context, at string, raw *apiextensionsv1.JSON, in Inputs) (Generated, error) {
	var m mergeGenerator
	if err := strictJSON(raw.Raw, &m); err != nil {
		return Generated{}, fmt.Errorf("%s: %w", at, err)
	}
	gen := Generated{Generator: at, Template: m.Template}
	if len(m.Generators) < 2 || len(m.MergeKeys) == 0 {
		return gen, fmt.Errorf("%s: a merge takes mergeKeys and at least two generators", at)
	}
	var sides []Generated
	for i, child := range m.Generators {
		g, err := generate(ctx, fmt.Sprintf("%s.generators[%d]", at, i), child, in, false)
		if err != nil {
			return gen, err
		}
		if g.Template != nil {
			return gen, fmt.Errorf("%s.generators[%d]: a template inside a merge's generator is not supported by converge yet", at, i)
		}
		sides = append(sides, g)
	}
	key := func(p Params) (string, bool) {
		var parts []string
		for _, k := range m.MergeKeys {
			v, ok := p.Flat[k]
			if !ok {
				return "", false
			}
			parts = append(parts, v)
		}
		return strings.Join(parts, "\x00"), true
	}
	base := sides[0].Params
	index := map[string]int{}
	for i, p := range base {
		k, ok := key(p)
		if !ok {
			return gen, fmt.Errorf("%s.generators[0]: a parameter set lacks a merge key (%s)", at, strings.Join(m.MergeKeys, ", "))
		}
		if _, dup := index[k]; dup {
			return gen, fmt.Errorf("%s.generators[0]: two parameter sets have the same merge key values", at)
		}
		index[k] = i
	}
	out := make([]Params, len(base))
	copy(out, base)
	for _, side := range sides[1:] {
		for _, p := range side.Params {
			k, ok := key(p)
			if !ok {
				continue
			}
			if i, found := index[k]; found {
				out[i] = combine(out[i], p)
			}
		}
	}
	gen.Params = out
	return gen, nil
}

// combine is a with b laid over it: b's value wins a key both have.
func combine(a, b Params) Params {
	p := Params{Go: overlay(a.Go, b.Go, false), Flat: map[string]string{}}
	for k, v := range a.Flat {
		p.Flat[k] = v
	}
	for k, v := range b.Flat {
		p.Flat[k] = v
	}
	return p
}
