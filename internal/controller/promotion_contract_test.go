package controller

import (
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	sigsyaml "sigs.k8s.io/yaml"

	convergev1 "converge.dev/converge/internal/api/converge/v1alpha1"
	"converge.dev/converge/internal/clustertest"
	"converge.dev/converge/internal/promotion"
)

// contractOverlay is the staging overlay of the contract test: the
// image, a Service with a load-balancer annotation, a Widget (a custom
// resource at v1beta1), and the Deployment reading a Secret and
// labelled legacy.
func contractOverlay(image, digest, lbType string) map[string]string {
	return map[string]string{
		"apps/orders/overlays/staging/kustomization.yaml": fmt.Sprintf(`resources: [../../base, extra.yaml]
patches:
- path: env.yaml
images:
- name: %s
  newTag: "1.0.0"
  digest: %s
`, image, digest),
		"apps/orders/overlays/staging/env.yaml": `apiVersion: apps/v1
kind: Deployment
metadata: {name: orders-api, labels: {legacy: "true"}}
spec:
  template:
    spec:
      containers:
      - name: api
        envFrom: [{secretRef: {name: orders-db}}]
`,
		"apps/orders/overlays/staging/extra.yaml": `apiVersion: v1
kind: Service
metadata:
  name: orders-lb
  annotations: {service.beta.kubernetes.io/aws-load-balancer-type: ` + lbType + `}
spec:
  selector: {app: orders-api}
  ports: [{port: 80}]
---
apiVersion: rollback.converge.dev/v1beta1
kind: Widget
metadata: {name: w1}
spec: {size: 1}
`,
	}
}

