package rbac

import (
	"os"
	"strings"
	"testing"
)

func TestCan(t *testing.T) {
	csvText, err := os.ReadFile("testdata/policy.csv")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name          string
		def           string
		user          User
		res, act, obj string
		want          bool
	}{
		{"no role, no default", "", User{Name: "bob"}, Applications, Get, "team-a/web", false},
		{"the default role reads", "role:readonly", User{Name: "bob"}, Applications, Get, "team-a/web", true},
		{"the default role does not sync", "role:readonly", User{Name: "bob"}, Applications, Sync, "team-a/web", false},
		{"readonly reads Flux kinds too", "role:readonly", User{}, "helmreleases", Get, "apps/podinfo", true},
		{"a group's role", "", User{Name: "carol", Groups: []string{"platform:admins"}}, Applications, Delete, "any/thing", true},
		{"that role has no Flux rights", "", User{Name: "carol", Groups: []string{"platform:admins"}}, "kustomizations", Get, "flux-system/infra", false},
		{"project-scoped sync", "", User{Name: "dan", Groups: []string{"team-a-devs"}}, Applications, Sync, "team-a/web", true},
		{"outside the project", "", User{Name: "dan", Groups: []string{"team-a-devs"}}, Applications, Sync, "team-b/web", false},
		{"deny beats allow in one role", "", User{Name: "dan", Groups: []string{"team-a-devs"}}, Applications, Delete, "team-a/prod-web", false},
		{"allow where no deny", "", User{Name: "dan", Groups: []string{"team-a-devs"}}, Applications, Delete, "team-a/dev-web", true},
		{"an action not granted", "", User{Name: "dan", Groups: []string{"team-a-devs"}}, Applications, Override, "team-a/web", false},
		{"a Flux namespace glob", "", User{Name: "dan", Groups: []string{"team-a-devs"}}, "kustomizations", Sync, "team-a/apps", true},
		{"built-in admin by user", "", User{Name: "alice"}, "helmreleases", Delete, "apps/podinfo", true},
		{"admin inherits readonly", "", User{Name: "alice"}, Projects, Get, "default", true},
		{"anonymous, no default", "", User{}, Applications, Get, "team-a/web", false},
		{"the local admin account", "", User{Name: "admin"}, Applications, Delete, "team-a/web", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := New(Policy{CSV: string(csvText), Default: tc.def})
			if err != nil {
				t.Fatal(err)
			}
			if got := e.Can(tc.user, tc.res, tc.act, tc.obj); got != tc.want {
				t.Errorf("Can(%+v, %s, %s, %s) = %v, want %v", tc.user, tc.res, tc.act, tc.obj, got, tc.want)
			}
			if got := e.casbinCan(tc.user, tc.res, tc.act, tc.obj); got != tc.want {
				t.Errorf("casbin's own evaluator says %v, want %v: the fast path and casbin disagree on the model", got, tc.want)
			}
		})
	}
}

func TestBadPolicies(t *testing.T) {
	for _, tc := range []struct {
		policy Policy
		want   string
	}{
		{Policy{CSV: "p, role:x, applications, get"}, `policy.csv line 1: "p, role:x, applications, get" is neither`},
		{Policy{CSV: "p, role:x, applications, get, */*, allow\ng, only-one"}, `policy.csv line 2: "g, only-one"`},
		{Policy{CSV: "p, role:x, applications, get, */*, maybe"}, `policy.csv line 1`},
		{Policy{MatchMode: "exact"}, `policy.matchMode "exact": want glob or regex`},
		{Policy{MatchMode: "regex", CSV: "p, role:x, applications, get, team-a/(, allow"}, `policy.csv line 1: policy.matchMode regex: "team-a/("`},
	} {
		_, err := New(tc.policy)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want ~%q", tc.policy, err, tc.want)
		}
	}
}

func TestDenyAll(t *testing.T) {
	for _, u := range []User{{Name: "admin"}, {Name: "alice", Groups: []string{"role:admin"}}, {}} {
		if DenyAll().Can(u, Applications, Get, "default/web") {
			t.Errorf("DenyAll let %+v read", u)
		}
	}
	// What a policy line cannot do: the built-in admin keeps its role.
	e, err := New(Policy{CSV: "p, *, *, *, *, deny"})
	if err != nil {
		t.Fatal(err)
	}
	if !e.Can(User{Name: "admin"}, Applications, Delete, "default/web") {
		t.Error("the built-in admin lost its role to a line naming subject \"*\": DenyAll's reason to exist is gone")
	}
}

