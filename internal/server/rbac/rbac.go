// Package rbac decides who may do what, from policies in Argo CD's
// policy.csv form (argocd-rbac-cm): "p, subject, resource, action,
// object, allow|deny" lines, "g, user-or-group, role" lines, a default
// role, and the built-in role:readonly and role:admin. Existing Argo CD
// policies work unchanged; Flux's kinds are resources too.
package rbac

import (
	"encoding/csv"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"

	"github.com/casbin/casbin/v2"
	"github.com/casbin/casbin/v2/model"
	"github.com/casbin/casbin/v2/persist"
	"github.com/gobwas/glob"
)

// convergeGlob, not casbin's own globMatch, whose '*' stops at '/': Argo CD's
// "*" matches "team-a/web" too.
//
// Subjects: a request is allowed when the default role, the user, or any
// of their groups is; within one subject a deny beats an allow.
const modelText = `
[request_definition]
r = sub, res, act, obj

[policy_definition]
p = sub, res, act, obj, eft

[role_definition]
g = _, _

[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))

[matchers]
m = g(r.sub, p.sub) && convergeGlob(r.res, p.res) && convergeGlob(r.act, p.act) && convergeGlob(r.obj, p.obj)
`

// Resources and actions converge checks. Argo CD's objects are
// "<project>/<name>" (or "<project>/<namespace>/<name>" outside the
// control-plane namespace); Flux's are "<namespace>/<name>".
const (
	Applications    = "applications"
	ApplicationSets = "applicationsets"
	Projects        = "projects"

	Get      = "get"
	Sync     = "sync"
	Override = "override"
	Rollback = "rollback"
	Delete   = "delete"
)

// Flux's resources, one per kind.
var FluxResources = []string{"kustomizations", "helmreleases", "gitrepositories", "ocirepositories", "helmrepositories"}

// builtin are the roles every policy may use, as Argo CD's built-in
// policy has them, with Flux's resources added.
func builtin() string {
	var b strings.Builder
	for _, r := range append([]string{Applications, ApplicationSets, Projects, "clusters", "repositories", "logs", "pipelines"}, FluxResources...) {
		// "*", not Argo CD's "*/*" for applications: the same in glob mode
		// ('*' crosses '/'), and in regex mode, where "*/*" is no regular
		// expression, still everything.
		fmt.Fprintf(&b, "p, role:readonly, %s, get, *, allow\n", r)
		fmt.Fprintf(&b, "p, role:admin, %s, *, *, allow\n", r)
	}
	b.WriteString("g, role:admin, role:readonly\n")
	// The local admin account is an admin, as in Argo CD.
	b.WriteString("g, admin, role:admin\n")
	return b.String()
}

// Policy is argocd-rbac-cm's data.
type Policy struct {
	// CSV is policy.csv: p and g lines.
	CSV string
	// Default is policy.default, the role everyone has ("" none, e.g.
	// role:readonly).
	Default string
	// MatchMode is policy.matchMode: "" or glob, or regex. A regex is
	// matched anywhere in the value, as casbin's RegexMatch does for
	// Argo CD; "*" alone matches everything in either mode, so the
	// built-in roles keep working.
	MatchMode string
	// Scopes are the login's claims whose values are subjects, as
	// argocd-rbac-cm's scopes ("[groups, email]"); nil is groups. The
	// claim "groups" is User.Groups; others come from User.Claims.
	Scopes []string
	// ProjectRoles are the AppProjects' roles. Their lines may only grant
	// on their own project's applications and applicationsets, whatever
	// their object pattern says.
	ProjectRoles []ProjectRole
}

// ProjectRole is one role of an AppProject: Argo CD's subject
// "proj:<project>:<role>", its policy lines, and the groups that hold it.
type ProjectRole struct {
	Project, Name string
	Policies      []string
	Groups        []string
}

// projectResources are what a project role may grant on: the project's
// own Argo CD objects ("<project>/..."). A Flux object's name is
// "<namespace>/<name>", which a project name could spell.
var projectResources = map[string]bool{Applications: true, ApplicationSets: true, "logs": true, "exec": true}

// Enforcer answers access questions for one Policy.
type Enforcer struct {
	e        *casbin.SyncedEnforcer
	fallback string
	scopes   []string
	regex    bool
	// projects maps a project role's subject to its project: its rules
	// hold only for objects in it.
	projects map[string]string
	// ignored are project role lines not loaded, each with why.
	ignored []string
	// nobody refuses everyone (DenyAll).
	nobody bool
	mu     sync.Mutex
	globs  map[string]glob.Glob
	res    map[string]*regexp.Regexp
}

