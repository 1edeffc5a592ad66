package promotion

import (
	"crypto/sha1" //nolint:gosec // Git names blobs by SHA-1; this is its name, not a security check.
	"encoding/hex"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Evidence types, the seed's §7.2 list. "staging deployment" is not
// recorded by CI: it is the source stage's observation, which converge
// writes itself.
var EvidenceTypes = []string{"build", "scan", "sbom", "provenance", "smoke", "migration", "rollback-plan", "slo-risk", "change-ticket"}

// KnownEvidence says whether t is one of EvidenceTypes.
func KnownEvidence(t string) bool {
	for _, k := range EvidenceTypes {
		if k == t {
			return true
		}
	}
	return false
}

// EvidenceDir is where CI records evidence for digest in the deploy
// repository.
func EvidenceDir(digest string) string {
	return path.Join(".converge", "evidence", strings.Replace(digest, ":", "-", 1))
}

// EvidencePath is the file of one evidence item.
func EvidencePath(digest, typ string) string { return path.Join(EvidenceDir(digest), typ+".yaml") }

// RecordPath is a stage's promotion record; its git log is the stage's
// promotion history.
func RecordPath(stage string) string { return path.Join(".converge", "promotions", stage+".yaml") }

// Evidence is one item CI recorded for a digest.
type Evidence struct {
	Type string `json:"type"`
	// Subject is the digest the item is about. An item whose subject is
	// not the digest of the folder it sits in is tampered with.
	Subject string `json:"subject"`
	URI     string `json:"uri,omitempty"`
	// Result is passed or failed, for build, scan and smoke.
	Result string `json:"result,omitempty"`
	// Critical counts critical findings, for a scan.
	Critical *int `json:"critical,omitempty"`
	// Migration is none, reversible or irreversible, for migration.
	Migration string `json:"migration,omitempty"`
	// RollForward is the plan when going back is impossible, for
	// rollback-plan.
	RollForward string `json:"rollForward,omitempty"`
	Summary     string `json:"summary,omitempty"`
	// File is a document attached to the item (an SBOM, a report),
	// relative to the repository root; FileBlob pins its content.
	File       string    `json:"file,omitempty"`
	FileBlob   string    `json:"fileBlob,omitempty"`
	RecordedAt time.Time `json:"recordedAt,omitempty"`
}

// Check says what is wrong with an item found at file, or "".
func (e Evidence) Check(file, digest string) string {
	switch {
	case e.Subject != digest:
		return fmt.Sprintf("%s: subject %q is not %s", file, e.Subject, digest)
	case !KnownEvidence(e.Type):
		return fmt.Sprintf("%s: type %q is not one of %s", file, e.Type, strings.Join(EvidenceTypes, ", "))
	case path.Base(file) != e.Type+".yaml":
		return fmt.Sprintf("%s: type %q does not match its file name", file, e.Type)
	case e.Result != "" && e.Result != "passed" && e.Result != "failed":
		return fmt.Sprintf("%s: result %q is neither passed nor failed", file, e.Result)
	case e.File != "" && e.FileBlob == "":
		return fmt.Sprintf("%s: file %s is not pinned by fileBlob", file, e.File)
	}
	return ""
}

// BlobSHA is the Git blob name of content, as `git hash-object` prints
// it: the record pins each evidence file by it, so a change after the
// stage before read it is seen.
func BlobSHA(content []byte) string {
	h := sha1.New() //nolint:gosec // see the import
	fmt.Fprintf(h, "blob %s\x00", strconv.Itoa(len(content)))
	h.Write(content)
	return hex.EncodeToString(h.Sum(nil))
}

// RecordedEvidence is an evidence item as a promotion record pins it.
type RecordedEvidence struct {
	Type    string `json:"type"`
	Subject string `json:"subject"`
	Path    string `json:"path"`
	Blob    string `json:"blob"`
	URI     string `json:"uri,omitempty"`
}

// Record is the file .converge/promotions/<stage>.yaml written by the
// promotion commit. It is in the merged tree, so it survives a squash
// merge and a move to another forge.
type Record struct {
	Pipeline  string             `json:"pipeline"`
	Stage     string             `json:"stage"`
	From      string             `json:"from,omitempty"`
	Promotion string             `json:"promotion"`
	Reason    string             `json:"reason"`
	Freight   string             `json:"freight"`
	Artifacts []RecordedArtifact `json:"artifacts"`
	Source    *SourceRecord      `json:"source,omitempty"`
	Evidence  []RecordedEvidence `json:"evidence,omitempty"`
	Risk      string             `json:"risk"`
	Gates     []Result           `json:"gates,omitempty"`
	// Rollback is the rollback contract when the promotion commit was
	// written (the pull request's gate re-checks it on every head).
	Rollback *Contract `json:"rollback,omitempty"`
	// Direct says the change was pushed straight to the base branch (an
	// emergency rollback), not merged from a pull request.
	Direct bool `json:"direct,omitempty"`
}

// RecordedArtifact is one artifact's move.
type RecordedArtifact struct {
	Name     string `json:"name"`
	Previous string `json:"previous,omitempty"`
	Image    string `json:"image"`
}

// SourceRecord is the source stage as observed when the promotion was
// written.
type SourceRecord struct {
	Stage        string     `json:"stage"`
	Revision     string     `json:"revision,omitempty"`
	HealthySince *time.Time `json:"healthySince,omitempty"`
	ObservedAt   time.Time  `json:"observedAt"`
}

// Recheck compares the evidence found now with what the stage before
// recorded: the same digests, and every item it pinned unchanged. It
// returns one message per difference; none means the evidence holds.
func Recheck(prev Record, digests map[string]string, now []RecordedEvidence) []string {
	var bad []string
	for _, a := range prev.Artifacts {
		im, err := ParseImage(a.Image)
		if err != nil {
			bad = append(bad, fmt.Sprintf("%s records %s: %v", RecordPath(prev.Stage), a.Name, err))
			continue
		}
		if d, ok := digests[a.Name]; ok && d != im.Digest {
			bad = append(bad, fmt.Sprintf("%s promoted %s %s, not %s", prev.Stage, a.Name, short(im.Digest), short(d)))
		}
	}
	byPath := map[string]RecordedEvidence{}
	for _, e := range now {
		byPath[e.Path] = e
	}
	for _, e := range prev.Evidence {
		cur, ok := byPath[e.Path]
		switch {
		case !ok:
			bad = append(bad, fmt.Sprintf("evidence %s, recorded at %s, is gone", e.Path, prev.Stage))
		case cur.Blob != e.Blob:
			bad = append(bad, fmt.Sprintf("evidence %s changed since %s recorded it (blob %s, was %s)", e.Path, prev.Stage, cur.Blob[:12], e.Blob[:min(12, len(e.Blob))]))
		case cur.Subject != e.Subject:
			bad = append(bad, fmt.Sprintf("evidence %s names subject %s, %s recorded %s", e.Path, cur.Subject, prev.Stage, e.Subject))
		}
	}
	sort.Strings(bad)
	return bad
}

// Trailers are the commit trailers that index a promotion commit.
func Trailers(r Record) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Converge-Pipeline: %s\n", r.Pipeline)
	fmt.Fprintf(&b, "Converge-Stage: %s\n", r.Stage)
	if r.From != "" {
		fmt.Fprintf(&b, "Converge-From-Stage: %s\n", r.From)
	}
	fmt.Fprintf(&b, "Converge-Freight: %s\n", r.Freight)
	for _, a := range r.Artifacts {
		fmt.Fprintf(&b, "Converge-Image: %s\n", a.Image)
	}
	fmt.Fprintf(&b, "Converge-Evidence: %s\n", RecordPath(r.Stage))
	if r.Direct {
		b.WriteString("Converge-Direct: true\n")
	}
	return b.String()
}

// ParseTrailers reads Converge-* trailers from a commit message. A key
// that repeats (Converge-Image) keeps every value.
func ParseTrailers(message string) map[string][]string {
	out := map[string][]string{}
	for _, line := range strings.Split(message, "\n") {
		// A squash merge may list the branch's commits as "* ..." lines.
		line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "* "))
		k, v, ok := strings.Cut(line, ": ")
		if ok && strings.HasPrefix(k, "Converge-") && !strings.ContainsAny(k, " \t") {
			out[k] = append(out[k], strings.TrimSpace(v))
		}
	}
	return out
}
