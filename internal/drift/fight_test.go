package drift

import (
	"strings"
	"testing"
	"time"
)

func TestFights(t *testing.T) {
	items, _, err := Explain(Input{Desired: load(t, "desired.yaml"), Live: load(t, "live.yaml"),
		Conflicts: []string{`.spec.template.spec.containers[name="app"].image`}, Self: "converge", Policy: seedPolicy})
	if err != nil {
		t.Fatal(err)
	}
	img, _ := findItem(items, `.spec.template.spec.containers[name="app"].image`)
	if img.Action != Revert {
		t.Fatalf("image: %+v", img)
	}
	var f Fights
	lim := FightLimit{Reverts: 3, Window: time.Minute}
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	cases := []struct {
		at      time.Duration
		started bool
	}{
		{0, false}, {20 * time.Second, false},
		{90 * time.Second, false}, // the first two left the window
		{95 * time.Second, false},
		{100 * time.Second, true}, // three within a minute
		{110 * time.Second, false},
	}
	for _, c := range cases {
		got := f.Took("u", []Item{img}, lim, t0.Add(c.at))
		if (len(got) == 1) != c.started {
			t.Fatalf("at %s: started %v, want %v", c.at, got, c.started)
		}
	}
	active := f.Active("u", t0.Add(120*time.Second))
	if len(active) != 1 || active[0].Count != 3 || f.Active("other", t0.Add(120*time.Second)) != nil {
		t.Fatalf("active: %+v", active)
	}
	msg := active[0].String()
	for _, want := range []string{`"kubectl-set"`, `.spec.template.spec.containers[name="app"].image`, "3 times within 1m0s",
		"{kinds: [apps/Deployment], names: [web], paths: [/spec/template/spec/containers/app/image]}"} {
		if !strings.Contains(msg, want) {
			t.Errorf("fight message lacks %q: %s", want, msg)
		}
	}
	// While the fight is on, the field is left even though forbidden.
	pol := seedPolicy.Stop(active)
	items, leave, _ := Explain(Input{Desired: load(t, "desired.yaml"), Live: load(t, "live.yaml"),
		Conflicts: []string{`.spec.template.spec.containers[name="app"].image`}, Self: "converge", Policy: pol})
	if it, _ := findItem(items, img.Path); it.Action != Allow || !strings.HasPrefix(it.Rule, "FieldFight") || len(leave) != 1 {
		t.Errorf("during the fight: %+v, leave %v", it, leave)
	}
	if got := f.Active("u", t0.Add(161*time.Second)); len(got) != 0 {
		t.Errorf("after the window: %v", got)
	}
	f.Forget("u")
	if f.m[fightKey{"u", img.Object.Key(), img.Path}] != nil {
		t.Error("Forget kept the unit's record")
	}
}

func TestPolicyPathEscapesSlash(t *testing.T) {
	items, _, err := Explain(Input{Desired: load(t, "desired.yaml"), Live: load(t, "live.yaml"), Predicted: load(t, "predicted.yaml"),
		SameRevision: true, Self: "converge"})
	if err != nil {
		t.Fatal(err)
	}
	it, ok := findItem(items, ".metadata.labels.policy.example/injected")
	if !ok || it.PolicyPath() != "/metadata/labels/policy.example~1injected" {
		t.Fatalf("policy path: %q", it.PolicyPath())
	}
	pol := Policy{Name: "p", Allow: []Rule{{Paths: []string{it.PolicyPath()}}}}
	pol.Decide(&it, it.fp, Facts{})
	if it.Action != Allow {
		t.Errorf("an escaped path does not match its field: %+v", it)
	}
}

func TestOverrideHoldsThenReverts(t *testing.T) {
	img := `.spec.template.spec.containers[name="app"].image`
	rule := Rule{Kinds: []string{"apps/Deployment"}, Paths: []string{"/spec/template/spec/containers/app/image"}, Origin: "override hotfix"}
	// explain returns the image's item and whether it is left out of
	// the apply.
	explain := func(p Policy) (Item, bool) {
		items, leave, err := Explain(Input{Desired: load(t, "desired.yaml"), Live: load(t, "live.yaml"), Conflicts: []string{img}, Self: "converge", Policy: p})
		if err != nil {
			t.Fatal(err)
		}
		it, _ := findItem(items, img)
		left := false
		for _, p := range leave {
			left = left || p.String() == img
		}
		return it, left
	}
	active := seedPolicy
	active.Overrides = []Rule{rule}
	if it, left := explain(active); it.Action != Override || it.Category != EmergencyManual || it.Rule != "override hotfix" || it.Unexplained() || !left {
		t.Errorf("under an active override: %+v, left %v", it, left)
	}
	expired := Policy{Name: "p", Default: Ignore, Expired: []Rule{rule}}
	if it, left := explain(expired); it.Action != Revert || it.Category != Unauthorized || left {
		t.Errorf("after expiry: %+v, left %v", it, left)
	}
}
