package controller

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	convergev1 "converge.dev/converge/internal/api/converge/v1alpha1"
	"converge.dev/converge/internal/promotion"
	"converge.dev/converge/internal/stage"
)

// TestPromotionRollback is Kargo #3016's scenario: prod is promoted to a
// new digest and rolled back through a pull request with the previous
// one (no bake, the rollback contract required); once it is verified,
// prod holds, so a newer staging digest does not auto-promote; releasing
// the hold lets it. The emergency path (--direct) is refused where the
// stage does not allow it, and elsewhere pushes straight to main with
// the same evidence file and hold.
func TestPromotionRollback(t *testing.T) {
	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer reg.Close()
	image := strings.TrimPrefix(reg.URL, "http://") + "/orders-api"
	d1 := pushRandom(t, image+":1.0.0")
	d2 := pushRandom(t, image+":1.1.0")
	d3 := pushRandom(t, image+":1.2.0")
	w := newPromotionWorldFor(t, d1, image)
	ctx := t.Context()
	ci := func(d string) map[string]string {
		return map[string]string{
			promotion.EvidencePath(d, "build"): evidence("build", d, "result: passed\n"),
			promotion.EvidencePath(d, "scan"):  evidence("scan", d, "critical: 0\n"),
		}
	}
	w.push("ci: evidence of 1.0.0", ci(d1))
	p := w.pipelineObject(time.Second, time.Second)
	p.Spec.Stages[2].Risk, p.Spec.Stages[2].AutoMerge = "low", true
	create(t, w.c, p)
	w.waitStages(map[string]string{"dev": d1, "staging": d1, "prod": d1})

	release := func(tag, d string) {
		t.Helper()
		files := ci(d)
		files["apps/orders/overlays/dev/kustomization.yaml"] = overlay(tag, d)
		w.push("ci: "+tag, files)
		w.refresh("orders-dev")
	}
	// verified waits for the promotion of d into the stage to be
	// Verified, and for the Pipeline to say so: the Promotion's status is
	// written before the Pipeline's in the same round, and a rollback
	// reads the Pipeline.
	verified := func(stageName, d string) *convergev1.Promotion {
		t.Helper()
		id := promotion.FreightID([]promotion.Artifact{{Name: "app", Image: image, Digest: d}})
		p := w.waitPromotion(promotionName("orders-api", stageName, id), "Verified", 3*time.Minute, func(p *convergev1.Promotion) bool {
			return p.Status.Phase == convergev1.PhaseVerified
		})
		err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
			return stage.StatusOf(w.pipelineNow(), stageName).Verified == p.Name, nil
		})
		if err != nil {
			t.Fatalf("the pipeline never recorded %s as %s's verified promotion", p.Name, stageName)
		}
		return p
	}
	release("1.1.0", d2)
	verified("staging", d2)
	bad := verified("prod", d2)

	// Roll prod back, as `converge promote rollback orders-api --stage prod`.
	rb, err := RollbackPromotion(ctx, w.c, w.pipelineNow(), "prod", "")
	if err != nil {
		t.Fatal(err)
	}
	if rb.Spec.Reason != "rollback" || rb.Spec.Freight.Artifacts[0].Digest != d1 {
		t.Fatalf("rollback of %s: %+v", bad.Name, rb.Spec)
	}
	create(t, w.c, rb)
	rb = w.waitPromotion(rb.Name, "Verified", 3*time.Minute, func(p *convergev1.Promotion) bool { return p.Status.Phase == convergev1.PhaseVerified })
	if rb.Status.PR == nil || rb.Status.PR.MergeCommit == "" || !strings.HasPrefix(rb.Status.PR.Branch, "converge/rollback/prod/") {
		t.Errorf("the rollback did not go through a merged pull request: %+v", rb.Status.PR)
	}
	for gate, want := range map[string]string{promotion.GateBake: "a rollback does not bake", promotion.GateRollback: "rollback is automatic"} {
		if g := gateOf(rb, gate); g.Phase != "passed" || !strings.Contains(g.Message, want) {
			t.Errorf("%s gate of the rollback %+v", gate, g)
		}
	}
	if g := gateOf(rb, promotion.GateRollback); g.Requirement != "required" {
		t.Errorf("the rollback contract is %s for a rollback, want required", g.Requirement)
	}
	if got := w.fileAt("apps/orders/overlays/prod/image.yaml", "main"); !strings.Contains(got, image+":1.0.0@"+d1) {
		t.Errorf("prod's image on main after the rollback:\n%s", got)
	}
	w.waitStages(map[string]string{"prod": d1})
	hold := stage.StatusOf(w.pipelineNow(), "prod").Hold
	if hold == nil || hold.Promotion != rb.Name || !strings.Contains(hold.Reason, "rolled back to "+image+":1.0.0@"+d1) {
		t.Fatalf("prod's hold after the rollback: %+v", hold)
	}

	// A newer digest reaches staging; prod, held, is not promoted.
	release("1.2.0", d3)
	verified("staging", d3)
	time.Sleep(6 * time.Second) // three rounds
	var promos convergev1.PromotionList
	if err := w.c.List(ctx, &promos, client.InNamespace(w.ns)); err != nil {
		t.Fatal(err)
	}
	id3 := promotion.FreightID([]promotion.Artifact{{Name: "app", Image: image, Digest: d3}})
	if slices.ContainsFunc(promos.Items, func(p convergev1.Promotion) bool { return p.Name == promotionName("orders-api", "prod", id3) }) {
		t.Fatal("a held prod was auto-promoted to the newer staging digest")
	}

	// `converge promote release orders-api --stage prod`.
	if _, err := ReleaseHold(ctx, w.c, client.ObjectKey{Namespace: w.ns, Name: "orders-api"}, "prod"); err != nil {
		t.Fatal(err)
	}
	verified("prod", d3)
	if hold := stage.StatusOf(w.pipelineNow(), "prod").Hold; hold != nil {
		t.Errorf("prod still held after release: %+v", hold)
	}

	// The emergency path: refused where the stage does not allow it...
	direct, err := RollbackPromotion(ctx, w.c, w.pipelineNow(), "prod", "")
	if err != nil {
		t.Fatal(err)
	}
	direct.Spec.Direct = true
	create(t, w.c, direct)
	refused := w.waitPromotion(direct.Name, "refused", time.Minute, func(p *convergev1.Promotion) bool { return p.Status.Phase == convergev1.PhaseFailed })
	if !strings.Contains(refused.Status.Message, "stage prod does not allow it; nothing was pushed") || refused.Status.PR != nil {
		t.Errorf("a direct rollback where it is not allowed: %s", refused.Status.Message)
	}
	// ...and, allowed, a commit straight to main with the same evidence
	// file, no pull request, and the same hold.
	// (The controller writes the status meanwhile: a conflict is read
	// again and retried.)
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		p := w.pipelineNow()
		p.Spec.Stages[2].AllowDirectRollback = true
		return w.c.Update(ctx, p)
	}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // distinct names: a rollback's carries the time in seconds
	direct, err = RollbackPromotion(ctx, w.c, w.pipelineNow(), "prod", "")
	if err != nil {
		t.Fatal(err)
	}
	direct.Spec.Direct = true
	create(t, w.c, direct)
	direct = w.waitPromotion(direct.Name, "Verified", 3*time.Minute, func(p *convergev1.Promotion) bool { return p.Status.Phase == convergev1.PhaseVerified })
	if direct.Status.PR != nil || direct.Status.DirectCommit == "" || len(direct.Status.Gates) != 0 {
		t.Errorf("a direct rollback: PR %+v, commit %q, gates %v", direct.Status.PR, direct.Status.DirectCommit, direct.Status.Gates)
	}
	var commit struct {
		Commit struct {
			Message string `json:"message"`
		} `json:"commit"`
	}
	w.f.API(t, "GET", fmt.Sprintf("/repos/%s/deploy/git/commits/%s", w.f.User, direct.Status.DirectCommit), nil, &commit)
	if tr := promotion.ParseTrailers(commit.Commit.Message); len(tr["Converge-Direct"]) != 1 || tr["Converge-Stage"][0] != "prod" {
		t.Errorf("the direct commit's trailers: %v", tr)
	}
	if rec := w.fileAt(promotion.RecordPath("prod"), "main"); !strings.Contains(rec, "direct: true") || !strings.Contains(rec, "reason: rollback") {
		t.Errorf("the evidence file after a direct rollback:\n%s", rec)
	}
	w.waitStages(map[string]string{"prod": d1}) // what ran before 1.2.0
	if hold := stage.StatusOf(w.pipelineNow(), "prod").Hold; hold == nil || hold.Promotion != direct.Name {
		t.Errorf("no hold after the direct rollback: %+v", hold)
	}
}
