package validate

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"converge.dev/converge/internal/engine"
	"converge.dev/converge/internal/object"
)

func run(t *testing.T, root string) Report {
	t.Helper()
	s, err := Builtin("")
	if err != nil {
		t.Fatal(err)
	}
	eng := engine.New(engine.Options{})
	rep, err := Run(context.Background(), root, Options{Schemas: s,
		Render: func(ctx context.Context, u engine.Unit) ([]object.Decoded, error) {
			return eng.RenderLocal(ctx, u, root)
		}})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// TestCatches: a schema error, a CRD-schema error, a policy violation and
// a render error, each with its file, document and field; a kind with no
// schema is a warning; a policy no binding enforces checks nothing.
func TestCatches(t *testing.T) {
	rep := run(t, "testdata/repo")
	var got []string
	for _, p := range rep.Problems {
		got = append(got, p.Severity+" "+p.Kind+" "+p.String())
	}
	all := strings.Join(got, "\n")
	for _, want := range []string{
		"error schema apps/web/deployment.yaml: document 1: Deployment web: spec.template.spec.containers[0].imagePullPolice: unknown field",
		"error schema apps/web/deployment.yaml: document 1: Deployment web: spec.template.spec.containers[0].ports[0].containerPort: want an integer, got string \"http\"",
		"error schema widgets/widget.yaml: document 2: Widget shop/odd: spec.size: want an integer, got string \"big\"",
		"error schema widgets/widget.yaml: document 2: Widget shop/odd: spec.color: \"green\" is not one of red, blue",
		"error policy apps/web/deployment.yaml: document 1: Deployment web: ValidatingAdmissionPolicy max-replicas validations[0] (binding max-replicas): replicas must be at most 5, not 10",
		"warning unknown-kind gadgets/gadget.yaml: document 1: Gadget shop/g: no schema for example.com/v1, Kind=Gadget",
		"error render apps/broken: render apps/broken: ",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("no problem %q in:\n%s", want, all)
		}
	}
	for _, p := range rep.Problems {
		if strings.Contains(p.String(), "Widget shop/small") || strings.Contains(p.Message, "unbound") || strings.Contains(p.String(), "cpu") {
			t.Errorf("a valid object, a number quantity or an unbound policy made a problem: %s", p)
		}
	}
	if rep.Errors() != 6 || rep.Policies != 1 || rep.Units != 2 {
		t.Errorf("%d errors, %d policies, %d units; want 6, 1, 2:\n%s", rep.Errors(), rep.Policies, rep.Units, all)
	}
}

// TestDemoRepositoryIsValid: converge up's demo repository validates with
// no error against the shipped schemas.
func TestDemoRepositoryIsValid(t *testing.T) {
	rep := run(t, "../demo/repo")
	for _, p := range rep.Problems {
		t.Errorf("%s %s", p.Severity, p)
	}
	if rep.Units != 3 || rep.Objects < 10 {
		t.Errorf("%d units, %d objects", rep.Units, rep.Objects)
	}
}

func TestPlural(t *testing.T) {
	for kind, want := range map[string]string{"Deployment": "deployments", "Ingress": "ingresses", "NetworkPolicy": "networkpolicies",
		"Endpoints": "endpoints", "Gateway": "gateways"} {
		if got := pluralOf(kind); got != want {
			t.Errorf("%s: %s, want %s", kind, got, want)
		}
	}
}

// BenchmarkValidate500Units prints the time to validate a repository of
// 500 kustomize units (a Deployment, a Service and a ConfigMap each):
//
//	go test ./internal/validate -run '^$' -bench Validate500Units -benchtime 3x
func BenchmarkValidate500Units(b *testing.B) {
	root := b.TempDir()
	for i := range 500 {
		dir := filepath.Join(root, "apps", fmt.Sprintf("svc-%03d", i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		name := fmt.Sprintf("svc-%03d", i)
		files := map[string]string{
			"kustomization.yaml": "resources: [deploy.yaml, service.yaml, config.yaml]\n",
			"deploy.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: " + name + "}\nspec:\n  replicas: 2\n  selector: {matchLabels: {app: " + name +
				"}}\n  template:\n    metadata: {labels: {app: " + name + "}}\n    spec:\n      containers:\n      - name: app\n        image: registry.example.com/" + name +
				":1.0.0\n        ports: [{containerPort: 8080}]\n        resources: {requests: {cpu: 100m, memory: 128Mi}}\n",
			"service.yaml": "apiVersion: v1\nkind: Service\nmetadata: {name: " + name + "}\nspec:\n  selector: {app: " + name + "}\n  ports: [{port: 80, targetPort: 8080}]\n",
			"config.yaml":  "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: " + name + "}\ndata: {LOG_LEVEL: info}\n",
		}
		for f, body := range files {
			if err := os.WriteFile(filepath.Join(dir, f), []byte(body), 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	s, err := Builtin("")
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		eng := engine.New(engine.Options{})
		rep, err := Run(context.Background(), root, Options{Schemas: s,
			Render: func(ctx context.Context, u engine.Unit) ([]object.Decoded, error) {
				return eng.RenderLocal(ctx, u, root)
			}})
		if err != nil || rep.Units != 500 || rep.Objects != 1500 || len(rep.Problems) != 0 {
			b.Fatalf("%d units, %d objects, problems %v, %v", rep.Units, rep.Objects, rep.Problems, err)
		}
	}
}
