package controller

import (
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	convergev1 "converge.dev/converge/internal/api/converge/v1alpha1"
	"converge.dev/converge/internal/promotion"
)

// pushRandom pushes a random image to ref in the registry and returns its
// digest.
func pushRandom(t *testing.T, ref string) string {
	t.Helper()
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, img); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// TestPromotionTagMoved pushes the images to a real registry (in
// process, on loopback) and moves the tag after dev runs it: the
// promotion says the tag moved, names both digests, and still promotes
// the digest that runs in dev. A tag never replaces a digest. Its
// rollback contract passes on all six dimensions.
func TestPromotionTagMoved(t *testing.T) {
	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer reg.Close()
	image := strings.TrimPrefix(reg.URL, "http://") + "/orders-api"
	d1 := pushRandom(t, image+":1.0.0")
	d2 := pushRandom(t, image+":1.1.0")
	w := newPromotionWorldFor(t, d1, image)
	w.pipeline(2*time.Second, time.Hour)
	w.waitStages(map[string]string{"dev": d1, "staging": d1, "prod": d1})
	w.push("ci: 1.1.0", map[string]string{
		"apps/orders/overlays/dev/kustomization.yaml": overlay("1.1.0", d2),
		promotion.EvidencePath(d2, "build"):           evidence("build", d2, "result: passed\n"),
		promotion.EvidencePath(d2, "scan"):            evidence("scan", d2, "critical: 0\n"),
	})
	// Someone pushes another image under the same tag.
	d3 := pushRandom(t, image+":1.1.0")
	w.refresh("orders-dev")
	id := promotion.FreightID([]promotion.Artifact{{Name: "app", Image: image, Digest: d2}})
	p := w.waitPromotion(promotionName("orders-api", "staging", id), "Verified", 3*time.Minute, func(p *convergev1.Promotion) bool {
		return p.Status.Phase == convergev1.PhaseVerified
	})
	g := gateOf(p, promotion.GateTag)
	if g.Phase != "failed" || g.Requirement != "recommended" || !strings.Contains(g.Message, "tag "+image+":1.1.0 moved: the registry now names "+d3+"; promoting "+d2) {
		t.Errorf("tag gate %+v", g)
	}
	// Going back is automatic on every dimension: the old digest is in
	// the registry, the render reads no missing ConfigMap or Secret, its
	// kinds are served, no migration, no infrastructure change, and
	// today's admission accepts it.
	if r := p.Status.Rollback; r == nil || r.Mode != promotion.RollbackAutomatic || len(r.Checks) != 6 {
		t.Errorf("rollback contract %+v", r)
	} else {
		for _, c := range r.Checks {
			if c.Mode != promotion.RollbackAutomatic {
				t.Errorf("rollback %s: %s %s", c.Dimension, c.Mode, c.Message)
			}
		}
	}
	if g := gateOf(p, promotion.GateRollback); g.Phase != "passed" || g.Message != "rollback is automatic: revert the promotion commit" {
		t.Errorf("rollback gate %+v", g)
	}
	if got := p.Spec.Freight.Artifacts[0].Digest; got != d2 {
		t.Errorf("promoted %s, want the running %s", got, d2)
	}
	w.waitStages(map[string]string{"staging": d2})
}
