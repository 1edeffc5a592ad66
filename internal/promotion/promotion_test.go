package promotion

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseImageAndPinned(t *testing.T) {
	tests := []struct {
		ref        string
		repo, tag  string
		digest     string
		err        string
		unpinnedBy string
	}{
		{ref: "registry.example.com/orders-api:1.42.0@" + dA, repo: "registry.example.com/orders-api", tag: "1.42.0", digest: dA},
		{ref: "127.0.0.1:5000/orders-api@" + dB, repo: "127.0.0.1:5000/orders-api", digest: dB},
		{ref: "127.0.0.1:5000/orders-api:1.0", repo: "127.0.0.1:5000/orders-api", tag: "1.0", unpinnedBy: "a tag without a digest"},
		{ref: "orders-api:latest", repo: "orders-api", tag: "latest", unpinnedBy: ":latest"},
		{ref: "orders-api", repo: "orders-api", unpinnedBy: ":latest"},
		{ref: "orders-api@sha256:abc", err: "not sha256:<64 hex>", unpinnedBy: "not sha256"},
	}
	for _, tc := range tests {
		im, err := ParseImage(tc.ref)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err %v, want %q", tc.ref, err, tc.err)
			}
		} else if err != nil || im.Repository != tc.repo || im.Tag != tc.tag || im.Digest != tc.digest || im.String() != tc.ref {
			t.Errorf("%s: %+v %v", tc.ref, im, err)
		}
		got := Pinned(tc.ref)
		if (tc.unpinnedBy == "") != (got == "") || !strings.Contains(got, tc.unpinnedBy) {
			t.Errorf("Pinned(%s) = %q, want %q", tc.ref, got, tc.unpinnedBy)
		}
	}
	if d := DigestOfImageID("docker-pullable://r/o@" + dA); d != dA {
		t.Errorf("imageID digest %q", d)
	}
	if d := DigestOfImageID("fake://r/o:1.0"); d != "" {
		t.Errorf("a tag-only imageID has digest %q", d)
	}
}

func TestFreightIDIgnoresOrderAndTags(t *testing.T) {
	a := []Artifact{{Name: "app", Image: "r/app", Tag: "1", Digest: dA}, {Name: "worker", Image: "r/w", Digest: dB}}
	b := []Artifact{{Name: "worker", Image: "r/w", Tag: "x", Digest: dB}, {Name: "app", Image: "r/app", Digest: dA}}
	if FreightID(a) != FreightID(b) || !ValidDigest(FreightID(a)) {
		t.Errorf("same digests, different ids: %s %s", FreightID(a), FreightID(b))
	}
	b[0].Digest = dA
	if FreightID(a) == FreightID(b) {
		t.Error("different digests, same id")
	}
	if ShortID(FreightID(a)) != FreightID(a)[7:14] {
		t.Error(ShortID(FreightID(a)))
	}
}

func TestVerdictAndTable(t *testing.T) {
	low, high := Table(RiskLow), Table(RiskHigh)
	req := func(gs []GateSpec, name string) Requirement {
		for _, g := range gs {
			if g.Name == name {
				return g.Requirement
			}
		}
		return ""
	}
	// The seed's §7.3 rows that differ by risk.
	for name, want := range map[string][2]Requirement{
		GateApproval: {Optional, Required}, GateProgressive: {Recommended, Required}, GateChangeTicket: {Optional, Required},
		GateTests: {Required, Required}, GateScan: {Required, Required}, GateBake: {Required, Required},
	} {
		if got := [2]Requirement{req(low, name), req(high, name)}; got != want {
			t.Errorf("%s: %v, want %v", name, got, want)
		}
	}
	rs := []Result{{Name: "a", Requirement: Required, Phase: Passed}, {Name: "b", Requirement: Optional, Phase: Failed, Message: "x"}}
	if v, _ := Verdict(rs); v != Passed {
		t.Errorf("an optional failure blocks: %s", v)
	}
	rs = append(rs, Result{Name: "bake", Requirement: Required, Phase: Pending, Message: "dev healthy 3m of 30m"})
	if v, m := Verdict(rs); v != Pending || !strings.Contains(m, "bake: dev healthy 3m of 30m") {
		t.Errorf("%s %s", v, m)
	}
	rs = append(rs, Result{Name: "scan", Requirement: Required, Phase: Failed, Message: "2 critical"})
	if v, m := Verdict(rs); v != Failed || !strings.Contains(m, "scan: 2 critical") {
		t.Errorf("%s %s", v, m)
	}
	if r, why := AutoRisk(Change{}); r != RiskLow || why == "" {
		t.Error(r, why)
	}
	if r, why := AutoRisk(Change{Sensitive: []string{"ClusterRole x"}, IrreversibleMigration: true}); r != RiskHigh ||
		!strings.Contains(why, "ClusterRole x") || !strings.Contains(why, "irreversible") {
		t.Error(r, why)
	}
}

