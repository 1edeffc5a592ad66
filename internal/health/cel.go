package health

import (
	"fmt"
	"strings"

	"github.com/google/cel-go/cel"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// CELCheck is a custom health check in Flux's healthCheckExprs form: CEL
// expressions over the object, whose top-level fields (apiVersion, kind,
// metadata, spec, status, data) are variables.
type CELCheck struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	// Current is true when the object reached its desired state
	// (Healthy). Required.
	Current string `json:"current"`
	// InProgress is true while it has not yet (Progressing). Optional.
	InProgress string `json:"inProgress,omitempty"`
	// Failed is true when it failed to (Degraded). Optional.
	Failed string `json:"failed,omitempty"`
}

// celVariables are the object fields expressions may name.
var celVariables = []string{"apiVersion", "kind", "metadata", "spec", "status", "data"}

type celRule struct {
	check CELCheck
	progs []celProgram // inProgress, failed, current, in that order
}

type celProgram struct {
	name   string
	status Status
	prg    cel.Program
}

// compileCEL checks and compiles one check; errors name the kind and the
// expression.
func compileCEL(c CELCheck) (schema.GroupKind, *celRule, error) {
	gv, err := schema.ParseGroupVersion(c.APIVersion)
	if err != nil || c.Kind == "" {
		return schema.GroupKind{}, nil, fmt.Errorf("healthCheckExprs: apiVersion %q and kind %q must name a kind", c.APIVersion, c.Kind)
	}
	gk := schema.GroupKind{Group: gv.Group, Kind: c.Kind}
	name := gv.Group + "/" + c.Kind
	if strings.TrimSpace(c.Current) == "" {
		return gk, nil, fmt.Errorf("healthCheckExprs %s: current is required", name)
	}
	opts := []cel.EnvOption{cel.OptionalTypes()}
	for _, v := range celVariables {
		opts = append(opts, cel.Variable(v, cel.DynType))
	}
	env, err := cel.NewEnv(opts...)
	if err != nil {
		return gk, nil, err
	}
	r := &celRule{check: c}
	for _, e := range []struct {
		name, expr string
		status     Status
	}{{"inProgress", c.InProgress, Progressing}, {"failed", c.Failed, Degraded}, {"current", c.Current, Healthy}} {
		if strings.TrimSpace(e.expr) == "" {
			continue
		}
		ast, iss := env.Compile(e.expr)
		if iss.Err() != nil {
			return gk, nil, fmt.Errorf("healthCheckExprs %s: %s: %w", name, e.name, iss.Err())
		}
		if t := ast.OutputType(); t != cel.BoolType && t != cel.DynType {
			return gk, nil, fmt.Errorf("healthCheckExprs %s: %s: the expression gives %s, not a bool", name, e.name, t)
		}
		// A cost limit keeps a runaway comprehension from stalling a
		// reconcile.
		prg, err := env.Program(ast, cel.CostLimit(1_000_000))
		if err != nil {
			return gk, nil, fmt.Errorf("healthCheckExprs %s: %s: %w", name, e.name, err)
		}
		r.progs = append(r.progs, celProgram{e.name, e.status, prg})
	}
	return gk, r, nil
}

// assess follows Flux: an observedGeneration behind the generation is
// in progress; else the first of inProgress, failed and current that is
// true decides; none true is in progress. An expression that cannot be
// evaluated (a field not there yet) is in progress too, as Flux keeps
// waiting on it, and says why.
func (r *celRule) assess(obj *unstructured.Unstructured) Result {
	if og, ok, _ := unstructured.NestedInt64(obj.Object, "status", "observedGeneration"); ok && og != obj.GetGeneration() {
		return Result{Progressing, fmt.Sprintf("Waiting for the controller to observe generation %d (observed %d)", obj.GetGeneration(), og)}
	}
	vars := map[string]any{}
	for _, v := range celVariables {
		if val, ok := obj.Object[v]; ok {
			vars[v] = val
		}
	}
	for _, p := range r.progs {
		out, _, err := p.prg.Eval(vars)
		if err != nil {
			return Result{Progressing, fmt.Sprintf("healthCheckExprs %s: %s: %v", r.check.Kind, p.name, err)}
		}
		if b, ok := out.Value().(bool); ok && b {
			return Result{p.status, fmt.Sprintf("%s is true", p.name)}
		}
	}
	return Result{Progressing, "no expression is true yet"}
}
