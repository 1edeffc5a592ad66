package controller

import (
	"fmt"
	"sort"
	"testing"
	"time"

	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	convergev1 "converge.dev/converge/internal/api/converge/v1alpha1"
	"converge.dev/converge/internal/promotion"
)

// forgeCalls reads converge_forge_requests_total, all methods.
func forgeCalls() float64 {
	families, _ := ctrlmetrics.Registry.Gather()
	total := 0.0
	for _, f := range families {
		if f.GetName() == "converge_forge_requests_total" {
			for _, m := range f.GetMetric() {
				total += m.GetCounter().GetValue()
			}
		}
	}
	return total
}

// BenchmarkPromotion measures, over real promotions from dev to staging
// on a real Gitea and cluster, the time from the source stage running the
// new digest Healthy (its bake clock's start, read from the Pipeline's
// status) to the staging pull request being open, p50 and p95; the time
// to Verified; and the forge API calls per promotion, merge and
// verification included. Then the calls per round while a pull request
// waits on its bake. Run with -benchtime=Nx (each iteration is one
// promotion):
//
//	go test -run '^$' -bench BenchmarkPromotion -benchtime 8x ./internal/controller/
func BenchmarkPromotion(b *testing.B) {
	d0 := digestOf("bench 0")
	w := newPromotionWorld(b, d0)
	p := w.pipelineObject(0, time.Hour)
	p.Spec.Interval.Duration = time.Second
	create(b, w.c, p)
	w.waitStages(map[string]string{"dev": d0, "staging": d0})
	var toPR, toVerified []float64
	calls := 0.0
	b.ResetTimer()
	for i := 1; i <= b.N; i++ {
		d := digestOf(fmt.Sprintf("bench %d", i))
		w.repo.Push(fmt.Sprintf("ci: %d", i), map[string]string{
			"apps/orders/overlays/dev/kustomization.yaml": overlay(fmt.Sprintf("1.%d.0", i), d),
			promotion.EvidencePath(d, "build"):            evidence("build", d, "result: passed\n"),
			promotion.EvidencePath(d, "scan"):             evidence("scan", d, "critical: 0\n"),
		})
		before := forgeCalls()
		w.refresh("orders-dev")
		name := promotionName("orders-api", "staging", promotion.FreightID([]promotion.Artifact{{Name: "app", Image: ordersImage, Digest: d}}))
		opened := w.waitPromotion(name, "opened", 2*time.Minute, func(p *convergev1.Promotion) bool { return p.Status.PR != nil })
		seen := time.Now()
		src := opened.Status.Source.HealthySince.Time
		toPR = append(toPR, seen.Sub(src).Seconds()*1000)
		v := w.waitPromotion(name, "Verified", 2*time.Minute, func(p *convergev1.Promotion) bool { return p.Status.Phase == convergev1.PhaseVerified })
		toVerified = append(toVerified, v.Status.VerifiedAt.Sub(src).Seconds()*1000)
		calls += forgeCalls() - before
	}
	b.StopTimer()
	b.ReportMetric(pct(toPR, 50), "ms-to-pr-p50")
	b.ReportMetric(pct(toPR, 95), "ms-to-pr-p95")
	b.ReportMetric(pct(toVerified, 50), "ms-to-verified-p50")
	b.ReportMetric(calls/float64(b.N), "forge-calls/promotion")

	// An open pull request waiting on prod's hour-long bake: what each
	// round costs the forge.
	last := digestOf(fmt.Sprintf("bench %d", b.N))
	prodName := promotionName("orders-api", "prod", promotion.FreightID([]promotion.Artifact{{Name: "app", Image: ordersImage, Digest: last}}))
	w.waitPromotion(prodName, "gating", 2*time.Minute, func(p *convergev1.Promotion) bool { return gateOf(p, promotion.GateBake).Phase == "pending" })
	before := forgeCalls()
	time.Sleep(10 * time.Second)
	b.ReportMetric((forgeCalls()-before)/10, "forge-calls/s-waiting")
}

// pct is the q-th percentile of xs (nearest rank).
func pct(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	i := int(float64(len(s))*q/100+0.5) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(s) {
		i = len(s) - 1
	}
	return s[i]
}
