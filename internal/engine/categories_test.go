package engine

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"

	convergev1 "converge.dev/converge/internal/api/converge/v1alpha1"
	"converge.dev/converge/internal/drift"
	"converge.dev/converge/internal/object"
)

// TestPolicyMutationNamesNobody: a real MutatingAdmissionPolicy adds a
// label to every Deployment the unit applies. The label is drift in the
// policy-mutation category that names no manager (the server records
// none), it makes no difference a sync would change, and it never flaps.
func TestPolicyMutationNamesNobody(t *testing.T) {
	e := newEnv(t, "mutated")
	ctx := context.Background()
	mapGVR := schema.GroupVersionResource{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "mutatingadmissionpolicies"}
	bindGVR := schema.GroupVersionResource{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "mutatingadmissionpolicybindings"}
	name := "inject-" + e.ns
	pol, err := object.Decode([]byte(`apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicy
metadata: {name: `+name+`}
spec:
  matchConstraints:
    resourceRules:
    - {apiGroups: [apps], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [deployments]}
  failurePolicy: Fail
  reinvocationPolicy: Never
  mutations:
  - patchType: ApplyConfiguration
    applyConfiguration:
      expression: 'Object{metadata: Object.metadata{labels: {"policy.example/injected": "true"}}}'
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicyBinding
metadata: {name: `+name+`}
spec:
  policyName: `+name+`
  matchResources: {namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: `+e.ns+`}}}
`), "policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for i, gvr := range []schema.GroupVersionResource{mapGVR, bindGVR} {
		if _, err := e.dyn.Resource(gvr).Create(ctx, pol[i].Object, metav1.CreateOptions{}); err != nil {
			t.Fatalf("%s: %v", gvr.Resource, err)
		}
		t.Cleanup(func() { e.dyn.Resource(gvr).Delete(context.Background(), name, metav1.DeleteOptions{}) })
	}
	// The policy takes effect once the API server has loaded it: probe.
	probe := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": "probe", "namespace": e.ns},
		"spec": map[string]any{"selector": map[string]any{"matchLabels": map[string]any{"a": "b"}},
			"template": map[string]any{"metadata": map[string]any{"labels": map[string]any{"a": "b"}},
				"spec": map[string]any{"containers": []any{map[string]any{"name": "c", "image": "x"}}}}}}}
	depGVR := schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		out, err := e.dyn.Resource(depGVR).Namespace(e.ns).Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err == nil && out.GetLabels()["policy.example/injected"] == "true", nil
	}); err != nil {
		t.Fatalf("the MutatingAdmissionPolicy never took effect: %v", err)
	}

	e.sync(SyncOptions{})
	rep, err := e.eng.Diff(ctx, e.unit, SyncOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if actions(rep) != "" {
		t.Errorf("the admitted label is a difference a sync would change: %s", actions(rep))
	}
	it, ok := item(rep.Drift, ".metadata.labels.policy.example/injected")
	if !ok || it.Category != drift.PolicyMutation || it.Manager != "" || it.Live != `"true"` || !strings.Contains(it.Evidence, "admission") {
		t.Errorf("admitted label: %+v (found %v), all %v", it, ok, rep.Drift)
	}
}

// TestCloudManagerCategory: a field Git sets that a cloud integration
// rewrites is cloud-provider drift when a policy names its manager, and
// an allow rule by category leaves it to that integration.
func TestCloudManagerCategory(t *testing.T) {
	e := newEnv(t, "svc")
	ctx := context.Background()
	e.sync(SyncOptions{})
	// The load-balancer controller rewrites the annotation as it does in
	// AWS, under its own manager name.
	patch := `{"metadata":{"annotations":{"service.beta.kubernetes.io/aws-load-balancer-type":"external"}}}`
	if _, err := e.cs.CoreV1().Services(e.ns).Patch(ctx, "web", types.MergePatchType, []byte(patch),
		metav1.PatchOptions{FieldManager: "aws-load-balancer-controller"}); err != nil {
		t.Fatal(err)
	}
	const ann = ".metadata.annotations.service.beta.kubernetes.io/aws-load-balancer-type"
	pol := func(spec convergev1.DriftPolicySpec) drift.Policy {
		p, err := DriftPolicyOf([]convergev1.DriftPolicy{{ObjectMeta: metav1.ObjectMeta{Name: "cloud"}, Spec: spec}})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	e.unit.Drift = pol(convergev1.DriftPolicySpec{Managers: convergev1.DriftManagers{Cloud: []string{"aws-load-balancer-controller"}}})
	rep, err := e.eng.Diff(ctx, e.unit, SyncOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if it, ok := item(rep.Drift, ann); !ok || it.Category != drift.CloudProvider || it.Manager != "aws-load-balancer-controller" || it.Action != drift.Report {
		t.Errorf("annotation: %+v, all %v", it, rep.Drift)
	}
	e.unit.Drift = pol(convergev1.DriftPolicySpec{Managers: convergev1.DriftManagers{Cloud: []string{"aws-load-balancer-controller"}},
		Allow: []convergev1.DriftRule{{Categories: []convergev1.DriftCategory{"cloud-provider"}}}})
	rep = e.sync(SyncOptions{})
	if it, ok := item(rep.Drift, ann); !ok || it.Action != drift.Allow || actions(rep) != "" {
		t.Errorf("allowed by category: %+v, actions %q", it, actions(rep))
	}
	svc, err := e.cs.CoreV1().Services(e.ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil || svc.Annotations["service.beta.kubernetes.io/aws-load-balancer-type"] != "external" {
		t.Errorf("the allowed annotation was taken back: %v %v", svc.Annotations, err)
	}
}
