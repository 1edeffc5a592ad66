package drift

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

func load(t *testing.T, name string) *unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(data, &m); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return &unstructured.Unstructured{Object: m}
}

// seedPolicy is the seed's §8.1 list, as DRIFT.md writes it.
var seedPolicy = Policy{
	Name: "production",
	Allow: []Rule{
		{Paths: []string{"/status", "/metadata/finalizers"}},
		{Kinds: []string{"apps/Deployment"}, Paths: []string{"/spec/replicas"}, When: WhenHPATargets},
		{Kinds: []string{"cert-manager.io/Certificate"}, Paths: []string{"/status"}},
	},
	Forbid: []Rule{
		{Kinds: []string{"apps/*"}, Paths: []string{"/spec/template/spec/containers/*/image", "/spec/template/spec/containers/*/env",
			"/spec/template/spec/serviceAccountName", "/spec/template/spec/securityContext"}},
		{Kinds: []string{"networking.k8s.io/Ingress"}, Paths: []string{"/spec/rules/*/host"}},
		{Kinds: []string{"networking.k8s.io/NetworkPolicy"}, Deletion: true},
	},
	Default: Report,
}

func TestExplain(t *testing.T) {
	conflicts := []string{`.spec.template.spec.containers[name="app"].image`, `.spec.replicas`}
	type want struct{ manager, category, action, desired, live string }
	cases := []struct {
		name   string
		policy Policy
		want   map[string]want // by path
		leave  []string
	}{{
		name: "no policy",
		want: map[string]want{
			`.spec.template.spec.containers[name="app"].image`: {"kubectl-set", "unauthorized", "report", `"nginx:1.42.0"`, `"nginx:1.50.0"`},
			`.spec.replicas`:                           {"kube-controller-manager", "controller-managed", "allow", "2", "4"},
			`.metadata.annotations.team`:               {"", "unattributed", "report", `"payments"`, ""},
			`.metadata.labels.policy.example/injected`: {"", "policy-mutation", "report", "", `"true"`},
		},
		leave: []string{".spec.replicas"},
	}, {
		name:   "seed §8.1",
		policy: seedPolicy,
		want: map[string]want{
			`.spec.template.spec.containers[name="app"].image`: {"kubectl-set", "unauthorized", "revert", `"nginx:1.42.0"`, `"nginx:1.50.0"`},
			`.spec.replicas`:                           {"kube-controller-manager", "controller-managed", "allow", "2", "4"},
			`.metadata.annotations.team`:               {"", "unattributed", "report", `"payments"`, ""},
			`.metadata.labels.policy.example/injected`: {"", "policy-mutation", "report", "", `"true"`},
		},
		leave: []string{".spec.replicas"},
	}, {
		name:   "default ignore, kubectl-set allowed",
		policy: Policy{Name: "p", Default: Ignore, Allow: []Rule{{Kinds: []string{"Deployment"}, Paths: []string{"/spec/template/spec/containers/app"}}}},
		want: map[string]want{
			`.spec.template.spec.containers[name="app"].image`: {"kubectl-set", "unauthorized", "allow", `"nginx:1.42.0"`, `"nginx:1.50.0"`},
			// Under every policy, an HPA keeps its replicas.
			`.spec.replicas`: {"kube-controller-manager", "controller-managed", "allow", "2", "4"},
		},
		leave: []string{`.metadata.annotations.team`, `.metadata.labels.policy.example/injected`, `.spec.replicas`, `.spec.template.spec.containers[name="app"].image`},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			items, leave, err := Explain(Input{Desired: load(t, "desired.yaml"), Live: load(t, "live.yaml"), Predicted: load(t, "predicted.yaml"),
				Conflicts: conflicts, SameRevision: true, Self: "converge", Policy: tc.policy})
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]want{}
			for _, it := range items {
				got[it.Path] = want{it.Manager, string(it.Category), string(it.Action), it.Desired, it.Live}
				if it.Evidence == "" || it.Rule == "" {
					t.Errorf("%s: no evidence or rule: %+v", it.Path, it)
				}
			}
			for p, w := range tc.want {
				if got[p] != w {
					t.Errorf("%s: got %+v, want %+v", p, got[p], w)
				}
			}
			for p, g := range got {
				if _, ok := tc.want[p]; !ok {
					t.Errorf("unexpected item %s: %+v", p, g)
				}
			}
			var gotLeave []string
			for _, p := range leave {
				gotLeave = append(gotLeave, p.String())
			}
			if strings.Join(sorted(gotLeave), " ") != strings.Join(sorted(tc.leave), " ") {
				t.Errorf("leave: got %v, want %v", gotLeave, tc.leave)
			}
		})
	}
}

