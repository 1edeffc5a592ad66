package appset

import (
	"fmt"
	"sort"
	"strings"
)

// Policy is what the set may do: Argo CD's applicationsSync, and
// converge's limit on deletions in one round.
type Policy struct {
	// Sync is create-only, create-update, create-delete or sync ("" is
	// sync).
	Sync string
	// DeletionLimit is the most Applications one round may delete without
	// approval: "N" or "N%" of those the set has. "" is the default: one,
	// or a quarter of them if that is more.
	DeletionLimit string
}

// Plan is what one round does.
type Plan struct {
	Create, Update, Delete []string
	// Held, when set, says why the deletions wait for approval (Delete
	// then lists what waits, and nothing is deleted).
	Held string
}

// Decide plans from the Applications the set has (existing, by name,
// with whether each differs from desired) and what it generated now.
// approved says a person approved the deletions after they were held.
func Decide(existing map[string]bool, desired map[string]bool, p Policy, generators string, approved bool) (Plan, error) {
	var out Plan
	for name := range desired {
		differs, ok := existing[name]
		switch {
		case !ok:
			out.Create = append(out.Create, name)
		case differs && (p.Sync == "" || p.Sync == "sync" || p.Sync == "create-update"):
			out.Update = append(out.Update, name)
		}
	}
	if p.Sync == "" || p.Sync == "sync" || p.Sync == "create-delete" {
		for name := range existing {
			if !desired[name] {
				out.Delete = append(out.Delete, name)
			}
		}
	}
	sort.Strings(out.Create)
	sort.Strings(out.Update)
	sort.Strings(out.Delete)
	limit, err := deletionLimit(p.DeletionLimit, len(existing))
	if err != nil {
		return Plan{}, err
	}
	if len(out.Delete) > limit && !approved {
		out.Held = fmt.Sprintf("%s would delete %d of the %d Applications this set generated (%s), more than the limit of %d in one round; approve with the annotation %s: <RFC 3339 time>, or fix the generator",
			generators, len(out.Delete), len(existing), strings.Join(out.Delete, ", "), limit, DeletionApprovedAnnotation)
	}
	return out, nil
}

// DeletionApprovedAnnotation on an ApplicationSet approves the
// deletions held before its time.
const DeletionApprovedAnnotation = "converge.dev/deletion-approved"

// DeletionLimitAnnotation sets Policy.DeletionLimit.
const DeletionLimitAnnotation = "converge.dev/deletion-limit"

func deletionLimit(s string, n int) (int, error) {
	return limitOf(s, n, max(1, n/4), "annotation "+DeletionLimitAnnotation)
}
