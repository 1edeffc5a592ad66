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
		{Policy{MatchMode: "regex"}, `policy.matchMode "regex" is not supported`},
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