func TestRecheckNamesEveryChange(t *testing.T) {
	prev := Record{Stage: "staging", Artifacts: []RecordedArtifact{{Name: "app", Image: "r/app:1@" + dA}},
		Evidence: []RecordedEvidence{
			{Type: "scan", Subject: dA, Path: EvidencePath(dA, "scan"), Blob: BlobSHA([]byte("critical: 0\n"))},
			{Type: "build", Subject: dA, Path: EvidencePath(dA, "build"), Blob: BlobSHA([]byte("result: passed\n"))},
		}}
	same := []RecordedEvidence{prev.Evidence[0], prev.Evidence[1]}
	if bad := Recheck(prev, map[string]string{"app": dA}, same); len(bad) != 0 {
		t.Errorf("unchanged evidence: %v", bad)
	}
	tampered := []RecordedEvidence{{Type: "scan", Subject: dA, Path: EvidencePath(dA, "scan"), Blob: BlobSHA([]byte("critical: 0 # trust me\n"))}}
	bad := Recheck(prev, map[string]string{"app": dB}, tampered)
	want := []string{"evidence .converge/evidence/sha256-" + dA[7:] + "/build.yaml, recorded at staging, is gone",
		"evidence .converge/evidence/sha256-" + dA[7:] + "/scan.yaml changed since staging recorded it",
		"staging promoted app sha256:aaaaaaaaaaaa, not sha256:bbbbbbbbbbbb"}
	if len(bad) != len(want) {
		t.Fatalf("%q", bad)
	}
	for i := range want {
		if !strings.HasPrefix(bad[i], want[i]) {
			t.Errorf("%q\nwant prefix %q", bad[i], want[i])
		}
	}
	// Git's own name for a blob: `printf 'hello\n' | git hash-object --stdin`.
	if BlobSHA([]byte("hello\n")) != "ce013625030ba8dba906f756967f9e9ca394464a" {
		t.Error(BlobSHA([]byte("hello\n")))
	}
}

func TestTrailersSurviveASquashList(t *testing.T) {
	r := Record{Pipeline: "orders/orders-api", Stage: "prod", From: "staging", Freight: "sha256:f",
		Artifacts: []RecordedArtifact{{Name: "app", Image: "r/app:1@" + dA}}}
	msg := "Promote orders-api to prod (#7)\n\n* Promote orders-api to prod\n\n" + indent(Trailers(r), "* ")
	got := ParseTrailers(msg)
	want := map[string][]string{"Converge-Pipeline": {"orders/orders-api"}, "Converge-Stage": {"prod"}, "Converge-From-Stage": {"staging"},
		"Converge-Freight": {"sha256:f"}, "Converge-Image": {"r/app:1@" + dA}, "Converge-Evidence": {".converge/promotions/prod.yaml"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%v", got)
	}
}

func indent(s, p string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return p + strings.Join(lines, "\n"+p) + "\n"
}

func TestSpliceKeepsWhatPeopleWrote(t *testing.T) {
	part := Body(BodyInput{Pipeline: "p", Stage: "prod", From: "staging", Risk: RiskHigh, RiskWhy: "set", Author: "converge", ApprovalRequired: true,
		Images:   []ImageChange{{Object: "Deployment o/api", Container: "api", Old: "r/app:1@" + dA, New: "r/app:2@" + dB}},
		Evidence: []Link{{Type: "scan", URI: "https://scan/1", Path: "x"}, {Type: "smoke"}},
		Gates:    []Result{{Name: GateBake, Requirement: Required, Phase: Pending, Message: "staging healthy 12m of 24h"}}})
	for _, want := range []string{"- image: r/app:1@" + dA, "+ image: r/app:2@" + dB, "- scan: https://scan/1", "- smoke: **missing**",
		"- [ ] **bake** (required, pending): staging healthy 12m of 24h", "someone other than converge"} {
		if !strings.Contains(part, want) {
			t.Errorf("body lacks %q:\n%s", want, part)
		}
	}
	body := Splice("Release notes by a person.\n", part)
	body = Splice(body+"\nA reviewer's note.\n", strings.Replace(part, "pending", "passed", 1))
	if !strings.HasPrefix(body, "Release notes by a person.\n") || !strings.HasSuffix(body, "A reviewer's note.\n") ||
		strings.Count(body, BodyBegin) != 1 || !strings.Contains(body, "(required, passed)") {
		t.Errorf("%s", body)
	}
}
