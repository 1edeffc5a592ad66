package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/types"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
	"converge.dev/converge/internal/clustertest"
)

const ingressYAML = `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
  annotations: {argocd.argoproj.io/sync-wave: "0"}
spec:
  defaultBackend: {service: {name: web, port: {number: 80}}}
`

// TestRunningSyncIsShown: a sync whose first wave waits for health (an
// Ingress with no load balancer yet) shows its operation Running, with
// the object it waits for, as Argo CD does; once the Ingress gets an
// address the next wave is applied and the operation Succeeds. Before,
// nothing was written until the sync ended, and it ended Failed at its
// timeout.
func TestRunningSyncIsShown(t *testing.T) {
	c, repo := setup(t)
	ctx := context.Background()
	ensureNamespace(t, c, "argocd")
	permissiveProject(t, c, "anything")
	ns := clustertest.Namespace(t)
	repo.Commit("waves", map[string]string{
		"waves/ingress.yaml": ingressYAML,
		"waves/after.yaml":   "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: after\n  annotations: {argocd.argoproj.io/sync-wave: \"1\"}\ndata: {value: v1}\n",
	})
	repo.Publish()
	name := "running-" + ns
	create(t, c, argoApp(name, ns, "anything", map[string]any{"repoURL": "file://" + repo.Bare, "path": "waves"}))
	got := getApp(t, c, name, "Running, waiting for the Ingress", func(a *v1alpha1.Application) bool {
		op := a.Status.OperationState
		// A step that returns within the second says "in progress:
		// waiting for ...", a longer one "waiting for healthy state of";
		// both name what it waits for.
		return op != nil && op.Phase == "Running" && strings.Contains(op.Message, "waiting for") &&
			strings.Contains(op.Message, "Ingress") && strings.Contains(op.Message, "web")
	})
	if configMapValue(c, ns, "after") != "" {
		t.Fatal("wave 1 was applied before wave 0 was healthy")
	}
	ing := &networkingv1.Ingress{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "web"}, ing); err != nil {
		t.Fatal(err)
	}
	ing.Status.LoadBalancer.Ingress = []networkingv1.IngressLoadBalancerIngress{{IP: "192.0.2.10"}}
	if err := c.Status().Update(ctx, ing); err != nil {
		t.Fatal(err)
	}
	got = getApp(t, c, name, "Succeeded", func(a *v1alpha1.Application) bool {
		op := a.Status.OperationState
		return op != nil && op.Phase == "Succeeded"
	})
	if configMapValue(c, ns, "after") != "v1" {
		t.Error("wave 1 was not applied")
	}
	if got.Status.OperationState.StartedAt.IsZero() || got.Status.OperationState.FinishedAt == nil {
		t.Errorf("operation state %+v", got.Status.OperationState)
	}
}

// TestSingleWaveSyncDoesNotWait: a sync of one wave and no hooks ends
// once applied, as Argo CD's does; the Application's health says the
// Ingress is Progressing. Before, the sync waited for it and failed
// after three minutes.
func TestSingleWaveSyncDoesNotWait(t *testing.T) {
	c, repo := setup(t)
	ensureNamespace(t, c, "argocd")
	permissiveProject(t, c, "anything")
	ns := clustertest.Namespace(t)
	repo.Commit("one wave", map[string]string{"onewave/ingress.yaml": ingressYAML})
	repo.Publish()
	name := "onewave-" + ns
	start := time.Now()
	create(t, c, argoApp(name, ns, "anything", map[string]any{"repoURL": "file://" + repo.Bare, "path": "onewave"}))
	got := getApp(t, c, name, "Succeeded and Progressing", func(a *v1alpha1.Application) bool {
		op := a.Status.OperationState
		return op != nil && op.Phase == "Succeeded" && a.Status.Health.Status == "Progressing"
	})
	if d := got.Status.OperationState.FinishedAt.Sub(got.Status.OperationState.StartedAt.Time); d > time.Minute {
		t.Errorf("the sync took %s: it waited for the Ingress (test started %s)", d, start.Format(time.RFC3339))
	}
}
