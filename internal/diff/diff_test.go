package diff

import (
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

func obj(t *testing.T, s string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(s), &u.Object); err != nil {
		t.Fatal(err)
	}
	return u
}

const liveCM = `
apiVersion: v1
kind: ConfigMap
metadata:
  name: c
  uid: 123
  resourceVersion: "9"
  creationTimestamp: "2026-01-01T00:00:00Z"
  managedFields: [{manager: converge}]
  annotations: {kubectl.kubernetes.io/last-applied-configuration: "{}"}
data: {k: v}
`

func TestCompare(t *testing.T) {
	tests := []struct {
		name       string
		live, pred string
		changed    bool
		contains   []string
		notContain []string
	}{
		{name: "server-set fields only", live: liveCM, pred: `{apiVersion: v1, kind: ConfigMap, metadata: {name: c, uid: 456}, data: {k: v}}`},
		{name: "value changed", live: liveCM, pred: `{apiVersion: v1, kind: ConfigMap, metadata: {name: c}, data: {k: w}}`,
			changed: true, contains: []string{"--- live/cm", "+++ merged/cm", "-  k: v", "+  k: w"}},
		{name: "created", pred: `{apiVersion: v1, kind: ConfigMap, metadata: {name: c}}`, changed: true, contains: []string{"+kind: ConfigMap"}},
		{name: "secret values masked", changed: true,
			live:       `{apiVersion: v1, kind: Secret, metadata: {name: s}, data: {password: aHVudGVyMg==, user: YWRtaW4=}}`,
			pred:       `{apiVersion: v1, kind: Secret, metadata: {name: s}, data: {password: c3dvcmRmaXNo, user: YWRtaW4=}}`,
			contains:   []string{"-  password: +++", "+  password: +++"},
			notContain: []string{"aHVudGVyMg", "c3dvcmRmaXNo", "YWRtaW4"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var live, pred *unstructured.Unstructured
			if tt.live != "" {
				live = obj(t, tt.live)
			}
			if tt.pred != "" {
				pred = obj(t, tt.pred)
			}
			var before *unstructured.Unstructured
			if live != nil {
				before = live.DeepCopy()
			}
			got, err := Compare("cm", live, pred, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got.Changed != tt.changed {
				t.Fatalf("changed: got %t, want %t\n%s", got.Changed, tt.changed, got.Unified)
			}
			for _, s := range tt.contains {
				if !strings.Contains(got.Unified, s) {
					t.Errorf("diff lacks %q:\n%s", s, got.Unified)
				}
			}
			for _, s := range tt.notContain {
				if strings.Contains(got.Unified, s) {
					t.Errorf("diff shows %q:\n%s", s, got.Unified)
				}
			}
			if live != nil && !reflect.DeepEqual(before, live) {
				t.Error("Compare modified its input")
			}
		})
	}
}
