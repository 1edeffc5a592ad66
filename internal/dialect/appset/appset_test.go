package appset

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/intstr"

	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
)

var testClusters = []Cluster{
	{Name: "in-cluster", Server: "https://kubernetes.default.svc", Local: true},
	{Name: "Staging_East", Server: "https://east:6443", Labels: map[string]string{"staging": "true", "env": "staging", "use-kafka": "false"}},
	{Name: "prod-west", Server: "https://west:6443", Labels: map[string]string{"env": "prod"}},
}

// A forge for the scmProvider fixtures: owner myorg's repositories.
func scmRepositories(_ context.Context, src SCMSource) ([]Repository, error) {
	switch {
	case src.Owner == "gone":
		return nil, fmt.Errorf("GET /orgs/gone/repos: 404 Not Found")
	case src.Owner == "flaky":
		return []Repository{{Organization: "flaky", Name: "app", Branch: "main"}}, nil
	case src.API != "http://127.0.0.1:3000/" || src.Owner != "myorg" || src.TokenSecret != "gitea-token" || src.TokenKey != "token" || !src.AllBranches:
		return nil, fmt.Errorf("source %+v", src)
	}
	var out []Repository
	for i, r := range []struct {
		name   string
		labels []string
	}{{"myapp-api", []string{"deploy-ok"}}, {"myapp-web", nil}, {"otherapp", nil}, {"otherapp-off", nil}, {"unrelated", []string{"deploy-ok"}}} {
		out = append(out, Repository{Organization: "myorg", Name: r.name, ID: int64(i + 1), Branch: "main", Labels: r.labels,
			SSHURL: "git@127.0.0.1:myorg/" + r.name + ".git", HTTPSURL: "http://127.0.0.1:3000/myorg/" + r.name})
	}
	return out, nil
}

func scmBranches(_ context.Context, src SCMSource, r Repository) ([]Repository, error) {
	main, feature := r, r
	main.SHA = "1111111111" + r.Name
	feature.Branch, feature.SHA = "Feature/X", "2222222222"+r.Name
	if r.Name == "myapp-api" && src.AllBranches {
		return []Repository{main, feature}, nil
	}
	return []Repository{main}, nil
}

func scmHasPath(_ context.Context, _ SCMSource, r Repository, p string) (bool, error) {
	files := map[string][]string{
		"myapp-api@main":    {"kubernetes/kustomization.yaml"},
		"myapp-web@main":    {"kubernetes/kustomization.yaml"},
		"otherapp@main":     {"helm"},
		"otherapp-off@main": {"helm", "disabledrepo.txt"},
		"unrelated@main":    {"kubernetes/kustomization.yaml"},
	}
	if r.Organization == "flaky" {
		return false, fmt.Errorf("GET contents/%s: 502 Bad Gateway", p)
	}
	for _, f := range files[r.Name+"@"+r.Branch] {
		if f == p {
			return true, nil
		}
	}
	return false, nil
}

