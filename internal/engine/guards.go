package engine

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"converge.dev/converge/internal/plan"
)

// Annotations on the object that defines a unit (an Application, a
// Kustomization) that set its safety guards, the same in every dialect.
const (
	// PruneBudgetAnnotation sets the prune budget: "0" turns it off;
	// otherwise a share, a count or both, as "25%", "50" or "25%,50".
	PruneBudgetAnnotation = "converge.dev/prune-budget"
	// AdoptUnitAnnotation "true" lets the unit take over live objects no
	// unit created.
	AdoptUnitAnnotation = "converge.dev/adopt"
	// PruneAdoptedAnnotation "true" lets prune delete adopted objects.
	PruneAdoptedAnnotation = "converge.dev/prune-adopted"
)

// Guards reads the guard annotations of a unit's defining object into o.
// An annotation that cannot be read is an error naming it; o is then
// unchanged, so the defaults (budget on) hold.
func Guards(o *SyncOptions, ann map[string]string) error {
	b := o.Budget
	if s, ok := ann[PruneBudgetAnnotation]; ok {
		parsed, err := ParseBudget(s)
		if err != nil {
			return fmt.Errorf("annotation %s: %w", PruneBudgetAnnotation, err)
		}
		b = parsed
	}
	if s, ok := ann[plan.PruneApprovedAnnotation]; ok && s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return fmt.Errorf("annotation %s: %q is not an RFC 3339 time", plan.PruneApprovedAnnotation, s)
		}
		b.Approved = t
	}
	o.Budget = b
	o.Adopt = o.Adopt || strings.EqualFold(ann[AdoptUnitAnnotation], "true")
	o.PruneAdopted = o.PruneAdopted || strings.EqualFold(ann[PruneAdoptedAnnotation], "true")
	return nil
}

// ParseBudget reads a prune budget: "0" (off), "N%", "N", or "N%,M".
func ParseBudget(s string) (plan.Budget, error) {
	s = strings.TrimSpace(s)
	if s == "0" || s == "0%" {
		return plan.Budget{Off: true}, nil
	}
	var b plan.Budget
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		pct := strings.HasSuffix(part, "%")
		n, err := strconv.Atoi(strings.TrimSuffix(part, "%"))
		if err != nil || n <= 0 || (pct && n > 100) {
			return plan.Budget{}, fmt.Errorf("%q: want 0 (off), a share such as 25%%, a count such as 50, or both as 25%%,50", s)
		}
		if pct {
			b.MaxPercent = n
		} else {
			b.MaxObjects = n
		}
	}
	return b, nil
}
