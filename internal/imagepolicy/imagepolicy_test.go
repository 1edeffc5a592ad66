package imagepolicy

import (
	"errors"
	"strings"
	"testing"
)

func s(v string) *string { return &v }

func TestLatest(t *testing.T) {
	tags := []string{"1.0.0", "1.2.0", "v1.10.1", "1.10.0-rc.1", "2.0.0", "latest", "main-1700000000-abc", "main-1700000500-def", "dev-9"}
	for _, tc := range []struct {
		name string
		p    Policy
		tags []string
		want string
		err  string
	}{
		{"semver 1.x: highest in range, a v prefix allowed, prereleases out", Policy{SemVer: "1.x"}, tags, "v1.10.1", ""},
		{"semver range with prereleases", Policy{SemVer: ">=1.10.0-0 <1.10.1"}, tags, "1.10.0-rc.1", ""},
		{"semver over extracted parts", Policy{SemVer: "^1", Pattern: `^release-(?P<v>.*)$`, Extract: "$v"}, []string{"release-1.2.3", "release-1.4.0", "1.9.9"}, "release-1.4.0", ""},
		{"semver: nothing in range", Policy{SemVer: "3.x"}, tags, "", "no tag in semver range"},
		{"alphabetical asc picks the greatest", Policy{Alphabetical: s("asc"), Pattern: `^main-\d+-`}, tags, "main-1700000500-def", ""},
		{"alphabetical desc picks the least", Policy{Alphabetical: s("DESC"), Pattern: `^main-`}, tags, "main-1700000000-abc", ""},
		{"numerical asc over a timestamp", Policy{Numerical: s(""), Pattern: `^main-(?P<ts>\d+)-`, Extract: "$ts"}, tags, "main-1700000500-def", ""},
		{"numerical desc", Policy{Numerical: s("desc"), Pattern: `^main-(?P<ts>\d+)-`, Extract: "$ts"}, tags, "main-1700000000-abc", ""},
		{"numerical on a tag that is no number", Policy{Numerical: s("asc"), Pattern: `^dev-`}, tags, "", `tag "dev-9" (sorted as "dev-9") is not a number`},
		{"a malformed filter is named", Policy{SemVer: "1.x", Pattern: `^main-(`}, tags, "", `spec.filterTags.pattern "^main-(": error parsing regexp`},
		{"a malformed range is named", Policy{SemVer: "one"}, tags, "", `spec.policy.semver.range "one"`},
		{"a bad order is named", Policy{Alphabetical: s("up")}, tags, "", `spec.policy.alphabetical.order "up": want asc or desc`},
		{"two policies", Policy{SemVer: "1.x", Numerical: s("asc")}, tags, "", "want exactly one"},
		{"nothing left after the filter", Policy{Alphabetical: s("asc"), Pattern: `^nope`}, tags, "", ErrNoCandidate.Error()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.p.Latest(tc.tags)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want ~%q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("%q, %v; want %q", got, err, tc.want)
			}
		})
	}
	if _, err := (Policy{SemVer: "9.x"}).Latest(tags); !errors.Is(err, ErrNoCandidate) {
		t.Errorf("no candidate is not ErrNoCandidate: %v", err)
	}
}