// apps runs a fixture: each generated Application as
// "name project path destination labels".
func apps(t *testing.T, fixture string) ([]string, error) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", fixture))
	if err != nil {
		t.Fatal(err)
	}
	set := &v1alpha1.ApplicationSet{}
	if err := yaml.UnmarshalStrict(data, set); err != nil {
		t.Fatal(err)
	}
	gens, err := Generate(context.Background(), set, Inputs{Clusters: testClusters, Checkout: func(_ context.Context, repoURL, revision string) (string, error) {
		if repoURL != "http://127.0.0.1:3000/argoproj/argo-cd.git" || revision != "HEAD" {
			return "", fmt.Errorf("repository %s@%s: not found", repoURL, revision)
		}
		return filepath.Join("testdata", "repo"), nil
	}, PullRequests: func(_ context.Context, src PullRequestSource) ([]PullRequest, error) {
		if src.API != "http://127.0.0.1:3000/" || src.Owner != "myorg" || src.Repo != "myrepository" || src.TokenSecret != "gitea-token" ||
			src.TokenKey != "token" || len(src.Labels) != 1 || src.Labels[0] != "preview" {
			return nil, fmt.Errorf("source %+v", src)
		}
		return []PullRequest{
			{Number: 7, Branch: "Feature/Login-argocd", TargetBranch: "main", HeadSHA: "0123456789abcdef", Labels: []string{"preview", "ui"}},
			{Number: 8, Branch: "hotfix", TargetBranch: "release", HeadSHA: "fedcba9876543210", Labels: []string{"preview"}},
			{Number: 9, Branch: "other-argocd", TargetBranch: "main", HeadSHA: "aaaaaaaaaaaaaaaa"},                           // no label
			{Number: 10, Branch: "hotfix-2", TargetBranch: "main", HeadSHA: "bbbbbbbbbbbbbbbb", Labels: []string{"preview"}}, // no filter
		}, nil
	}, Repositories: scmRepositories, Branches: scmBranches, HasPath: scmHasPath})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, g := range gens {
		for _, p := range g.Params {
			u, err := Render(set, g.Template, p)
			if err != nil {
				return nil, err
			}
			app := &v1alpha1.Application{}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, app); err != nil {
				t.Fatal(err)
			}
			path := ""
			if app.Spec.Source != nil {
				path = app.Spec.Source.Path + "@" + app.Spec.Source.TargetRevision
			}
			d := app.Spec.Destination
			line := strings.Join([]string{app.Namespace + "/" + app.Name, app.Spec.Project, path, d.Name + d.Server + "/" + d.Namespace}, " ")
			if len(app.Labels) > 0 {
				line += " env=" + app.Labels["env"]
			}
			if app.Spec.Source != nil && app.Spec.Source.Helm != nil {
				line += " values=" + strings.Join(app.Spec.Source.Helm.ValueFiles, ",")
			}
			if sp := app.Spec.SyncPolicy; sp != nil {
				line += fmt.Sprintf(" sync=%s automated=%v", strings.Join(sp.SyncOptions, ","), sp.Automated != nil)
			}
			out = append(out, line)
		}
	}
	sort.Strings(out)
	return out, nil
}

