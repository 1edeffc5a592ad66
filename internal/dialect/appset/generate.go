// Package appset runs Argo CD's ApplicationSet: generators make
// parameter sets, templates turn each into an Application, and a plan
// says what to create, update and delete, holding mass deletions back.
// It is pure: the controller reads clusters and writes Applications.
package appset

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
)

// Params is one parameter set: Go as goTemplate sees it (nested: .path.basename),
// Flat as fasttemplate sees it ({{path.basename}}, {{path[0]}},
// {{metadata.labels.env}}).
type Params struct {
	Go   map[string]any
	Flat map[string]string
}

func paramsOf(m map[string]any) Params { return Params{Go: m, Flat: flatten(m)} }

// Cluster is a registered cluster as the clusters generator sees it:
// its Secret's name, server, project, labels and annotations.
type Cluster struct {
	Name, Server, Project string
	Labels, Annotations   map[string]string
	// Local is the cluster converge runs in, when no Secret registers it.
	Local bool
}

// Inputs is what generators read outside the set.
type Inputs struct {
	Clusters []Cluster
	// Checkout returns a read-only folder of repoURL at revision, for the
	// git generator; nil refuses it.
	Checkout func(ctx context.Context, repoURL, revision string) (string, error)
	// PullRequests lists a forge repository's open pull requests, for
	// the pullRequest generator; nil refuses it.
	PullRequests func(ctx context.Context, src PullRequestSource) ([]PullRequest, error)
	// Repositories lists a forge owner's repositories, for the
	// scmProvider generator; nil refuses it.
	Repositories func(ctx context.Context, src SCMSource) ([]Repository, error)
	// Branches are repo's branches with their heads (its default branch
	// only unless src.AllBranches); HasPath says whether branch holds
	// path. Both for the scmProvider generator.
	Branches func(ctx context.Context, src SCMSource, repo Repository) ([]Repository, error)
	HasPath  func(ctx context.Context, src SCMSource, repo Repository, path string) (bool, error)

	// How the set templates: generators' values are templates too.
	goTemplate bool
	goOptions  []string
}

// Generated is what one generator produced, with its template override.
type Generated struct {
	// Generator names it: spec.generators[i].list.
	Generator string
	Params    []Params
	Template  *v1alpha1.ApplicationSetTemplate
}

// Generate runs every generator. A generator converge does not run is an
// error naming it, never an empty result: an empty result would delete
// every Application it made.
func Generate(ctx context.Context, set *v1alpha1.ApplicationSet, in Inputs) ([]Generated, error) {
	sp := set.Spec
	for _, f := range []struct {
		name string
		set  bool
	}{{"strategy.type " + strategyType(sp.Strategy), !knownStrategy(sp.Strategy)},
		{"strategy.deletionOrder", sp.Strategy != nil && sp.Strategy.DeletionOrder != "" && sp.Strategy.DeletionOrder != "AllAtOnce"},
		{"ignoreApplicationDifferences", sp.IgnoreApplicationDifferences != nil},
		{"preservedFields", sp.PreservedFields != nil}, {"applyNestedSelectors", sp.ApplyNestedSelectors}} {
		if f.set {
			return nil, fmt.Errorf("spec.%s is not supported by converge yet; nothing was generated, created or deleted", f.name)
		}
	}
	in.goTemplate, in.goOptions = sp.GoTemplate, sp.GoTemplateOptions
	var out []Generated
	for i, g := range set.Spec.Generators {
		gen, err := generate(ctx, fmt.Sprintf("spec.generators[%d]", i), g, in, true)
		if err != nil {
			return nil, err
		}
		out = append(out, gen)
	}
	return out, nil
}

