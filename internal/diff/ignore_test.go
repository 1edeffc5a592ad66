package diff

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

func readConformance(t *testing.T, name string) *unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "..", "shared", "conformance", "argocd-ignore-differences", name))
	if err != nil {
		t.Fatalf("conformance data: %v", err)
	}
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(data, &u.Object); err != nil {
		t.Fatal(err)
	}
	return u
}

// TestIgnoreDifferencesConformance runs Argo CD's ignoreDifferences
// expectations: a replica count owned by kube-controller-manager, or named
// by pointer or jq path, stops being a difference; a rule naming another
// manager changes nothing.
func TestIgnoreDifferencesConformance(t *testing.T) {
	desired := readConformance(t, "desired_deployment.yaml")
	live := readConformance(t, "live_deployment_with_managed_replica.yaml")
	tests := []struct {
		name    string
		rules   []Ignore
		ignored bool
	}{
		{"no rule", nil, false},
		{"managedFieldsManagers kube-controller-manager", []Ignore{{Group: "apps", Kind: "Deployment", ManagedFieldsManagers: []string{"kube-controller-manager"}}}, true},
		{"jsonPointers", []Ignore{{Group: "apps", Kind: "Deployment", JSONPointers: []string{"/spec/replicas"}}}, true},
		{"jqPathExpressions", []Ignore{{Group: "apps", Kind: "Deployment", JQPathExpressions: []string{".spec.replicas"}}}, true},
		{"managedFieldsManagers some-other-manager", []Ignore{{Group: "apps", Kind: "Deployment", ManagedFieldsManagers: []string{"some-other-manager"}}}, false},
		{"rule for another kind", []Ignore{{Group: "apps", Kind: "StatefulSet", JSONPointers: []string{"/spec/replicas"}}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Compare("deploy", live, desired, tt.rules)
			if err != nil {
				t.Fatal(err)
			}
			shows := strings.Contains(r.Unified, "-  replicas: 2") && strings.Contains(r.Unified, "+  replicas: 3")
			if shows == tt.ignored {
				t.Errorf("replica difference shown: %t, want %t\n%s", shows, !tt.ignored, r.Unified)
			}
		})
	}
}

func TestRespectCopiesLiveValues(t *testing.T) {
	desired := readConformance(t, "desired_deployment.yaml")
	live := readConformance(t, "live_deployment_with_managed_replica.yaml")
	rules := []Ignore{{Group: "apps", Kind: "Deployment", ManagedFieldsManagers: []string{"kube-controller-manager"}}}
	if err := Respect(desired, live, rules); err != nil {
		t.Fatal(err)
	}
	if n, _, _ := unstructured.NestedFieldNoCopy(desired.Object, "spec", "replicas"); fmt.Sprint(n) != "2" {
		t.Errorf("desired replicas after Respect: %v, want live's 2", n)
	}
	img, _, _ := unstructured.NestedSlice(desired.Object, "spec", "template", "spec", "containers")
	if len(img) == 0 {
		t.Error("Respect dropped fields it should not touch")
	}
}

func TestJQPathErrors(t *testing.T) {
	desired := readConformance(t, "desired_deployment.yaml")
	_, err := Compare("deploy", desired, desired, []Ignore{{JQPathExpressions: []string{".spec.[["}}})
	if err == nil || !strings.Contains(err.Error(), "jqPathExpressions") {
		t.Errorf("bad jq: got %v, want an error naming jqPathExpressions", err)
	}
}

func TestIgnoreMatchesSelectors(t *testing.T) {
	obj := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": "web", "namespace": "prod",
			"labels": map[string]any{"app": "web", "tier": "front"}, "annotations": map[string]any{"autoscaled": "true"}}}}
	cases := []struct {
		ig   Ignore
		want bool
	}{
		{Ignore{}, true},
		{Ignore{Kind: "Deployment", LabelSelector: "app=web"}, true},
		{Ignore{LabelSelector: "app in (web,api),tier!=back"}, true},
		{Ignore{LabelSelector: "app=api"}, false},
		{Ignore{AnnotationSelector: "autoscaled=true"}, true},
		{Ignore{AnnotationSelector: "autoscaled=false"}, false},
		{Ignore{LabelSelector: "app=web", AnnotationSelector: "missing"}, false},
		{Ignore{LabelSelector: "(((not a selector"}, false},
		{Ignore{Kind: "StatefulSet", LabelSelector: "app=web"}, false},
	}
	for _, tc := range cases {
		if got := tc.ig.Matches(obj); got != tc.want {
			t.Errorf("%+v: Matches = %v, want %v", tc.ig, got, tc.want)
		}
	}
}