func TestGenerateAndRender(t *testing.T) {
	tests := []struct {
		fixture string
		want    []string
		err     string
	}{
		{fixture: "list.yaml", want: []string{
			"argocd/engineering-dev-guestbook my-project applicationset/examples/list-generator/guestbook/engineering-dev@HEAD https://1.2.3.4/guestbook",
			"argocd/engineering-prod-guestbook my-project applicationset/examples/list-generator/guestbook/engineering-prod@HEAD https://2.4.6.8/guestbook"}},
		{fixture: "clusters.yaml", want: []string{
			"argocd/Staging_East-guestbook default guestbook@stable https://east:6443/guestbook-staging env=staging"}},
		{fixture: "gotemplate.yaml", want: []string{
			"argocd/in-cluster-guestbook default guestbook/in-cluster@HEAD in-cluster/guestbook env=NONE",
			"argocd/prod-west-guestbook default guestbook/prod-west@HEAD prod-west/guestbook env=PROD",
			"argocd/staging-east-guestbook default guestbook/staging_east@HEAD Staging_East/guestbook env=STAGING"}},
		{fixture: "override.yaml", want: []string{"argocd/dev-guestbook dev-project overridden/dev@HEAD dev/guestbook"}},
		{fixture: "missingkey.yaml", err: `map has no entry for key "region"`},
		{fixture: "git.yaml", want: []string{
			"argocd/argo-workflows my-project applicationset/examples/git-generator-directory/cluster-addons/argo-workflows@HEAD https://kubernetes.default.svc/argo-workflows",
			"argocd/prometheus-operator my-project applicationset/examples/git-generator-directory/cluster-addons/prometheus-operator@HEAD https://kubernetes.default.svc/prometheus-operator"}},
		{fixture: "git-files.yaml", want: []string{
			"argocd/orders-east-guestbook default apps/orders/config@HEAD https://east:6443/orders",
			"argocd/payments-west-guestbook default apps/payments/config@HEAD https://west:6443/payments"}},
		{fixture: "matrix.yaml", want: []string{
			"argocd/argo-workflows-prod-west prod applicationset/examples/git-generator-directory/cluster-addons/argo-workflows@HEAD https://west:6443/argo-workflows",
			"argocd/prometheus-operator-prod-west prod applicationset/examples/git-generator-directory/cluster-addons/prometheus-operator@HEAD https://west:6443/prometheus-operator"}},
		{fixture: "pullrequest.yaml", want: []string{
			"argocd/myapp-feature-login-argocd-7 default kubernetes/@0123456789abcdef https://kubernetes.default.svc/preview-0123456",
			"argocd/myapp-hotfix-8 default kubernetes/@fedcba9876543210 https://kubernetes.default.svc/preview-fedcba9"}},
		{fixture: "unsupported.yaml", err: "spec.generators[1].plugin: the plugin generator is not supported by converge yet; nothing was generated, created or deleted"},
		{fixture: "scm.yaml", want: []string{
			"argocd/myapp-api-main default kubernetes/@main https://kubernetes.default.svc/repo-1 env=preview-1111111",
			"argocd/otherapp-main default kubernetes/@main https://kubernetes.default.svc/repo-3 env=preview-1111111"}},
		{fixture: "scm-unreachable.yaml", err: "spec.generators[0].scmProvider: GET /orgs/gone/repos: 404 Not Found"},
		{fixture: "scm-pathcheck.yaml", err: "spec.generators[0].scmProvider: flaky/app@main: path kubernetes: GET contents/kubernetes: 502 Bad Gateway"},
		{fixture: "elementsyaml.yaml", want: []string{"argocd/dev-guestbook default  dev/guestbook", "argocd/qa-guestbook default  qa/guestbook", "argocd/uat-guestbook default  uat/guestbook"}},
		{fixture: "templatepatch.yaml", want: []string{
			"argocd/engineering-dev-deployment default guestbook/engineering-dev@HEAD https://kubernetes.default.svc/guestbook values=values.large.yaml,values.debug.yaml sync= automated=true",
			"argocd/engineering-prod-deployment default guestbook/engineering-prod@HEAD https://kubernetes.default.svc/guestbook values=values.large.yaml"}},
		{fixture: "merge.yaml", want: []string{
			"argocd/Staging_East false-false app@HEAD https://east:6443/default",
			"argocd/in-cluster true-false app@HEAD https://kubernetes.default.svc/default",
			"argocd/prod-west true-true app@HEAD https://west:6443/default"}},
		{fixture: "rollingsync.yaml", want: []string{"argocd/engineering-dev-guestbook default  https://1.2.3.4/guestbook env= sync=CreateNamespace=true automated=false"}},
		{fixture: "unreadable-repo.yaml", err: "spec.generators[0].git: repository http://127.0.0.1:3000/argoproj/gone.git@HEAD: not found"},
	}
	for _, tc := range tests {
		t.Run(tc.fixture, func(t *testing.T) {
			got, err := apps(t, tc.fixture)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want ~%q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestDecide(t *testing.T) {
	names := func(n int) map[string]bool {
		m := map[string]bool{}
		for i := range n {
			m[string(rune('a'+i))] = false
		}
		return m
	}
	tests := []struct {
		name                   string
		existing, desired      map[string]bool
		policy                 Policy
		approved               bool
		create, update, delete int
		held                   bool
		err                    string
	}{
		{name: "one of three goes: under the default limit", existing: names(3), desired: map[string]bool{"a": true, "b": true}, delete: 1},
		{name: "twenty of twenty go: held", existing: names(20), desired: map[string]bool{}, delete: 20, held: true},
		{name: "five of twenty go: a quarter, allowed", existing: names(20), desired: without(names(20), "a", "b", "c", "d", "e"), delete: 5},
		{name: "six of twenty go: held", existing: names(20), desired: without(names(20), "a", "b", "c", "d", "e", "f"), delete: 6, held: true},
		{name: "held, then approved", existing: names(20), desired: map[string]bool{}, approved: true, delete: 20},
		{name: "limit as a count", existing: names(20), desired: without(names(20), "a", "b"), policy: Policy{DeletionLimit: "1"}, delete: 2, held: true},
		{name: "limit as a percentage", existing: names(10), desired: without(names(10), "a", "b"), policy: Policy{DeletionLimit: "20%"}, delete: 2},
		{name: "bad limit", existing: names(2), desired: names(2), policy: Policy{DeletionLimit: "many"}, err: "is not N or N%"},
		{name: "create-only neither updates nor deletes", existing: map[string]bool{"a": true, "b": false}, desired: map[string]bool{"a": true, "c": true},
			policy: Policy{Sync: "create-only"}, create: 1},
		{name: "create-update does not delete", existing: map[string]bool{"a": true, "b": false}, desired: map[string]bool{"a": true},
			policy: Policy{Sync: "create-update"}, update: 1},
		{name: "create-delete does not update", existing: map[string]bool{"a": true, "b": false}, desired: map[string]bool{"a": true},
			policy: Policy{Sync: "create-delete"}, delete: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Decide(tc.existing, tc.desired, tc.policy, "spec.generators[0].clusters", tc.approved)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want ~%q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Create) != tc.create || len(p.Update) != tc.update || len(p.Delete) != tc.delete || (p.Held != "") != tc.held {
				t.Errorf("plan %+v; want create %d update %d delete %d held %v", p, tc.create, tc.update, tc.delete, tc.held)
			}
			if tc.held && !strings.Contains(p.Held, "spec.generators[0].clusters would delete") {
				t.Errorf("held: %s", p.Held)
			}
		})
	}
}

func without(m map[string]bool, drop ...string) map[string]bool {
	out := map[string]bool{}
	for k := range m {
		out[k] = true
	}
	for _, d := range drop {
		delete(out, d)
	}
	return out
}

func TestRoll(t *testing.T) {
	steps := []v1alpha1.ApplicationSetRolloutStep{
		{MatchExpressions: []v1alpha1.ApplicationMatchExpression{{Key: "env", Operator: "In", Values: []string{"dev"}}}},
		{MatchExpressions: []v1alpha1.ApplicationMatchExpression{{Key: "env", Operator: "In", Values: []string{"staging"}}}},
		{MatchExpressions: []v1alpha1.ApplicationMatchExpression{{Key: "env", Operator: "In", Values: []string{"prod"}}}},
	}
	app := func(name, env string, mod func(*AppState)) AppState {
		a := AppState{Name: name, Labels: map[string]string{"env": env}}
		if mod != nil {
			mod(&a)
		}
		return a
	}
	ok := func(a *AppState) { a.Synced, a.Healthy = true, true }
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	degraded := func(a *AppState) { a.Synced, a.Degraded = true, true }
	tests := []struct {
		name     string
		apps     []AppState
		budget   string
		deadline time.Duration
		recheck  time.Duration
		revert   bool
		reverts  string // name=commit, sorted
		sync     string // the Applications synced now
		status   string // name=status, sorted
		halted   string
	}{
		{name: "the first step starts", apps: []AppState{app("d", "dev", nil), app("s", "staging", nil), app("p", "prod", nil)},
			sync: "d", status: "d=Pending p=Waiting s=Waiting"},
		{name: "the next step waits for the first to be healthy",
			apps:   []AppState{app("d", "dev", func(a *AppState) { a.Synced = true }), app("s", "staging", nil), app("p", "prod", nil)},
			status: "d=Progressing p=Waiting s=Waiting"},
		{name: "then it goes", apps: []AppState{app("d", "dev", ok), app("s", "staging", nil), app("p", "prod", nil)},
			sync: "s", status: "d=Healthy p=Waiting s=Pending"},
		{name: "a Degraded step halts: nothing after it is touched",
			apps:   []AppState{app("d", "dev", degraded), app("s", "staging", nil), app("p", "prod", nil)},
			status: "d=Degraded p=Waiting s=Waiting", halted: "step 1: 1 of its 1 Applications failed (d (Degraded)), more than the error budget of 0"},
		{name: "within the budget it goes on", budget: "1",
			apps: []AppState{app("d1", "dev", degraded), app("d2", "dev", ok), app("s", "staging", nil)}, sync: "s",
			status: "d1=Degraded d2=Healthy s=Pending"},
		{name: "a failed sync counts", budget: "50%",
			apps:   []AppState{app("d1", "dev", func(a *AppState) { a.Failed = true }), app("d2", "dev", degraded), app("s", "staging", nil)},
			status: "d1=Degraded d2=Degraded s=Waiting", halted: "step 1: 2 of its 2 Applications failed"},
		{name: "one still progressing past the deadline counts as failed", budget: "0", deadline: 10 * time.Minute,
			apps: []AppState{app("d1", "dev", func(a *AppState) { a.Synced, a.SyncStarted = true, now.Add(-11*time.Minute) }),
				app("d2", "dev", func(a *AppState) { a.Synced, a.SyncStarted = true, now.Add(-9*time.Minute) }), app("s", "staging", nil)},
			recheck: time.Minute + time.Second,
			status:  "d1=Degraded d2=Progressing s=Waiting", halted: "step 1: 1 of its 2 Applications failed (d1 (not Synced and Healthy 10m0s after its sync started))"},
		{name: "a sync asked for but not started is not late", deadline: time.Minute,
			apps:   []AppState{app("d", "dev", func(a *AppState) { a.Syncing = true })},
			status: "d=Progressing"},
		{name: "a halt reverts the step's failed Applications to their last healthy commit", revert: true,
			apps: []AppState{app("d1", "dev", func(a *AppState) { degraded(a); a.Revision, a.LastHealthy = "bad0000000", "good000000" }),
				app("d2", "dev", func(a *AppState) { degraded(a); a.Revision = "bad0000000" }), app("s", "staging", nil)},
			reverts: "d1=good000000", status: "d1=Degraded d2=Degraded s=Waiting",
			halted: "reverting d1 to good000; no earlier healthy commit to revert d2 to"},
		{name: "once reverted it stays failed and is not synced again while Git stays", revert: true,
			apps: []AppState{app("d", "dev", func(a *AppState) {
				a.Healthy, a.Revision, a.LastHealthy, a.RevertedFrom = true, "bad0000000", "good000000", "bad0000000"
			}), app("s", "staging", func(a *AppState) { a.Revision = "bad0000000" })},
			status: "d=Degraded s=Waiting", halted: "step 1: 1 of its 1 Applications failed (d (reverted to good000 after bad0000 failed))"},
		{name: "a new commit lifts the revert", revert: true,
			apps: []AppState{app("d", "dev", func(a *AppState) {
				a.Healthy, a.Revision, a.LastHealthy, a.RevertedFrom = true, "fix0000000", "good000000", "bad0000000"
			}), app("s", "staging", nil)},
			sync: "d", status: "d=Pending s=Waiting"},
		{name: "an Application no step selects is never synced", apps: []AppState{app("x", "qa", nil), app("d", "dev", ok)},
			status: "d=Healthy x=Waiting"},
		{name: "a stale Synced does not let a later step go first",
			apps: []AppState{app("d", "dev", func(a *AppState) { ok(a); a.Source, a.Revision = "repo@HEAD", "old" }),
				app("s", "staging", func(a *AppState) { a.Source, a.Revision = "repo@HEAD", "new" })},
			status: "d=Waiting s=Waiting"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Roll(steps, tc.apps, Budget{Failures: tc.budget, Deadline: tc.deadline, Now: now, Revert: tc.revert})
			if err != nil {
				t.Fatal(err)
			}
			var reverts []string
			for n, c := range r.Revert {
				reverts = append(reverts, n+"="+c)
			}
			sort.Strings(reverts)
			if got := strings.Join(reverts, " "); got != tc.reverts {
				t.Errorf("reverts %q, want %q", got, tc.reverts)
			}
			var st []string
			for n, s := range r.Status {
				st = append(st, n+"="+s.Status)
			}
			sort.Strings(st)
			if got := strings.Join(r.Sync, ","); got != tc.sync {
				t.Errorf("sync %q, want %q", got, tc.sync)
			}
			if r.Recheck != tc.recheck {
				t.Errorf("recheck in %s, want %s", r.Recheck, tc.recheck)
			}
			if got := strings.Join(st, " "); got != tc.status {
				t.Errorf("status %q, want %q", got, tc.status)
			}
			if !strings.Contains(r.Halted, tc.halted) || (tc.halted == "") != (r.Halted == "") {
				t.Errorf("halted %q, want ~%q", r.Halted, tc.halted)
			}
		})
	}
	maxOne := []v1alpha1.ApplicationSetRolloutStep{{MatchExpressions: steps[0].MatchExpressions, MaxUpdate: ptrIntOrString("50%")}}
	r, err := Roll(maxOne, []AppState{app("a", "dev", nil), app("b", "dev", nil), app("c", "dev", nil), app("d", "dev", nil)}, Budget{})
	if err != nil || strings.Join(r.Sync, ",") != "a,b" {
		t.Errorf("maxUpdate 50%% of 4: synced %v, %v", r.Sync, err)
	}
	if _, err := Roll([]v1alpha1.ApplicationSetRolloutStep{{MatchExpressions: []v1alpha1.ApplicationMatchExpression{{Key: "env", Operator: "Exists"}}}}, nil, Budget{}); err == nil {
		t.Error("an operator Argo CD does not have was accepted")
	}
}

func ptrIntOrString(s string) *intstr.IntOrString {
	v := intstr.FromString(s)
	return &v
}
