package controller

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"converge.dev/converge/internal/clustertest"
	"converge.dev/converge/internal/dialect/argocd"
	"converge.dev/converge/internal/dialect/flux"
	"converge.dev/converge/internal/dialect/specfields"
)

// upstreamField is one leaf of an upstream CRD's spec schema.
type upstreamField struct {
	path, typ, constraint string
}

func readUpstream(t *testing.T, kind string) []upstreamField {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "upstream", kind+".txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []upstreamField
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		cols := strings.Split(line, "\t")
		uf := upstreamField{path: cols[0], typ: cols[1]}
		if len(cols) > 2 {
			uf.constraint = cols[2]
		}
		out = append(out, uf)
	}
	return out
}

// sample is a value of the field's type that passes its upstream
// constraint.
func (f upstreamField) sample() any {
	if v, ok := strings.CutPrefix(f.constraint, "enum="); ok {
		if strings.HasPrefix(f.typ, "array:") {
			return []any{v}
		}
		return v
	}
	pattern, _ := strings.CutPrefix(f.constraint, "pattern=")
	switch f.typ {
	case "string":
		switch {
		case strings.Contains(pattern, "(ms|s|m"):
			return "1m"
		case strings.HasPrefix(pattern, "^oci://"):
			return "oci://registry.example/charts"
		case strings.Contains(pattern, "http"):
			return "https://example.com/repo"
		}
		return "xy"
	case "integer", "number":
		return int64(1)
	case "boolean":
		return true
	case "int-or-string":
		return "1"
	case "array:string":
		return []any{"xy"}
	case "array:integer":
		return []any{int64(1)}
	}
	if strings.HasPrefix(f.typ, "array:") {
		return []any{map[string]any{"k": "v"}}
	}
	return map[string]any{"k": "v"} // map, object, any
}

// setPath sets v at a path whose "[]" segments are one-item lists.
func setPath(obj map[string]any, path string, v any) {
	segs := strings.Split(path, ".")
	cur := obj
	for i, seg := range segs {
		name, list := strings.CutSuffix(seg, "[]")
		if i == len(segs)-1 {
			cur[name] = v
			return
		}
		if list {
			items, _ := cur[name].([]any)
			if len(items) == 0 {
				items = []any{map[string]any{}}
				cur[name] = items
			}
			cur = items[0].(map[string]any)
			continue
		}
		next, ok := cur[name].(map[string]any)
		if !ok {
			next = map[string]any{}
			cur[name] = next
		}
		cur = next
	}
}

func getPath(obj map[string]any, path string) (any, bool) {
	var cur any = obj
	for _, seg := range strings.Split(path, ".") {
		name, list := strings.CutSuffix(seg, "[]")
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[name]; !ok {
			return nil, false
		}
		if list {
			items, ok := cur.([]any)
			if !ok || len(items) == 0 {
				return nil, false
			}
			cur = items[0]
		}
	}
	return cur, true
}