// New compiles p. A line that does not parse is an error naming it.
func New(p Policy) (*Enforcer, error) {
	if p.MatchMode != "" && p.MatchMode != "glob" && p.MatchMode != "regex" {
		return nil, fmt.Errorf("policy.matchMode %q: want glob or regex", p.MatchMode)
	}
	m, err := model.NewModelFromString(modelText)
	if err != nil {
		return nil, err
	}
	x := &Enforcer{fallback: p.Default, scopes: p.Scopes, regex: p.MatchMode == "regex", projects: map[string]string{},
		globs: map[string]glob.Glob{}, res: map[string]*regexp.Regexp{}}
	if x.scopes == nil {
		x.scopes = []string{"groups"}
	}
	for _, src := range []struct{ name, text string }{{"built-in policy", builtin()}, {"policy.csv", p.CSV}} {
		r := csv.NewReader(strings.NewReader(src.text))
		r.TrimLeadingSpace, r.FieldsPerRecord, r.Comment, r.LazyQuotes = true, -1, '#', true
		for {
			rec, err := r.Read()
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", src.name, err)
			}
			for i := range rec {
				rec[i] = strings.TrimSpace(rec[i])
			}
			if len(rec) == 1 && rec[0] == "" {
				continue
			}
			line, _ := r.FieldPos(0)
			switch {
			case rec[0] == "p" && len(rec) == 5:
				rec = append(rec, "allow") // Argo CD's effect defaults to allow
			case rec[0] == "p" && len(rec) == 6 && (rec[5] == "allow" || rec[5] == "deny"):
			case rec[0] == "g" && len(rec) == 3:
			default:
				return nil, fmt.Errorf("%s line %d: %q is neither \"p, subject, resource, action, object[, allow|deny]\" nor \"g, subject, role\"", src.name, line, strings.Join(rec, ", "))
			}
			if x.regex && rec[0] == "p" {
				for _, f := range rec[2:5] {
					if _, err := x.pattern(f); err != nil {
						return nil, fmt.Errorf("%s line %d: %w", src.name, line, err)
					}
				}
			}
			if err := persist.LoadPolicyArray(rec, m); err != nil {
				return nil, fmt.Errorf("%s line %d: %w", src.name, line, err)
			}
		}
	}
	for _, r := range p.ProjectRoles {
		for _, line := range x.projectLines(r) {
			if err := persist.LoadPolicyArray(line, m); err != nil {
				x.ignored = append(x.ignored, fmt.Sprintf("project %s role %s: %v", r.Project, r.Name, err))
			}
		}
	}
	e, err := casbin.NewSyncedEnforcer(m)
	if err != nil {
		return nil, err
	}
	e.AddFunction("convergeGlob", func(args ...any) (any, error) {
		val, _ := args[0].(string)
		pattern, _ := args[1].(string)
		return x.match(pattern, val), nil
	})
	if err := e.BuildRoleLinks(); err != nil {
		return nil, err
	}
	x.e = e
	return x, nil
}

// projectLines are r's p lines that stay within its project, and a g
// line per group; each line left out is recorded in x.ignored.
func (x *Enforcer) projectLines(r ProjectRole) [][]string {
	subject := "proj:" + r.Project + ":" + r.Name
	x.projects[subject] = r.Project
	var out [][]string
	for i, text := range r.Policies {
		rec, err := csv.NewReader(strings.NewReader(text)).Read()
		why := ""
		switch {
		case err != nil:
			why = err.Error()
		default:
			for j := range rec {
				rec[j] = strings.TrimSpace(rec[j])
			}
			if len(rec) == 5 {
				rec = append(rec, "allow")
			}
			switch {
			case len(rec) != 6 || rec[0] != "p" || (rec[5] != "allow" && rec[5] != "deny"):
				why = "not \"p, subject, resource, action, object[, allow|deny]\""
			case rec[1] != subject:
				why = fmt.Sprintf("subject %q is not the role's own %q", rec[1], subject)
			case !projectResources[rec[2]]:
				why = fmt.Sprintf("resource %q is not one of the project's own", rec[2])
			case !strings.HasPrefix(rec[4], r.Project+"/"):
				why = fmt.Sprintf("object %q is not in project %s", rec[4], r.Project)
			}
			if why == "" && x.regex {
				for _, f := range rec[2:5] {
					if _, err := x.pattern(f); err != nil {
						why = err.Error()
					}
				}
			}
		}
		if why != "" {
			x.ignored = append(x.ignored, fmt.Sprintf("project %s role %s policies[%d] %q: %s", r.Project, r.Name, i, text, why))
			continue
		}
		out = append(out, rec)
	}
	for _, g := range r.Groups {
		out = append(out, []string{"g", g, subject})
	}
	return out
}