// TestRollbackContract breaks each of seed §15's six dimensions before
// staging's promotion opens, and reads the contract by name in the
// Promotion's status, the pull request body and the evidence file: the
// old digest deleted from the registry (the gate fails), a Secret the
// old render reads deleted, a CRD version the old render uses no longer
// served, an irreversible migration (impossible until a roll-forward
// plan is recorded), a load-balancer annotation changed on the head, and
// an admission policy the old render now violates. TestPromotionTagMoved
// has the contract with all six passing.
func TestRollbackContract(t *testing.T) {
	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer reg.Close()
	image := strings.TrimPrefix(reg.URL, "http://") + "/orders-api"
	d1 := pushRandom(t, image+":1.0.0")
	d2 := pushRandom(t, image+":1.1.0")
	w := newPromotionWorldFor(t, d1, image)
	ctx := t.Context()

	crds := apiextensionsclient.NewForConfigOrDie(clustertest.RESTConfig(t)).ApiextensionsV1().CustomResourceDefinitions()
	schema := &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{Type: "object", XPreserveUnknownFields: ptr.To(true)}}
	crd := &apiextensionsv1.CustomResourceDefinition{ObjectMeta: metav1.ObjectMeta{Name: "widgets.rollback.converge.dev"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{Group: "rollback.converge.dev", Scope: apiextensionsv1.NamespaceScoped,
			Names: apiextensionsv1.CustomResourceDefinitionNames{Kind: "Widget", ListKind: "WidgetList", Plural: "widgets", Singular: "widget"},
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{
				{Name: "v1beta1", Served: true, Schema: schema},
				{Name: "v1", Served: true, Storage: true, Schema: schema}}}}
	if _, err := crds.Create(ctx, crd, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = crds.Delete(t.Context(), crd.Name, metav1.DeleteOptions{}) })
	waitEstablished(t, crds, crd.Name)
	create(t, w.c, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "orders-db", Namespace: w.staging}, StringData: map[string]string{"url": "postgres://orders"}})
	w.push("staging reads a secret, has a load balancer and a widget", contractOverlay(image, d1, "nlb"))
	w.pipeline(time.Second, time.Hour)
	w.waitStages(map[string]string{"dev": d1, "staging": d1, "prod": d1})

	// Now each dimension breaks.
	old, err := name.NewDigest(image+"@"+d1, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Delete(old); err != nil {
		t.Fatal(err)
	}
	if err := w.c.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "orders-db", Namespace: w.staging}}); err != nil {
		t.Fatal(err)
	}
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		got, err := crds.Get(ctx, crd.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		got.Spec.Versions[0].Served = false
		_, err = crds.Update(ctx, got, metav1.UpdateOptions{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	policy := &admissionv1.ValidatingAdmissionPolicy{ObjectMeta: metav1.ObjectMeta{Name: "no-legacy-" + w.staging},
		Spec: admissionv1.ValidatingAdmissionPolicySpec{FailurePolicy: ptr.To(admissionv1.Fail),
			MatchConstraints: &admissionv1.MatchResources{ResourceRules: []admissionv1.NamedRuleWithOperations{{RuleWithOperations: admissionv1.RuleWithOperations{
				Operations: []admissionv1.OperationType{admissionv1.Create, admissionv1.Update},
				Rule:       admissionv1.Rule{APIGroups: []string{"apps"}, APIVersions: []string{"v1"}, Resources: []string{"deployments"}}}}}},
			Validations: []admissionv1.Validation{{Expression: `!has(object.metadata.labels) || !('legacy' in object.metadata.labels)`, Message: "legacy workloads are retired"}}}}
	create(t, w.c, policy)
	t.Cleanup(func() { _ = w.c.Delete(t.Context(), policy) })
	binding := &admissionv1.ValidatingAdmissionPolicyBinding{ObjectMeta: metav1.ObjectMeta{Name: policy.Name},
		Spec: admissionv1.ValidatingAdmissionPolicyBindingSpec{PolicyName: policy.Name, ValidationActions: []admissionv1.ValidationAction{admissionv1.Deny},
			MatchResources: &admissionv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": w.staging}}}}}
	create(t, w.c, binding)
	t.Cleanup(func() { _ = w.c.Delete(t.Context(), binding) })

	w.push("ci: 1.1.0, with an irreversible migration", map[string]string{
		"apps/orders/overlays/dev/kustomization.yaml": overlay("1.1.0", d2),
		promotion.EvidencePath(d2, "build"):           evidence("build", d2, "result: passed\n"),
		promotion.EvidencePath(d2, "scan"):            evidence("scan", d2, "critical: 0\n"),
		promotion.EvidencePath(d2, "migration"):       evidence("migration", d2, "migration: irreversible\n"),
	})
	w.refresh("orders-dev")
	id := promotion.FreightID([]promotion.Artifact{{Name: "app", Image: image, Digest: d2}})
	pname := promotionName("orders-api", "staging", id)
	promo := w.waitPromotion(pname, "opened", 2*time.Minute, func(p *convergev1.Promotion) bool { return p.Status.Rollback != nil })

	// The evidence file, written with the promotion commit, holds the
	// contract as it was then: the load balancer is not touched yet.
	var rec promotion.Record
	if err := sigsyaml.Unmarshal([]byte(w.fileAt(promotion.RecordPath("staging"), promo.Status.PR.Branch)), &rec); err != nil || rec.Rollback == nil {
		t.Fatalf("the evidence file has no rollback contract: %v", err)
	}
	var all strings.Builder
	for _, c := range rec.Rollback.Checks {
		fmt.Fprintf(&all, "%s %s: %s\n", c.Dimension, c.Mode, c.Message)
	}
	for _, want := range []string{"image manual: old image digest deleted from the registry: " + image + "@" + d1,
		"config manual: missing: Secret " + w.staging + "/orders-db", "manifest impossible: no longer served, so a revert cannot apply: rollback.converge.dev/v1beta1 Widget",
		"database impossible: the migration is irreversible", "cloud automatic: the promotion commit changes only image references", "legacy workloads are retired"} {
		if !strings.Contains(all.String(), want) {
			t.Errorf("the evidence file's contract lacks %q:\n%s", want, all.String())
		}
	}
	if rec.Rollback.Mode != "impossible" {
		t.Errorf("the evidence file's contract is %s", rec.Rollback.Mode)
	}

	// Someone changes the load balancer on the pull request's branch.
	files := contractOverlay(image, d2, "external")
	w.repo.PushBranch(promo.Status.PR.Branch, "switch the load balancer", map[string]string{
		"apps/orders/overlays/staging/extra.yaml": files["apps/orders/overlays/staging/extra.yaml"]})
	promo = w.waitPromotion(pname, "re-checked the contract", time.Minute, func(p *convergev1.Promotion) bool {
		return p.Status.Rollback != nil && checkOf(p, "cloud").Mode == "manual"
	})
	want := map[string]string{
		"image":    "manual|old image digest deleted from the registry: " + image + "@" + d1,
		"config":   "manual|missing: Secret " + w.staging + "/orders-db",
		"manifest": "impossible|no longer served, so a revert cannot apply: rollback.converge.dev/v1beta1 Widget",
		"database": "impossible|the migration is irreversible",
		"cloud":    "manual|rollback may not restore infrastructure: Service orders-lb annotation service.beta.kubernetes.io/aws-load-balancer-type",
		"policy":   "manual|today's admission refuses the render",
	}
	for dim, w := range want {
		mode, msg, _ := strings.Cut(w, "|")
		c := checkOf(promo, dim)
		if c.Mode != mode || !strings.Contains(c.Message, msg) {
			t.Errorf("%s: %s %q, want %s containing %q", dim, c.Mode, c.Message, mode, msg)
		}
	}
	if promo.Status.Rollback.Mode != "impossible" {
		t.Errorf("contract mode %s", promo.Status.Rollback.Mode)
	}
	if g := gateOf(promo, promotion.GateRollback); g.Phase != "failed" || !strings.Contains(g.Message, "old image digest deleted") {
		t.Errorf("rollback gate %+v", g)
	}
	body := w.prState(promo.Status.PR.Number).Body
	for _, want := range []string{"### Rollback: impossible", "- image: manual: old image digest deleted", "- database: impossible: the migration is irreversible",
		"- cloud: manual: rollback may not restore infrastructure"} {
		if !strings.Contains(body, want) {
			t.Errorf("the pull request body lacks %q:\n%s", want, body)
		}
	}

	// A roll-forward plan recorded on the branch: the contract carries it.
	w.repo.PushBranch(promo.Status.PR.Branch, "roll-forward plan", map[string]string{
		promotion.EvidencePath(d2, "rollback-plan"): evidence("rollback-plan", d2, "rollForward: ship 1.1.1 with the orders.total column restored\n")})
	promo = w.waitPromotion(pname, "read the roll-forward plan", time.Minute, func(p *convergev1.Promotion) bool {
		return p.Status.Rollback != nil && p.Status.Rollback.RollForward != ""
	})
	if got := promo.Status.Rollback.RollForward; got != "ship 1.1.1 with the orders.total column restored" {
		t.Errorf("roll forward %q", got)
	}
	if body := w.prState(promo.Status.PR.Number).Body; !strings.Contains(body, "- roll forward: ship 1.1.1") {
		t.Errorf("the pull request body lacks the roll-forward plan:\n%s", body)
	}
}

func checkOf(p *convergev1.Promotion, dim string) convergev1.RollbackCheck {
	if p.Status.Rollback == nil {
		return convergev1.RollbackCheck{}
	}
	for _, c := range p.Status.Rollback.Checks {
		if c.Dimension == dim {
			return c
		}
	}
	return convergev1.RollbackCheck{}
}
