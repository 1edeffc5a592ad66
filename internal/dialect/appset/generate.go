// Package appset runs Argo CD's ApplicationSet: generators make
// parameter sets, templates turn each into an Application, and a plan
// says what to create, update and delete, holding mass deletions back.
// It is pure: the controller reads clusters and writes Applications.
package appset

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
)

// Params is one parameter set, nested as goTemplate sees it.
type Params map[string]any

// Cluster is a registered cluster as the clusters generator sees it:
// its Secret's name, server, project, labels and annotations.
type Cluster struct {
	Name, Server, Project string
	Labels, Annotations   map[string]string
	// Local is the cluster converge runs in, when no Secret registers it.
	Local bool
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
func Generate(set *v1alpha1.ApplicationSet, clusters []Cluster) ([]Generated, error) {
	var out []Generated
	for i, g := range set.Spec.Generators {
		at := fmt.Sprintf("spec.generators[%d]", i)
		if other := unsupported(g); other != "" {
			return nil, fmt.Errorf("%s.%s: the %s generator is not supported by converge yet; nothing was generated, created or deleted", at, other, other)
		}
		if g.Selector != nil {
			return nil, fmt.Errorf("%s.selector: post-selectors are not supported by converge yet; nothing was generated, created or deleted", at)
		}
		switch {
		case g.List != nil:
			gen := Generated{Generator: at + ".list", Template: g.List.Template}
			for j, e := range g.List.Elements {
				var p Params
				if err := json.Unmarshal(e.Raw, &p); err != nil || p == nil {
					return nil, fmt.Errorf("%s.list.elements[%d]: not a JSON object", at, j)
				}
				gen.Params = append(gen.Params, p)
			}
			out = append(out, gen)
		case g.Clusters != nil:
			gen := Generated{Generator: at + ".clusters", Template: g.Clusters.Template}
			sel, err := metav1.LabelSelectorAsSelector(&g.Clusters.Selector)
			if err != nil {
				return nil, fmt.Errorf("%s.clusters.selector: %w", at, err)
			}
			for _, c := range clusters {
				// A selector picks registered clusters only: the implicit
				// in-cluster has no labels to match (as in Argo CD).
				if !sel.Empty() && (c.Local || !sel.Matches(labels.Set(c.Labels))) {
					continue
				}
				gen.Params = append(gen.Params, clusterParams(c, g.Clusters.Values))
			}
			out = append(out, gen)
		default:
			return nil, fmt.Errorf("%s: no generator", at)
		}
	}
	return out, nil
}

func unsupported(g v1alpha1.ApplicationSetGenerator) string {
	switch {
	case g.Git != nil:
		return "git"
	case g.Matrix != nil:
		return "matrix"
	case g.Merge != nil:
		return "merge"
	case g.PullRequest != nil:
		return "pullRequest"
	case g.SCMProvider != nil:
		return "scmProvider"
	case g.ClusterDecisionResource != nil:
		return "clusterDecisionResource"
	case g.Plugin != nil:
		return "plugin"
	}
	return ""
}

func clusterParams(c Cluster, values map[string]string) Params {
	p := Params{"name": c.Name, "nameNormalized": normalize(c.Name), "server": c.Server, "project": c.Project,
		"metadata": map[string]any{"labels": stringMap(c.Labels), "annotations": stringMap(c.Annotations)}}
	vals := map[string]any{}
	for k, v := range values {
		vals[k] = v
	}
	p["values"] = vals
	return p
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
func flatten(p Params) map[string]string {
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
	walk("", map[string]any(p))
	return out
}
