package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	convergev1 "converge.dev/converge/internal/api/converge/v1alpha1"
	"converge.dev/converge/internal/promotion"
	"converge.dev/converge/internal/source/git"
	"converge.dev/converge/internal/trace"
)

// TestTracePromotedDeployment: converge trace on a Deployment a promotion
// changed names its unit (a Kustomization), the merge commit's author and
// message, the Promotion, the pull request and its reviewer from the real
// Gitea, the stage, and its health; a Pod of it is traced through its
// ReplicaSet; an object made by hand is said to have no unit, with its
// managers.
func TestTracePromotedDeployment(t *testing.T) {
	d1, d2 := digestOf("trace 1"), digestOf("trace 2")
	w := newPromotionWorld(t, d1)
	ctx := context.Background()
	w.pipeline(20*time.Second, time.Second)
	w.waitStages(map[string]string{"dev": d1, "staging": d1, "prod": d1})
	w.push("ci: 2", map[string]string{
		"apps/orders/overlays/dev/kustomization.yaml": overlay("2.0.0", d2),
		promotion.EvidencePath(d2, "build"):           evidence("build", d2, "result: passed\n"),
		promotion.EvidencePath(d2, "scan"):            evidence("scan", d2, "critical: 0\n"),
	})
	w.refresh("orders-dev")
	id := promotion.FreightID([]promotion.Artifact{{Name: "app", Image: ordersImage, Digest: d2}})
	staging := w.waitPromotion(promotionName("orders-api", "staging", id), "opened", 2*time.Minute, func(p *convergev1.Promotion) bool { return p.Status.PR != nil })
	reviewer := w.f.CreateUser(t, "trace-reviewer")
	w.repo.AddWriter(reviewer)
	w.repo.Approve(reviewer, staging.Status.PR.Number)
	staging = w.waitPromotion(staging.Name, "Verified", 3*time.Minute, func(p *convergev1.Promotion) bool { return p.Status.Phase == convergev1.PhaseVerified })
	w.waitStages(map[string]string{"staging": d2})

	o := trace.Options{Client: w.c, Git: git.New(git.Options{CacheDir: t.TempDir()}), Forge: true}
	deploy := schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}
	rep, err := trace.Object(ctx, o, deploy, w.staging, "orders-api")
	if err != nil {
		t.Fatal(err)
	}
	if u := rep.Unit; u == nil || u.Kind != "Kustomization" || u.Name != "orders-staging" {
		t.Fatalf("unit %+v (notes %v)", rep.Unit, rep.Notes)
	}
	if rep.Revision != staging.Status.PR.MergeCommit || rep.Commit == nil {
		t.Fatalf("revision %s, want the merge %s; commit %+v; notes %v", rep.Revision, staging.Status.PR.MergeCommit, rep.Commit, rep.Notes)
	}
	if rep.Commit.Author == "" || !strings.Contains(rep.Commit.Message, "Converge-Stage: staging") {
		t.Errorf("commit %+v", rep.Commit)
	}
	if p := rep.Promotion; p == nil || p.Name != staging.Name || p.Stage != "staging" || p.Phase != convergev1.PhaseVerified {
		t.Errorf("promotion %+v", rep.Promotion)
	}
	pr := rep.PullRequest
	if pr == nil || pr.Number != staging.Status.PR.Number || pr.URL != staging.Status.PR.URL {
		t.Fatalf("pull request %+v, want #%d (notes %v)", pr, staging.Status.PR.Number, rep.Notes)
	}
	if len(pr.Reviewers) != 1 || pr.Reviewers[0].User != "trace-reviewer" || pr.Reviewers[0].State != "APPROVED" {
		t.Errorf("reviewers %+v", pr.Reviewers)
	}
	if len(rep.Environment) != 1 || rep.Environment[0] != "stage staging of Pipeline "+w.ns+"/orders-api" {
		t.Errorf("environment %v", rep.Environment)
	}
	if rep.Health != "Healthy" || rep.Sync != "Synced" || len(rep.Drift) != 0 {
		t.Errorf("object %s %s, drift %v", rep.Sync, rep.Health, rep.Drift)
	}

	// A Pod is traced through its ReplicaSet to the Deployment.
	pods := &corev1.PodList{}
	if err := w.c.List(ctx, pods, client.InNamespace(w.staging)); err != nil || len(pods.Items) == 0 {
		t.Fatalf("pods: %v", err)
	}
	pod, err := trace.Object(ctx, trace.Options{Client: w.c}, schema.GroupVersionKind{Version: "v1", Kind: "Pod"}, w.staging, pods.Items[0].Name)
	if err != nil {
		t.Fatal(err)
	}
	if len(pod.Via) != 2 || pod.Via[1].Kind != "ReplicaSet" || pod.Object.Kind != "Deployment" || pod.Unit == nil || pod.Unit.Name != "orders-staging" {
		t.Errorf("a Pod's trace: via %v, object %v, unit %+v", pod.Via, pod.Object, pod.Unit)
	}

	// Made by hand: no unit, and who wrote it.
	create(t, w.c, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: w.staging, Name: "by-hand"}, Data: map[string]string{"a": "b"}})
	hand, err := trace.Object(ctx, trace.Options{Client: w.c}, schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, w.staging, "by-hand")
	if err != nil {
		t.Fatal(err)
	}
	if hand.Unit != nil || len(hand.Notes) == 0 || !strings.Contains(hand.Notes[0], "no unit applied this object") {
		t.Errorf("a ConfigMap made by hand: unit %+v, notes %v", hand.Unit, hand.Notes)
	}
	if len(hand.Managers) == 0 || !strings.Contains(strings.Join(hand.Managers[0].Fields, " "), ".data.a") {
		t.Errorf("managers %+v", hand.Managers)
	}
}