func TestExplainOtherRevisionReportsConflictsOnly(t *testing.T) {
	items, _, err := Explain(Input{Desired: load(t, "desired.yaml"), Live: load(t, "live.yaml"), Predicted: load(t, "predicted.yaml"),
		Conflicts: []string{`.spec.template.spec.containers[name="app"].image`}, Self: "converge"})
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, it := range items {
		paths = append(paths, it.Path)
	}
	// The removed annotation may be a change in Git: not drift.
	want := `.metadata.labels.policy.example/injected .spec.template.spec.containers[name="app"].image`
	if got := strings.Join(sorted(paths), " "); got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestRemoveLeavesNoShell(t *testing.T) {
	obj := load(t, "desired.yaml").Object
	items, leave, err := Explain(Input{Desired: load(t, "desired.yaml"), Live: load(t, "live.yaml"),
		Conflicts: []string{`.spec.template.spec.containers[name="app"].image`}, Self: "converge",
		Policy: Policy{Name: "p", Allow: []Rule{{Paths: []string{"/spec/template/spec/containers/*/image"}}}}})
	if err != nil || len(leave) != 1 {
		t.Fatalf("leave %v, items %v, err %v", leave, items, err)
	}
	Remove(obj, leave[0])
	c, _, _ := unstructured.NestedSlice(obj, "spec", "template", "spec", "containers")
	if len(c) != 1 || c[0].(map[string]any)["image"] != nil || c[0].(map[string]any)["name"] != "app" {
		t.Errorf("containers after removing the image: %v", c)
	}
}

func TestSecretValuesMasked(t *testing.T) {
	desired := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Secret",
		"metadata": map[string]any{"name": "s", "namespace": "n"}, "data": map[string]any{"password": "aHVudGVyMg=="}}}
	live := desired.DeepCopy()
	live.Object["data"] = map[string]any{"password": "c3dvcmRmaXNo"}
	live.SetManagedFields(nil)
	live.Object["metadata"].(map[string]any)["managedFields"] = []any{map[string]any{"manager": "kubectl-edit", "operation": "Update",
		"apiVersion": "v1", "fieldsType": "FieldsV1", "fieldsV1": map[string]any{"f:data": map[string]any{"f:password": map[string]any{}}}}}
	items, _, err := Explain(Input{Desired: desired, Live: live, Conflicts: []string{".data.password"}, Self: "converge"})
	if err != nil || len(items) != 1 {
		t.Fatalf("items %v, err %v", items, err)
	}
	if s := items[0].Desired + items[0].Live + items[0].String(); strings.Contains(s, "aHVudGVyMg") || strings.Contains(s, "c3dvcmRmaXNo") {
		t.Errorf("a Secret value leaked: %s", s)
	}
}

func TestForbidFightsHPA(t *testing.T) {
	pol := Policy{Name: "p", Forbid: []Rule{{Paths: []string{"/spec/replicas"}}}}
	items, leave, err := Explain(Input{Desired: load(t, "desired.yaml"), Live: load(t, "live.yaml"), Conflicts: []string{".spec.replicas"}, Self: "converge", Policy: pol})
	if err != nil {
		t.Fatal(err)
	}
	if it, _ := findItem(items, ".spec.replicas"); it.Action != Revert || len(leave) != 0 {
		t.Errorf("a forbid rule on replicas: %+v, leave %v", it, leave)
	}
}

func TestDeletedForbidden(t *testing.T) {
	np := Deleted(refOf("networking.k8s.io", "NetworkPolicy"), seedPolicy)
	if np.Action != Revert || np.Category != Unauthorized {
		t.Errorf("NetworkPolicy deleted: got %s/%s, want revert/unauthorized", np.Action, np.Category)
	}
	cm := Deleted(refOf("", "ConfigMap"), seedPolicy)
	if cm.Action != Report || cm.Category != Unattributed {
		t.Errorf("ConfigMap deleted: got %s/%s, want report/unattributed", cm.Action, cm.Category)
	}
}

func TestValidate(t *testing.T) {
	for _, p := range []Policy{{Default: "heal"}, {Allow: []Rule{{When: "Sometimes"}}}, {Forbid: []Rule{{Paths: []string{"spec"}}}}, {Managers: Managers{Human: []string{"["}}}} {
		if p.Validate() == nil {
			t.Errorf("%+v: no error", p)
		}
	}
	if err := seedPolicy.Validate(); err != nil {
		t.Errorf("seed policy: %v", err)
	}
}
