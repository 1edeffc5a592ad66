package controller

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	convergev1 "converge.dev/converge/internal/api/converge/v1alpha1"
	"converge.dev/converge/internal/cluster"
	"converge.dev/converge/internal/clustertest"
	"converge.dev/converge/internal/engine"
	"converge.dev/converge/internal/promotion"
	"converge.dev/converge/internal/source/git"
	"converge.dev/converge/internal/stage"
)

// startPromoter runs a controller of its own for Pipelines labelled
// shardKey=promoter (the shared controller leaves those alone) and
// returns how to stop it, as a crash would: mid-round, nothing flushed.
func startPromoter(t *testing.T) (stop func()) {
	t.Helper()
	cfg := clustertest.RESTConfig(t)
	cc, err := cluster.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "converge-promoter-")
	if err != nil {
		t.Fatal(err)
	}
	eng := engine.New(engine.Options{Fetcher: git.New(git.Options{CacheDir: filepath.Join(dir, "git")}), Cluster: cc})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	o := Options{Engine: eng, Interval: 10 * time.Minute, WatchLabelSelector: shardKey + "=promoter"}
	go func() {
		defer close(done)
		if err := Run(ctx, cfg, o); err != nil && ctx.Err() == nil {
			t.Errorf("promoter: %v", err)
		}
	}()
	return func() {
		cancel()
		<-done
		os.RemoveAll(dir)
	}
}

// TestPromotionSurvivesRestarts stops the controller that drives a
// pipeline in the middle of its phases. A stop longer than the clock
// trusts resets the bake with a named reason rather than counting time
// nobody watched; a short one keeps it; a pull request opened before a
// crash that lost its record is found again, never opened twice; the
// promotion then goes on to Verified.
func TestPromotionSurvivesRestarts(t *testing.T) {
	d1, d2 := digestOf("restart 1"), digestOf("restart 2")
	w := newPromotionWorld(t, d1)
	ctx := context.Background()
	stop := startPromoter(t)
	defer func() { stop() }()
	p := w.pipelineObject(12*time.Second, time.Second)
	p.Labels = map[string]string{shardKey: "promoter"}
	p.Spec.Interval.Duration = time.Second
	create(t, w.c, p)
	w.waitStages(map[string]string{"dev": d1, "staging": d1, "prod": d1})

	w.push("ci: 2", map[string]string{
		"apps/orders/overlays/dev/kustomization.yaml": overlay("2.0.0", d2),
		promotion.EvidencePath(d2, "build"):           evidence("build", d2, "result: passed\n"),
		promotion.EvidencePath(d2, "scan"):            evidence("scan", d2, "critical: 0\n"),
	})
	w.refresh("orders-dev")
	id := promotion.FreightID([]promotion.Artifact{{Name: "app", Image: ordersImage, Digest: d2}})
	name := promotionName("orders-api", "staging", id)
	opened := w.waitPromotion(name, "opened", 2*time.Minute, func(p *convergev1.Promotion) bool {
		return p.Status.PR != nil && gateOf(p, promotion.GateBake).Phase == "pending"
	})
	before := w.pipelineNow()
	since := stage.StatusOf(before, "dev").HealthySince

	// A crash: the controller is gone for longer than the clock trusts
	// (a 5s heartbeat, two 1s intervals and 30s), and the promotion's record of its pull
	// request is lost, as if the crash came between opening it and
	// writing that down.
	stop()
	number := opened.Status.PR.Number
	opened.Status.PR = nil
	opened.Status.Gates = nil
	if err := w.c.Status().Update(ctx, opened); err != nil {
		t.Fatal(err)
	}
	time.Sleep(41 * time.Second)
	stop = startPromoter(t)
	after := w.waitPromotion(name, "found its pull request again", time.Minute, func(p *convergev1.Promotion) bool {
		return p.Status.PR != nil && gateOf(p, promotion.GateBake).Phase != ""
	})
	if after.Status.PR.Number != number {
		t.Errorf("a second pull request #%d after #%d", after.Status.PR.Number, number)
	}
	reset := w.pipelineNow()
	dev := stage.StatusOf(reset, "dev")
	if !strings.Contains(dev.Reset, "not observed for") || dev.HealthySince == nil || !dev.HealthySince.After(since.Time) {
		t.Errorf("after the gap the bake clock was not restarted by name: since %v -> %v, reset %q", since, dev.HealthySince, dev.Reset)
	}
	if g := gateOf(after, promotion.GateBake); g.Phase != "pending" {
		t.Errorf("the bake passed on time nobody watched: %+v", g)
	}

	// A quick restart keeps the clock.
	stop()
	stop = startPromoter(t)
	time.Sleep(4 * time.Second) // the new controller's first rounds
	if now := stage.StatusOf(w.pipelineNow(), "dev"); !now.HealthySince.Equal(dev.HealthySince) {
		t.Errorf("a 1s restart reset the clock: %v -> %v (%s)", dev.HealthySince, now.HealthySince, now.Reset)
	}
	verified := w.waitPromotion(name, "Verified", 3*time.Minute, func(p *convergev1.Promotion) bool { return p.Status.Phase == convergev1.PhaseVerified })
	if verified.Status.MergedAt.Sub(dev.HealthySince.Time) < 12*time.Second {
		t.Errorf("merged %s into the restarted bake of 12s", verified.Status.MergedAt.Sub(dev.HealthySince.Time))
	}
	var all []struct {
		Head struct {
			Ref string `json:"ref"`
		} `json:"head"`
	}
	w.f.API(t, "GET", fmt.Sprintf("/repos/%s/deploy/pulls?state=all", w.f.User), nil, &all)
	seen := map[string]int{}
	for _, pr := range all {
		seen[pr.Head.Ref]++
	}
	for ref, n := range seen {
		if n > 1 {
			t.Errorf("%d pull requests from %s", n, ref)
		}
	}
}

func (w *promotionWorld) pipelineNow() *convergev1.Pipeline {
	w.t.Helper()
	p := &convergev1.Pipeline{}
	if err := w.c.Get(context.Background(), types.NamespacedName{Namespace: w.ns, Name: "orders-api"}, p); err != nil {
		w.t.Fatal(err)
	}
	return p
}
