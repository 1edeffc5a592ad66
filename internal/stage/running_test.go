package stage

import (
	"strings"
	"testing"

	"converge.dev/converge/internal/promotion"
)

const (
	dA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	dB = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

var arts = []promotion.Artifact{{Name: "app", Image: "r.example/orders-api"}}

func unit(kind, image string, pods map[string]string, mods ...func(*Unit)) Unit {
	u := Unit{Target: Target{Kind: kind, Namespace: "ns", Name: strings.ToLower(kind)}, Ready: true, Revision: "r1",
		Workloads: []Workload{{Kind: "Deployment", Namespace: "ns", Name: "api", Complete: true,
			Containers: []Container{{Name: "api", Image: image, Pods: pods}, {Name: "proxy", Image: "envoy:latest", Pods: map[string]string{"p1": "x"}}}}}}
	for _, m := range mods {
		m(&u)
	}
	return u
}

func TestDecide(t *testing.T) {
	pinned := "r.example/orders-api:1.42.0@" + dA
	good := map[string]string{"p1": "fake://" + pinned, "p2": "docker-pullable://r.example/orders-api@" + dA}
	tests := []struct {
		name    string
		units   []Unit
		digest  string
		healthy bool
		why     string
	}{
		{name: "pinned, complete, pods agree", units: []Unit{unit("Application", pinned, good), unit("Kustomization", pinned, good)}, digest: dA, healthy: true},
		{name: "a tag without a digest is not promotable", units: []Unit{unit("Application", "r.example/orders-api:1.42.0", good)},
			why: "Deployment ns/api container api: image \"r.example/orders-api:1.42.0\" has a tag without a digest"},
		{name: ":latest floats", units: []Unit{unit("Application", "r.example/orders-api:latest", good)}, why: "floats (:latest)"},
		{name: "a pod runs another digest", units: []Unit{unit("Application", pinned, map[string]string{"p1": "fake://r.example/orders-api@" + dB})},
			digest: dA, why: "pod p1 runs " + dB + ", not the pinned " + dA},
		{name: "targets disagree", units: []Unit{unit("Application", pinned, good), unit("Kustomization", "r.example/orders-api@"+dB, good)},
			why: "artifact app runs 2 digests"},
		{name: "unit not ready", units: []Unit{unit("Application", pinned, good, func(u *Unit) { u.Ready, u.Message = false, "OutOfSync and Healthy" })},
			digest: dA, why: "Application ns/application is OutOfSync and Healthy"},
		{name: "rollout incomplete", units: []Unit{unit("Application", pinned, good, func(u *Unit) {
			u.Workloads[0].Complete, u.Workloads[0].Message = false, "1 of 2 replicas updated"
		})}, digest: dA, why: "rollout not complete: 1 of 2 replicas updated"},
		{name: "no pods", units: []Unit{unit("Application", pinned, map[string]string{})}, digest: dA, why: "no pod runs it"},
		{name: "image not in the stage", units: []Unit{unit("Application", "r.example/other@"+dA, good)}, why: "no workload of the stage runs r.example/orders-api"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := Decide(tc.units, arts)
			if r.Digests["app"] != tc.digest || r.Healthy != tc.healthy || !strings.Contains(r.Why, tc.why) {
				t.Errorf("got %q healthy=%v why=%q; want %q healthy=%v why~%q", r.Digests["app"], r.Healthy, r.Why, tc.digest, tc.healthy, tc.why)
			}
			if tc.digest != "" && (len(r.Artifacts) != 1 || r.Artifacts[0].Digest != tc.digest || r.Images[0] != r.Artifacts[0].Reference()) {
				t.Errorf("artifacts %+v images %v", r.Artifacts, r.Images)
			}
		})
	}
}

// TestDecideClusterRollback: a workload whose progressive-delivery
// controller went back to its stable pods makes the stage report
// "rolled back in cluster", run nothing promotable, and say what Git
// would have to pin to match.
func TestDecideClusterRollback(t *testing.T) {
	gitRef := "r.example/orders-api:1.1.0@" + dB
	stableRef := "r.example/orders-api:1.0.0@" + dA
	aborted := func(stable []Container) func(*Unit) {
		return func(u *Unit) {
			w := &u.Workloads[0]
			w.Kind, w.Name, w.Complete, w.Message = "Rollout", "api", false, "aborted: RolloutAborted: Rollout aborted update to revision 2"
			w.Containers[0].Pods = map[string]string{}
			w.Rollback = &Rollback{Message: "RolloutAborted: Rollout aborted update to revision 2", Containers: stable}
		}
	}
	stablePods := map[string]string{"api-5d9-x": "fake://r.example/orders-api@" + dA}
	tests := []struct {
		name    string
		units   []Unit
		running string // what Git would pin to match; "" when it cannot say
		why     string
	}{
		{name: "aborted Rollout: its stable template", running: stableRef,
			units: []Unit{unit("Kustomization", gitRef, nil, aborted([]Container{{Name: "api", Image: stableRef, Pods: stablePods}}))},
			why:   "rolled back in cluster: Rollout ns/api: RolloutAborted: Rollout aborted update to revision 2"},
		{name: "stable template unpinned: its pods' digest", running: "r.example/orders-api:1.0.0@" + dA,
			units: []Unit{unit("Kustomization", gitRef, nil, aborted([]Container{{Name: "api", Image: "r.example/orders-api:1.0.0", Pods: stablePods}}))},
			why:   "rolled back in cluster"},
		{name: "stable pods not found", running: "",
			units: []Unit{unit("Kustomization", gitRef, nil, aborted(nil))},
			why:   "the rolled-back workloads' stable pods were not found"},
		{name: "two targets roll back to different digests", running: "",
			units: []Unit{unit("Kustomization", gitRef, nil, aborted([]Container{{Name: "api", Image: stableRef, Pods: stablePods}})),
				unit("Application", gitRef, nil, aborted([]Container{{Name: "api", Image: "r.example/orders-api@" + dB, Pods: stablePods}}))},
			why: "the rolled-back workloads run 2 references"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := Decide(tc.units, arts)
			if r.Rollback == nil || r.Healthy || len(r.Digests) != 0 || len(r.Artifacts) != 0 || !strings.Contains(r.Why, tc.why) {
				t.Fatalf("got rollback=%+v healthy=%v digests=%v why=%q; want a rollback, nothing promotable, why~%q", r.Rollback, r.Healthy, r.Digests, r.Why, tc.why)
			}
			if len(r.Rollback.Pinned) != 1 || r.Rollback.Pinned[0].Reference() != gitRef {
				t.Errorf("pinned %+v, want %s", r.Rollback.Pinned, gitRef)
			}
			got := ""
			if len(r.Rollback.Running) == 1 {
				got = r.Rollback.Running[0].Reference()
			}
			if got != tc.running || len(r.Rollback.Running) > 1 {
				t.Errorf("running %+v, want %q", r.Rollback.Running, tc.running)
			}
			if _, err := r.Pick("staging", ""); err == nil || !strings.Contains(err.Error(), "stage staging was rolled back in cluster") {
				t.Errorf("Pick: %v; want a refusal naming the rollback", err)
			}
		})
	}
}
