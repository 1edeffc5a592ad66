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
