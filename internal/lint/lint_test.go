package lint

import (
	"context"
	"encoding/json"
	"sort"
	"strings"
	"testing"

	"converge.dev/converge/internal/engine"
	"converge.dev/converge/internal/object"
)

func render(ctx context.Context, root string) func(context.Context, engine.Unit) ([]object.Decoded, error) {
	eng := engine.New(engine.Options{})
	return func(ctx context.Context, u engine.Unit) ([]object.Decoded, error) {
		return eng.RenderLocal(ctx, u, root)
	}
}

// TestFindsEachAntiPattern: the fixture repository seeds each rule
// once or twice; each is found at its file, and nothing else is, the
// path its config turns a rule off under included.
func TestFindsEachAntiPattern(t *testing.T) {
	ctx := context.Background()
	got, err := Run(ctx, "testdata/bad", Options{Render: render(ctx, "testdata/bad")})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"CV001 argocd/apps/web-prod.yaml Application argocd/web-prod",
		"CV001 flux/source.yaml GitRepository flux-system/deploy",
		"CV002 apps/web/overlays/dev Deployment web",
		"CV003 argocd/apps/web-prod.yaml Deployment web",
		"CV004 apps/web/overlays/prod/secret.yaml Secret web-db",
		"CV005 apps/web/overlays/prod ",
		"CV006 apps/waves ",
		"CV007 argocd/root.yaml Application argocd/root",
		"CV008 argocd/appset.yaml ApplicationSet argocd/tenants",
		"CV009 argocd/apps/web-prod.yaml Application argocd/web-prod",
		"CV009 argocd/root.yaml Application argocd/root",
		"CV010 apps/web/base/deployment.yaml Deployment web",
	}
	var have []string
	for _, f := range got {
		have = append(have, f.Rule+" "+f.File+" "+f.Object)
		if f.Message == "" || f.Name == "" || (f.Severity != Error && f.Severity != Warning) {
			t.Errorf("finding without its name, severity or message: %+v", f)
		}
	}
	sort.Strings(have)
	if strings.Join(have, "\n") != strings.Join(want, "\n") {
		out, _ := json.MarshalIndent(got, "", " ")
		t.Errorf("findings:\n%s\nwant:\n%s\n\n%s", strings.Join(have, "\n"), strings.Join(want, "\n"), out)
	}
	// Each rule but the unrendered one is seeded.
	seen := map[string]bool{}
	for _, f := range got {
		seen[f.Rule] = true
	}
	for _, r := range Rules {
		if !seen[r.ID] && r.ID != "CV000" {
			t.Errorf("rule %s (%s) is not seeded in testdata/bad", r.ID, r.Name)
		}
	}
	// Off by flag, everywhere.
	got, err = Run(ctx, "testdata/bad", Options{Render: render(ctx, "testdata/bad"), Disable: []string{"CV009", "plaintext-secret"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range got {
		if f.Rule == "CV009" || f.Rule == "CV004" {
			t.Errorf("a rule turned off still found %+v", f)
		}
	}
	if _, err := Run(ctx, "testdata/bad", Options{Disable: []string{"CV099"}}); err == nil || !strings.Contains(err.Error(), `"CV099": no such rule`) {
		t.Errorf("an unknown rule: %v", err)
	}
}

// TestCleanRepository: a repository that avoids every anti-pattern has
// no finding.
func TestCleanRepository(t *testing.T) {
	ctx := context.Background()
	got, err := Run(ctx, "testdata/clean", Options{Render: render(ctx, "testdata/clean")})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range got {
		t.Errorf("%+v", f)
	}
}

func TestCodeOwnersPatterns(t *testing.T) {
	for _, tc := range []struct {
		pattern, dir string
		want         bool
	}{
		{"*", "apps/web/prod", true},
		{"/apps/**/prod/", "apps/web/overlays/prod", true},
		{"/apps/", "apps/web/prod", true},
		{"apps/web/", "apps/web/prod", true},
		{"prod/", "clusters/eu/prod", true},
		{"/clusters/", "apps/web/prod", false},
		{"/apps/*/prod", "apps/web/overlays/prod", false},
		{"*.yaml", "apps/web/prod", true},
	} {
		if got := covered([]string{tc.pattern}, tc.dir); got != tc.want {
			t.Errorf("%q covers %q: %v, want %v", tc.pattern, tc.dir, got, tc.want)
		}
	}
}