// TestRegexMode: policy.matchMode regex reads patterns as regular
// expressions found anywhere in the value, as Argo CD's casbin
// RegexMatch; "*" alone still means everything, so the built-in roles
// hold.
func TestRegexMode(t *testing.T) {
	e, err := New(Policy{MatchMode: "regex", CSV: `p, role:web, applications, sync, ^team-(a|b)/web-[0-9]+$, allow
p, role:web, applications, get, team-a/.*, allow
g, dan, role:web
`})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		user     User
		act, obj string
		want     bool
	}{
		{User{Name: "dan"}, Sync, "team-a/web-12", true},
		{User{Name: "dan"}, Sync, "team-b/web-3", true},
		{User{Name: "dan"}, Sync, "team-c/web-3", false},
		{User{Name: "dan"}, Sync, "team-a/web-x", false},
		{User{Name: "dan"}, Get, "team-a/anything", true},
		{User{Name: "dan"}, Get, "other/team-a/x", true}, // unanchored, as Argo CD
		{User{Name: "dan"}, Delete, "team-a/web-12", false},
		{User{Name: "admin"}, Delete, "x/y", true},
	} {
		if got := e.Can(tc.user, Applications, tc.act, tc.obj); got != tc.want {
			t.Errorf("%s %s %s: %v, want %v", tc.user.Name, tc.act, tc.obj, got, tc.want)
		}
		if got := e.casbinCan(tc.user, Applications, tc.act, tc.obj); got != tc.want {
			t.Errorf("%s %s %s: casbin says %v, want %v", tc.user.Name, tc.act, tc.obj, got, tc.want)
		}
	}
	// The same lines in glob mode are not patterns but names.
	g, err := New(Policy{CSV: "p, role:web, applications, get, team-a/.*, allow\ng, dan, role:web\n"})
	if err != nil {
		t.Fatal(err)
	}
	if g.Can(User{Name: "dan"}, Applications, Get, "team-a/anything") {
		t.Error("glob mode read team-a/.* as a regular expression")
	}
}

// TestScopes: argocd-rbac-cm's scopes choose which claims are subjects.
func TestScopes(t *testing.T) {
	csv := "g, alice@example.com, role:admin\ng, ops, role:admin\n"
	u := User{Name: "alice", Groups: []string{"ops"}, Claims: map[string][]string{"email": {"alice@example.com"}}}
	for _, tc := range []struct {
		scopes []string
		user   User
		want   bool
	}{
		{nil, u, true}, // groups, the default
		{nil, User{Name: "alice", Claims: u.Claims}, false}, // the email is not a subject by default
		{[]string{"groups", "email"}, User{Name: "alice", Claims: u.Claims}, true},
		{[]string{"email"}, User{Name: "bob", Groups: []string{"ops"}}, false}, // groups left out of scopes
	} {
		e, err := New(Policy{CSV: csv, Scopes: tc.scopes})
		if err != nil {
			t.Fatal(err)
		}
		if got := e.Can(tc.user, Applications, Delete, "p/x"); got != tc.want {
			t.Errorf("scopes %v, %+v: %v, want %v", tc.scopes, tc.user, got, tc.want)
		}
	}
}

// TestProjectRoles: an AppProject's roles grant to their groups on the
// project's own applications only; a line reaching past the project, or
// onto other resources, is left out and said so.
func TestProjectRoles(t *testing.T) {
	roles := []ProjectRole{{Project: "team-a", Name: "deployer", Groups: []string{"team-a-ci"}, Policies: []string{
		"p, proj:team-a:deployer, applications, sync, team-a/*, allow",
		"p, proj:team-a:deployer, applications, get, *, allow",           // not in the project
		"p, proj:team-a:deployer, kustomizations, sync, team-a/*, allow", // a namespace, not the project
		"p, proj:team-b:deployer, applications, delete, team-b/*, allow", // another role's subject
		"p, proj:team-a:deployer, applications, delete, team-a/prod, deny",
		"p, proj:team-a:deployer, applications, delete, team-a/*",
	}}}
	for _, mode := range []string{"glob", "regex"} {
		pols := roles
		if mode == "regex" {
			pols = []ProjectRole{{Project: "team-a", Name: "deployer", Groups: []string{"team-a-ci"}, Policies: []string{
				"p, proj:team-a:deployer, applications, sync, team-a/.*, allow",
				"p, proj:team-a:deployer, applications, delete, team-a/prod, deny",
				"p, proj:team-a:deployer, applications, delete, team-a/.*, allow",
			}}}
		}
		e, err := New(Policy{MatchMode: mode, ProjectRoles: pols})
		if err != nil {
			t.Fatal(err)
		}
		ci := User{Name: "ci", Groups: []string{"team-a-ci"}}
		for _, tc := range []struct {
			res, act, obj string
			want          bool
		}{
			{Applications, Sync, "team-a/web", true},
			{Applications, Sync, "team-a/apps/web", true}, // an Application outside argocd's namespace
			{Applications, Sync, "team-b/web", false},
			{Applications, Sync, "other/team-a/web", false}, // regex is unanchored: the project still holds
			{Applications, Get, "team-b/web", false},
			{"kustomizations", Sync, "team-a/apps", false},
			{Applications, Delete, "team-b/web", false},
			{Applications, Delete, "team-a/prod", false},
			{Applications, Delete, "team-a/dev", true},
		} {
			if got := e.Can(ci, tc.res, tc.act, tc.obj); got != tc.want {
				t.Errorf("%s: %s %s %s: %v, want %v", mode, tc.res, tc.act, tc.obj, got, tc.want)
			}
		}
		if e.Can(User{Name: "ci"}, Applications, Sync, "team-a/web") {
			t.Errorf("%s: a user without the role's group got it", mode)
		}
		if mode == "glob" {
			ign := strings.Join(e.Ignored(), "\n")
			for _, want := range []string{`policies[1]`, `object "*" is not in project team-a`, `policies[2]`, `resource "kustomizations"`,
				`policies[3]`, `subject "proj:team-b:deployer" is not the role's own "proj:team-a:deployer"`} {
				if !strings.Contains(ign, want) {
					t.Errorf("ignored lines do not say %q:\n%s", want, ign)
				}
			}
			if len(e.Ignored()) != 3 {
				t.Errorf("%d lines ignored, want 3", len(e.Ignored()))
			}
		}
	}
}