// generate runs one generator at path at; a matrix's children may not
// be matrices themselves (top false).
func generate(ctx context.Context, at string, g v1alpha1.ApplicationSetGenerator, in Inputs, top bool) (Generated, error) {
	if other := unsupported(g); other != "" {
		return Generated{}, fmt.Errorf("%s.%s: the %s generator is not supported by converge yet; nothing was generated, created or deleted", at, other, other)
	}
	if g.Selector != nil {
		return Generated{}, fmt.Errorf("%s.selector: post-selectors are not supported by converge yet; nothing was generated, created or deleted", at)
	}
	switch {
	case g.List != nil:
		gen := Generated{Generator: at + ".list", Template: g.List.Template}
		for j, e := range g.List.Elements {
			var p map[string]any
			if err := json.Unmarshal(e.Raw, &p); err != nil || p == nil {
				return gen, fmt.Errorf("%s.list.elements[%d]: not a JSON object", at, j)
			}
			gen.Params = append(gen.Params, paramsOf(p))
		}
		if y := g.List.ElementsYaml; y != "" {
			var more []map[string]any
			if err := yaml.Unmarshal([]byte(y), &more); err != nil {
				return gen, fmt.Errorf("%s.list.elementsYaml: not a YAML list of objects: %w", at, err)
			}
			for _, p := range more {
				gen.Params = append(gen.Params, paramsOf(p))
			}
		}
		return gen, nil
	case g.Clusters != nil:
		gen := Generated{Generator: at + ".clusters", Template: g.Clusters.Template}
		if g.Clusters.FlatList {
			return gen, fmt.Errorf("%s.clusters.flatList is not supported by converge yet; nothing was generated, created or deleted", at)
		}
		sel, err := metav1.LabelSelectorAsSelector(&g.Clusters.Selector)
		if err != nil {
			return gen, fmt.Errorf("%s.clusters.selector: %w", at, err)
		}
		for _, c := range in.Clusters {
			// A selector picks registered clusters only: the implicit
			// in-cluster has no labels to match (as in Argo CD).
			if !sel.Empty() && (c.Local || !sel.Matches(labels.Set(c.Labels))) {
				continue
			}
			p, err := withValues(clusterParams(c), g.Clusters.Values, in)
			if err != nil {
				return gen, fmt.Errorf("%s.clusters.values: cluster %s: %w", at, c.Name, err)
			}
			gen.Params = append(gen.Params, p)
		}
		return gen, nil
	case g.Git != nil:
		return gitGenerate(ctx, at+".git", g.Git, in)
	case g.PullRequest != nil:
		return pullRequests(ctx, at+".pullRequest", g.PullRequest, in)
	case g.SCMProvider != nil:
		return scmProvider(ctx, at+".scmProvider", g.SCMProvider, in)
	case g.Matrix != nil:
		if !top {
			return Generated{}, fmt.Errorf("%s.matrix: a matrix inside a matrix is not supported by converge yet", at)
		}
		return matrix(ctx, at+".matrix", g.Matrix, in)
	case g.Merge != nil:
		if !top {
			return Generated{}, fmt.Errorf("%s.merge: a merge inside a matrix or merge is not supported by converge yet", at)
		}
		return merge(ctx, at+".merge", g.Merge, in)
	}
	return Generated{}, fmt.Errorf("%s: no generator", at)
}

func strategyType(s *v1alpha1.ApplicationSetStrategy) string {
	if s == nil {
		return ""
	}
	return s.Type
}

func knownStrategy(s *v1alpha1.ApplicationSetStrategy) bool {
	return s == nil || s.Type == "" || s.Type == "AllAtOnce" || s.Type == "RollingSync"
}

func unsupported(g v1alpha1.ApplicationSetGenerator) string {
	switch {
	case g.ClusterDecisionResource != nil:
		return "clusterDecisionResource"
	case g.Plugin != nil:
		return "plugin"
	}
	return ""
}

func clusterParams(c Cluster) Params {
	p := map[string]any{"name": c.Name, "nameNormalized": normalize(c.Name), "server": c.Server, "project": c.Project,
		"metadata": map[string]any{"labels": stringMap(c.Labels), "annotations": stringMap(c.Annotations)}}
	return paramsOf(p)
}

// withValues adds a generator's values to p, each a template filled
// with p's other parameters (values: {revision: '{{metadata.labels.env}}'}),
// as Argo CD does. A value does not see the other values.
func withValues(p Params, values map[string]string, in Inputs) (Params, error) {
	if len(values) == 0 {
		return p, nil
	}
	fill, err := filler(in.goTemplate, in.goOptions, p)
	if err != nil {
		return p, err
	}
	vals := map[string]any{}
	flat := map[string]string{}
	for _, k := range slices.Sorted(maps.Keys(values)) {
		v, err := fill(values[k])
		if err != nil {
			return p, fmt.Errorf("%s: %w", k, err)
		}
		vals[k], flat["values."+k] = v, v
	}
	p.Go["values"] = vals
	for k, v := range flat {
		p.Flat[k] = v
	}
	return p, nil
}

func stringMap(m map[string]string) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

var notDNS = regexp.MustCompile(`[^a-z0-9.-]+`)

// normalize is Argo CD's nameNormalized: a name fit for a Kubernetes
// object, lower case with other characters as '-'.
func normalize(s string) string {
	return strings.Trim(notDNS.ReplaceAllString(strings.ToLower(s), "-"), "-.")
}

// flatten is a parameter set as fasttemplate sees it: nested keys joined
// with dots (metadata.labels.env, values.revision).
func flatten(p map[string]any) map[string]string {
	out := map[string]string{}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch t := v.(type) {
		case map[string]any:
			keys := make([]string, 0, len(t))
			for k := range t {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				key := k
				if prefix != "" {
					key = prefix + "." + k
				}
				walk(key, t[k])
			}
		case string:
			out[prefix] = t
		case nil:
			out[prefix] = ""
		default:
			data, _ := json.Marshal(t)
			out[prefix] = string(data)
		}
	}
	walk("", p)
	return out
}