// Ignored lists the project role lines left out, each with why.
func (x *Enforcer) Ignored() []string { return x.ignored }

// pattern compiles a regex-mode pattern; "*" alone is not one.
func (x *Enforcer) pattern(p string) (*regexp.Regexp, error) {
	if p == "*" {
		return nil, nil
	}
	re, err := regexp.Compile(p)
	if err != nil {
		return nil, fmt.Errorf("policy.matchMode regex: %q: %w", p, err)
	}
	return re, nil
}

// match is a glob over the whole value, '*' crossing '/', as Argo CD's;
// in regex mode a regular expression found anywhere in the value.
func (x *Enforcer) match(pattern, val string) bool {
	if pattern == val || pattern == "*" {
		return true
	}
	if x.regex {
		x.mu.Lock()
		re, ok := x.res[pattern]
		if !ok {
			re, _ = x.pattern(pattern)
			x.res[pattern] = re
		}
		x.mu.Unlock()
		return re != nil && re.MatchString(val)
	}
	x.mu.Lock()
	g, ok := x.globs[pattern]
	if !ok {
		var err error
		if g, err = glob.Compile(pattern); err != nil {
			g = nil
		}
		x.globs[pattern] = g
	}
	x.mu.Unlock()
	return g != nil && g.Match(val)
}

// DenyAll refuses everyone, the built-in roles too: the policy in
// force when the configured one does not parse. A policy line cannot
// say it ("p, *, ..." names a subject called "*", and "g, admin,
// role:admin" is built in).
func DenyAll() *Enforcer { return &Enforcer{nobody: true} }

// User is who asks: their name, the groups their login carried, and
// its other claims that policy scopes may name (email, say).
type User struct {
	Name   string              `json:"name"`
	Groups []string            `json:"groups,omitempty"`
	Claims map[string][]string `json:"claims,omitempty"`
}

// subjects are who u is to the policy: the default role, the name, and
// the values of the scoped claims.
func (x *Enforcer) subjects(u User) []string {
	names := make([]string, 0, len(u.Groups)+2)
	if x.fallback != "" {
		names = append(names, x.fallback)
	}
	if u.Name != "" {
		names = append(names, u.Name)
	}
	for _, s := range x.scopes {
		if s == "groups" {
			names = append(names, u.Groups...)
		} else {
			names = append(names, u.Claims[s]...)
		}
	}
	return names
}

// Can says whether u may act on resource's object.
func (x *Enforcer) Can(u User, resource, action, object string) bool {
	return x.For(u).Can(resource, action, object)
}

// Checker answers for one user, with their rules gathered once: a list
// of many units is checked row by row, and casbin's general evaluator
// per row would cost more than the rest of the request.
type Checker struct {
	x *Enforcer
	// subjects are the default role, the user and their groups, each
	// with the rules of its own and of its roles (g lines, transitively).
	subjects [][]rule
}

type rule struct {
	res, act, obj string
	deny          bool
	// project, for a project role's rule, is the project whose objects
	// alone it may match.
	project string
}

// For gathers u's rules.
func (x *Enforcer) For(u User) *Checker {
	if x.nobody {
		return &Checker{x: x}
	}
	policies, _ := x.e.GetPolicy()
	c := &Checker{x: x}
	for _, name := range x.subjects(u) {
		roles, _ := x.e.GetImplicitRolesForUser(name)
		mine := map[string]bool{name: true}
		for _, r := range roles {
			mine[r] = true
		}
		var rules []rule
		for _, p := range policies {
			if len(p) == 5 && mine[p[0]] {
				rules = append(rules, rule{res: p[1], act: p[2], obj: p[3], deny: p[4] == "deny", project: x.projects[p[0]]})
			}
		}
		c.subjects = append(c.subjects, rules)
	}
	return c
}

// Can says whether the user may act on resource's object: some subject
// has a rule that allows it and none that denies it.
func (c *Checker) Can(resource, action, object string) bool {
	for _, rules := range c.subjects {
		allow, deny := false, false
		for _, r := range rules {
			if r.project != "" && !strings.HasPrefix(object, r.project+"/") {
				continue
			}
			if c.x.match(r.res, resource) && c.x.match(r.act, action) && c.x.match(r.obj, object) {
				if r.deny {
					deny = true
					break
				}
				allow = true
			}
		}
		if allow && !deny {
			return true
		}
	}
	return false
}

// casbinCan is the same question asked of casbin's own evaluator, for
// tests that hold the two to one answer.
func (x *Enforcer) casbinCan(u User, resource, action, object string) bool {
	for _, s := range x.subjects(u) {
		if ok, err := x.e.Enforce(s, resource, action, object); err == nil && ok {
			return true
		}
	}
	return false
}
