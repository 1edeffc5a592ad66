package promotion

import (
	"fmt"
	"strings"
)

// Gate names, as in the seed's §7.3. Each is reported as the forge
// commit status "converge/gate/<name>".
const (
	GateTests        = "tests"
	GateManifest     = "manifest"
	GatePolicy       = "policy"
	GateScan         = "scan"
	GateBake         = "bake"
	GateApproval     = "approval"
	GateProgressive  = "progressive"
	GateChangeTicket = "change-ticket"
	GateEvidence     = "evidence"
	// GateRollback is the rollback contract (seed §15): failed when the
	// previous image is gone, or rollback is impossible without a
	// roll-forward plan.
	GateRollback = "rollback"
	// GateTag is converge's: the tag beside a digest still names it in
	// the registry. A moved tag is a warning; the digest is promoted,
	// never what the tag names now.
	GateTag = "tag"
)

// Requirement says what a gate's failure does.
type Requirement string

const (
	// Required gates must pass before a merge.
	Required Requirement = "required"
	// Recommended gates are shown, and a failure is a warning.
	Recommended Requirement = "recommended"
	// Optional gates are shown only.
	Optional Requirement = "optional"
)

// Risk levels: the seed's "do not make every service follow the heaviest
// process".
const (
	RiskLow  = "low"
	RiskHigh = "high"
	RiskAuto = "auto"
)

// Table is the seed's §7.3, with the evidence gate (the same digest and
// the same evidence as the stage before) required at every risk. The bake
// is required at both; only its length differs, and that is the stage's.
func Table(risk string) []GateSpec {
	high := risk == RiskHigh
	pick := func(low, hi Requirement) Requirement {
		if high {
			return hi
		}
		return low
	}
	return []GateSpec{
		{GateTests, Required},
		{GateManifest, Required},
		{GatePolicy, Required},
		{GateScan, Required},
		{GateEvidence, Required},
		{GateBake, Required},
		{GateApproval, pick(Optional, Required)},
		{GateProgressive, pick(Recommended, Required)},
		{GateChangeTicket, pick(Optional, Required)},
		{GateRollback, pick(Recommended, Required)},
		{GateTag, Recommended},
	}
}

// GateSpec is a gate and how much it counts.
type GateSpec struct {
	Name        string
	Requirement Requirement
}

// Phase is a gate's state.
type Phase string

const (
	Pending Phase = "pending"
	Passed  Phase = "passed"
	Failed  Phase = "failed"
)

// Result is one gate's evaluation.
type Result struct {
	Name        string      `json:"name"`
	Requirement Requirement `json:"requirement"`
	Phase       Phase       `json:"phase"`
	Message     string      `json:"message,omitempty"`
}

// Verdict sums the results: Passed when every required gate passed,
// Failed when one failed (a failure that waiting cannot fix), else
// Pending.
func Verdict(rs []Result) (Phase, string) {
	var pending, failed []string
	for _, r := range rs {
		if r.Requirement != Required {
			continue
		}
		switch r.Phase {
		case Failed:
			failed = append(failed, r.Name+": "+r.Message)
		case Pending:
			pending = append(pending, r.Name+": "+r.Message)
		}
	}
	switch {
	case len(failed) > 0:
		return Failed, "failed " + strings.Join(failed, "; ")
	case len(pending) > 0:
		return Pending, "waiting for " + strings.Join(pending, "; ")
	}
	return Passed, fmt.Sprintf("all %d required gates passed", countRequired(rs))
}

func countRequired(rs []Result) int {
	n := 0
	for _, r := range rs {
		if r.Requirement == Required {
			n++
		}
	}
	return n
}

// Change is what a promotion pull request changes, for risk: auto.
type Change struct {
	// OutsideLocators lists files changed beyond the locators and the
	// evidence file.
	OutsideLocators []string
	// Deletes lists objects the target's render no longer has.
	Deletes []string
	// Sensitive lists CRDs, RBAC and Namespaces the change touches.
	Sensitive []string
	// Clusters is the number of clusters the target spans.
	Clusters int
	// IrreversibleMigration is the migration evidence's verdict.
	IrreversibleMigration bool
}

// AutoRisk decides risk: auto, and says why when it is high.
func AutoRisk(c Change) (string, string) {
	var why []string
	if len(c.OutsideLocators) > 0 {
		why = append(why, "changes files beyond the image reference: "+strings.Join(c.OutsideLocators, ", "))
	}
	if len(c.Deletes) > 0 {
		why = append(why, "deletes "+strings.Join(c.Deletes, ", "))
	}
	if len(c.Sensitive) > 0 {
		why = append(why, "touches "+strings.Join(c.Sensitive, ", "))
	}
	if c.Clusters > 1 {
		why = append(why, fmt.Sprintf("spans %d clusters", c.Clusters))
	}
	if c.IrreversibleMigration {
		why = append(why, "its migration is irreversible")
	}
	if len(why) > 0 {
		return RiskHigh, strings.Join(why, "; ")
	}
	return RiskLow, "changes only the image reference"
}
