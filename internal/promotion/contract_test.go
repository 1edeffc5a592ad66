package promotion_test

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"converge.dev/converge/internal/promotion"
	"converge.dev/converge/internal/render"
)

func objects(t *testing.T, file string) []*unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	ds, err := render.DecodeManifests(data, file)
	if err != nil {
		t.Fatal(err)
	}
	var out []*unstructured.Unstructured
	for _, d := range ds {
		out = append(out, d.Object)
	}
	return out
}

// TestContractGate: the mode is the worst check's; the gate fails on a
// deleted image, or on impossible without a roll-forward plan, waits on
// what could not be checked, and otherwise passes saying why.
func TestContractGate(t *testing.T) {
	auto := func(d string) promotion.Check {
		return promotion.Check{Dimension: d, Mode: promotion.RollbackAutomatic, Message: "ok"}
	}
	for _, tc := range []struct {
		name        string
		checks      []promotion.Check
		rollForward string
		mode        string
		phase       promotion.Phase
		msg         string
	}{
		{"all automatic", []promotion.Check{auto("image"), auto("config")}, "", "automatic", promotion.Passed, "rollback is automatic"},
		{"a secret gone", []promotion.Check{auto("image"), {Dimension: "config", Mode: "manual", Message: "Secret shop/db is missing"}}, "",
			"manual", promotion.Passed, "rollback is manual: config: Secret shop/db is missing"},
		{"old image deleted", []promotion.Check{{Dimension: "image", Mode: "manual", Refuse: true, Message: "old image digest deleted"}, auto("config")}, "",
			"manual", promotion.Failed, "image: old image digest deleted"},
		{"irreversible, no plan", []promotion.Check{auto("image"), promotion.DatabaseCheck([]string{"irreversible"})}, "",
			"impossible", promotion.Failed, "rollback is impossible (database: the migration is irreversible) and no roll-forward plan"},
		{"irreversible, a plan", []promotion.Check{auto("image"), promotion.DatabaseCheck([]string{"irreversible"})}, "ship 1.4.3 with the column back",
			"impossible", promotion.Passed, "roll forward: ship 1.4.3 with the column back"},
		{"registry unreachable", []promotion.Check{{Dimension: "image", Message: "registry unreachable"}, auto("config")}, "",
			"manual", promotion.Pending, "cannot check image: registry unreachable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := promotion.Judge(tc.checks, tc.rollForward)
			phase, msg := c.Gate()
			if c.Mode != tc.mode || phase != tc.phase || !strings.Contains(msg, tc.msg) {
				t.Errorf("got %s %s %q, want %s %s containing %q", c.Mode, phase, msg, tc.mode, tc.phase, tc.msg)
			}
		})
	}
	for in, want := range map[string]string{"": "automatic", "none": "automatic", "reversible": "manual", "irreversible": "impossible"} {
		if got := promotion.DatabaseCheck([]string{in}).Mode; got != want {
			t.Errorf("migration %q: %s, want %s", in, got, want)
		}
	}
}

// TestConfigRefs: every way a pod reads a ConfigMap or Secret, each
// once, in the workload's namespace.
func TestConfigRefs(t *testing.T) {
	var got []string
	for _, r := range promotion.ConfigRefs(objects(t, "testdata/contract/configrefs.yaml"), "shop") {
		got = append(got, fmt.Sprintf("%s optional=%v", r, r.Optional))
	}
	want := []string{
		"ConfigMap shop/ca-bundle optional=false", "ConfigMap shop/flags optional=true", "ConfigMap shop/settings optional=false",
		"Secret batch/smtp optional=false", "Secret shop/db optional=false", "Secret shop/db-admin optional=false",
		"Secret shop/orders-tls optional=false", "Secret shop/token optional=false",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestCloudTouched: load-balancer annotations, storage classes (changed
// or dropped) count; other annotations and an unchanged ingress class do
// not.
func TestCloudTouched(t *testing.T) {
	got := promotion.CloudTouched(objects(t, "testdata/contract/cloud-before.yaml"), objects(t, "testdata/contract/cloud-after.yaml"))
	want := []string{
		"PersistentVolumeClaim uploads spec.storageClassName",
		"Service orders annotation service.beta.kubernetes.io/aws-load-balancer-type",
		"StatefulSet db volumeClaimTemplates data storageClassName",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got := promotion.CloudTouched(objects(t, "testdata/contract/cloud-before.yaml"), objects(t, "testdata/contract/cloud-before.yaml")); len(got) != 0 {
		t.Errorf("an unchanged render touches %v", got)
	}
}
