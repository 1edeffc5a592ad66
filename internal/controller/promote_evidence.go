package controller

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	sigsyaml "sigs.k8s.io/yaml"

	convergev1 "converge.dev/converge/internal/api/converge/v1alpha1"
	"converge.dev/converge/internal/promotion"
)

// checkEvidence is the evidence gate: every item well-formed and about
// its digest, and what the source stage recorded unchanged.
func (run *pipelineRun) checkEvidence(hc *headChecks, dir string, s convergev1.PipelineStage, promo *convergev1.Promotion, found []foundEvidence, bad []string) {
	if len(bad) > 0 {
		hc.results[promotion.GateEvidence] = promotion.Result{Phase: promotion.Failed, Message: "tampered evidence: " + strings.Join(bad, "; ")}
		return
	}
	msg := fmt.Sprintf("%d evidence items about these digests", len(found))
	if promo.Spec.Reason == "rollback" {
		// The digests go back: what the source stage recorded since is
		// about newer ones.
		msg += "; a rollback: the items are those recorded when these digests were first promoted"
	} else if s.From != "" {
		data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(promotion.RecordPath(s.From))))
		if err == nil {
			var prev promotion.Record
			if err := sigsyaml.Unmarshal(data, &prev); err != nil {
				hc.results[promotion.GateEvidence] = promotion.Result{Phase: promotion.Failed, Message: fmt.Sprintf("%s: %v", promotion.RecordPath(s.From), err)}
				return
			}
			if prev.Freight != promo.Spec.Freight.ID {
				hc.results[promotion.GateEvidence] = promotion.Result{Phase: promotion.Failed, Message: fmt.Sprintf(
					"%s records freight %s, not %s: these digests reached %s outside a promotion", promotion.RecordPath(s.From), promotion.ShortID(prev.Freight), promotion.ShortID(promo.Spec.Freight.ID), s.From)}
				return
			}
			var now []promotion.RecordedEvidence
			for _, f := range found {
				now = append(now, f.recorded)
			}
			if diffs := promotion.Recheck(prev, promotion.Digests(artifactsOf(promo.Spec.Freight)), now); len(diffs) > 0 {
				hc.results[promotion.GateEvidence] = promotion.Result{Phase: promotion.Failed, Message: "tampered evidence: " + strings.Join(diffs, "; ")}
				return
			}
			msg += fmt.Sprintf("; the %d %s recorded are unchanged", len(prev.Evidence), s.From)
		}
	}
	hc.results[promotion.GateEvidence] = promotion.Result{Phase: promotion.Passed, Message: msg}
}

// foundEvidence is an evidence file read from a checkout.
type foundEvidence struct {
	item     promotion.Evidence
	recorded promotion.RecordedEvidence
}

// readEvidence reads every evidence file for the artifacts' digests. It
// returns what is wrong with any file as bad, naming it.
func readEvidence(dir string, arts []promotion.Artifact) ([]foundEvidence, []string, error) {
	var found []foundEvidence
	var bad []string
	for _, a := range arts {
		rel := promotion.EvidenceDir(a.Digest)
		entries, err := os.ReadDir(filepath.Join(dir, filepath.FromSlash(rel)))
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		for _, e := range entries {
			if e.IsDir() || !strings.HasSuffix(e.Name(), ".yaml") {
				continue
			}
			file := path.Join(rel, e.Name())
			data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(file)))
			if err != nil {
				return nil, nil, err
			}
			var item promotion.Evidence
			if err := sigsyaml.UnmarshalStrict(data, &item); err != nil {
				bad = append(bad, fmt.Sprintf("%s: %v", file, err))
				continue
			}
			if msg := item.Check(file, a.Digest); msg != "" {
				bad = append(bad, msg)
				continue
			}
			if item.File != "" {
				attached, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(path.Clean(item.File))))
				if err != nil || promotion.BlobSHA(attached) != item.FileBlob || strings.HasPrefix(path.Clean(item.File), "..") {
					bad = append(bad, fmt.Sprintf("%s: attached file %s is missing or changed since it was recorded (fileBlob %s)", file, item.File, item.FileBlob))
					continue
				}
			}
			found = append(found, foundEvidence{item: item, recorded: promotion.RecordedEvidence{Type: item.Type, Subject: item.Subject,
				Path: file, Blob: promotion.BlobSHA(data), URI: item.URI}})
		}
	}
	return found, bad, nil
}
