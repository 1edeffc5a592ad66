// Package imagepolicy picks the latest tag of an image repository as a
// Flux ImagePolicy (image.toolkit.fluxcd.io/v1) says: by a semver range,
// alphabetically or numerically, among the tags a filterTags pattern
// keeps (sorted by what its extract template makes of them). It is pure:
// the scan of the registry and the digest of the pick are the caller's.
package imagepolicy

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/Masterminds/semver/v3"
)

// Policy is an ImagePolicy's spec.policy and spec.filterTags. Exactly
// one of SemVer, Alphabetical and Numerical is set.
type Policy struct {
	// SemVer is a range ("1.x", ">=1.2.0 <2.0.0"): the highest version in
	// it wins. Tags that are not semver (a leading "v" allowed) are not
	// candidates.
	SemVer string
	// Alphabetical and Numerical are "asc" (the default: the greatest
	// wins) or "desc" (the least wins); Flux writes them in either case.
	Alphabetical, Numerical *string
	// Pattern keeps the tags it matches; Extract, a template of its
	// groups ("$ts"), is what is sorted. Empty keeps every tag as is.
	Pattern, Extract string
}

// ErrNoCandidate is a scan with no tag the policy accepts.
var ErrNoCandidate = errors.New("no tag matches the policy")

// Latest is the tag the policy picks from tags.
func (p Policy) Latest(tags []string) (string, error) {
	var re *regexp.Regexp
	if p.Pattern != "" {
		var err error
		if re, err = regexp.Compile(p.Pattern); err != nil {
			return "", fmt.Errorf("spec.filterTags.pattern %q: %w", p.Pattern, err)
		}
	}
	// What is sorted, and the tag it came from.
	type candidate struct{ key, tag string }
	var cands []candidate
	for _, t := range tags {
		if re == nil {
			cands = append(cands, candidate{t, t})
			continue
		}
		m := re.FindStringSubmatchIndex(t)
		if m == nil {
			continue
		}
		key := t
		if p.Extract != "" {
			key = string(re.ExpandString(nil, p.Extract, t, m))
		}
		cands = append(cands, candidate{key, t})
	}
	set := 0
	for _, on := range []bool{p.SemVer != "", p.Alphabetical != nil, p.Numerical != nil} {
		if on {
			set++
		}
	}
	if set != 1 {
		return "", errors.New("spec.policy: want exactly one of semver, alphabetical and numerical")
	}
	switch {
	case p.SemVer != "":
		c, err := semver.NewConstraint(p.SemVer)
		if err != nil {
			return "", fmt.Errorf("spec.policy.semver.range %q: %w", p.SemVer, err)
		}
		var best *semver.Version
		pick := ""
		for _, cd := range cands {
			v, err := semver.StrictNewVersion(strings.TrimPrefix(cd.key, "v"))
			if err != nil || !c.Check(v) {
				continue
			}
			if best == nil || v.GreaterThan(best) {
				best, pick = v, cd.tag
			}
		}
		if best == nil {
			return "", fmt.Errorf("%w: no tag in semver range %q", ErrNoCandidate, p.SemVer)
		}
		return pick, nil
	case p.Alphabetical != nil:
		desc, err := order("alphabetical", *p.Alphabetical)
		if err != nil {
			return "", err
		}
		if len(cands) == 0 {
			return "", ErrNoCandidate
		}
		sort.SliceStable(cands, func(i, j int) bool { return cands[i].key < cands[j].key })
		if desc {
			return cands[0].tag, nil
		}
		return cands[len(cands)-1].tag, nil
	default:
		desc, err := order("numerical", *p.Numerical)
		if err != nil {
			return "", err
		}
		if len(cands) == 0 {
			return "", ErrNoCandidate
		}
		pick, best := "", 0.0
		for i, cd := range cands {
			f, err := strconv.ParseFloat(cd.key, 64)
			if err != nil {
				return "", fmt.Errorf("spec.policy.numerical: tag %q (sorted as %q) is not a number: narrow spec.filterTags", cd.tag, cd.key)
			}
			if i == 0 || (!desc && f > best) || (desc && f < best) {
				pick, best = cd.tag, f
			}
		}
		return pick, nil
	}
}

func order(policy, o string) (desc bool, err error) {
	switch strings.ToLower(o) {
	case "", "asc":
		return false, nil
	case "desc":
		return true, nil
	}
	return false, fmt.Errorf("spec.policy.%s.order %q: want asc or desc", policy, o)
}