// TestUpstreamSchemaScan writes, for every CRD converge installs, one
// object holding every field of the upstream schema version converge
// serves (Flux's and Argo CD's, listed in testdata/upstream). Every
// field must come back from the API server as written (none pruned by
// converge's narrower schema), and each must be either one converge acts
// on or one its UnsupportedFields condition names. Every field converge
// claims to act on must exist upstream.
func TestUpstreamSchemaScan(t *testing.T) {
	setup(t)
	ns := clustertest.Namespace(t)
	dc, err := dynamic.NewForConfig(clustertest.RESTConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	kinds := []struct {
		kind        string
		gvr         schema.GroupVersionResource
		supported   []string
		unsupported func(*unstructured.Unstructured) []string
	}{
		{"HelmRelease", schema.GroupVersionResource{Group: "helm.toolkit.fluxcd.io", Version: "v2", Resource: "helmreleases"}, flux.Supported("HelmRelease"), flux.Unsupported},
		{"Kustomization", schema.GroupVersionResource{Group: "kustomize.toolkit.fluxcd.io", Version: "v1", Resource: "kustomizations"}, flux.Supported("Kustomization"), flux.Unsupported},
		{"GitRepository", schema.GroupVersionResource{Group: "source.toolkit.fluxcd.io", Version: "v1", Resource: "gitrepositories"}, flux.Supported("GitRepository"), flux.Unsupported},
		{"HelmRepository", schema.GroupVersionResource{Group: "source.toolkit.fluxcd.io", Version: "v1", Resource: "helmrepositories"}, flux.Supported("HelmRepository"), flux.Unsupported},
		{"HelmChart", schema.GroupVersionResource{Group: "source.toolkit.fluxcd.io", Version: "v1", Resource: "helmcharts"}, flux.Supported("HelmChart"), flux.Unsupported},
		{"OCIRepository", schema.GroupVersionResource{Group: "source.toolkit.fluxcd.io", Version: "v1", Resource: "ocirepositories"}, flux.Supported("OCIRepository"), flux.Unsupported},
		{"ImageRepository", schema.GroupVersionResource{Group: "image.toolkit.fluxcd.io", Version: "v1", Resource: "imagerepositories"}, flux.Supported("ImageRepository"), flux.Unsupported},
		{"ImagePolicy", schema.GroupVersionResource{Group: "image.toolkit.fluxcd.io", Version: "v1", Resource: "imagepolicies"}, flux.Supported("ImagePolicy"), flux.Unsupported},
		{"ImageUpdateAutomation", schema.GroupVersionResource{Group: "image.toolkit.fluxcd.io", Version: "v1", Resource: "imageupdateautomations"}, flux.Supported("ImageUpdateAutomation"), flux.Unsupported},
		{"Provider", schema.GroupVersionResource{Group: "notification.toolkit.fluxcd.io", Version: "v1beta3", Resource: "providers"}, flux.Supported("Provider"), flux.Unsupported},
		{"Alert", schema.GroupVersionResource{Group: "notification.toolkit.fluxcd.io", Version: "v1beta3", Resource: "alerts"}, flux.Supported("Alert"), flux.Unsupported},
		{"Receiver", schema.GroupVersionResource{Group: "notification.toolkit.fluxcd.io", Version: "v1", Resource: "receivers"}, flux.Supported("Receiver"), flux.Unsupported},
		{"Application", schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "applications"}, argocd.Supported(), argocd.Unsupported},
		{"AppProject", schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "appprojects"}, argocd.ProjectSupported(), argocd.ProjectUnsupported},
	}
	for _, k := range kinds {
		t.Run(k.kind, func(t *testing.T) {
			fields := readUpstream(t, k.kind)
			obj := map[string]any{}
			for _, f := range fields {
				setPath(obj, f.path, f.sample())
			}
			u := &unstructured.Unstructured{Object: obj}
			u.SetAPIVersion(k.gvr.GroupVersion().String())
			u.SetKind(k.kind)
			u.SetName("scan")
			// The sample sets spec.suspend where the kind has it, and the
			// namespace is the test's own: the object deploys nothing.
			u.SetNamespace(ns)
			created, err := dc.Resource(k.gvr).Namespace(ns).Create(context.Background(), u, metav1.CreateOptions{})
			if err != nil {
				t.Fatalf("create %s with every upstream field: %v", k.kind, err)
			}
			t.Cleanup(func() {
				_ = dc.Resource(k.gvr).Namespace(ns).Delete(context.Background(), "scan", metav1.DeleteOptions{})
			})
			reported := k.unsupported(created)
			var pruned, uncovered []string
			for _, f := range fields {
				got, ok := getPath(created.Object, f.path)
				if !ok || !reflect.DeepEqual(got, f.sample()) {
					pruned = append(pruned, fmt.Sprintf("%s (wrote %v, read %v)", f.path, f.sample(), got))
					continue
				}
				inSupported := specfields.Covers(k.supported, f.path)
				inReported := specfields.Covers(reported, f.path)
				if inSupported == inReported {
					uncovered = append(uncovered, fmt.Sprintf("%s (supported %t, reported %t)", f.path, inSupported, inReported))
				}
			}
			if len(pruned) > 0 {
				t.Errorf("%d upstream fields did not round-trip:\n  %s", len(pruned), strings.Join(pruned, "\n  "))
			}
			if len(uncovered) > 0 {
				t.Errorf("%d upstream fields are not exactly one of supported or reported:\n  %s", len(uncovered), strings.Join(uncovered, "\n  "))
			}
			for _, s := range k.supported {
				s = strings.TrimSuffix(s, ".*")
				found := false
				for _, f := range fields {
					if f.path == s || strings.HasPrefix(f.path, s+".") || strings.HasPrefix(f.path, s+"[]") {
						found = true
						break
					}
				}
				if !found {
					t.Errorf("converge claims to act on %s, which the upstream schema does not have", s)
				}
			}
			t.Logf("%s: %d upstream fields, %d named unsupported", k.kind, len(fields), len(reported))
		})
	}
}
