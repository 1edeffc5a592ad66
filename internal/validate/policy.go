package validate

import (
	"fmt"
	"slices"
	"strings"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/ext"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/cel/library"
)

// policy is a ValidatingAdmissionPolicy with the bindings that enforce
// it, compiled. Offline, every object is being created: operations must
// include CREATE. A binding's namespaceSelector cannot be read offline
// and is not applied; its objectSelector is.
type policy struct {
	name        string
	rules       []rule
	conditions  []program
	variables   []program
	validations []validation
	// bindings are the enforcing bindings: their actions and selectors.
	bindings []binding
}

type rule struct{ groups, versions, resources, operations []string }

type program struct {
	name string
	prg  cel.Program
}

type validation struct {
	expr    string
	message string
	msgPrg  cel.Program
	prg     cel.Program
}

type binding struct {
	name    string
	deny    bool
	objects labels.Selector
}

var celEnv = func() *cel.Env {
	opts := []cel.EnvOption{cel.OptionalTypes(), ext.Strings(ext.StringsVersion(2)), library.Lists(), library.Regex(), library.URLs(),
		library.Quantity(), library.IP(), library.CIDR(), library.Format(), library.SemverLib()}
	for _, v := range []string{"object", "oldObject", "request", "params", "namespaceObject", "variables"} {
		opts = append(opts, cel.Variable(v, cel.DynType))
	}
	env, err := cel.NewEnv(opts...)
	if err != nil {
		panic(err)
	}
	return env
}()

func compile(expr string) (cel.Program, error) {
	ast, iss := celEnv.Compile(expr)
	if iss.Err() != nil {
		return nil, iss.Err()
	}
	return celEnv.Program(ast, cel.CostLimit(10_000_000))
}

// loadPolicies compiles the policies that some binding enforces. A
// policy that does not compile, or takes params (which offline has
// none of), is a problem named at its file.
func loadPolicies(items []located) ([]*policy, []Problem) {
	var problems []Problem
	bindings := map[string][]binding{}
	for _, it := range items {
		if it.obj.GetKind() != "ValidatingAdmissionPolicyBinding" || it.obj.GroupVersionKind().Group != "admissionregistration.k8s.io" {
			continue
		}
		name, _, _ := unstructured.NestedString(it.obj.Object, "spec", "policyName")
		actions, _, _ := unstructured.NestedStringSlice(it.obj.Object, "spec", "validationActions")
		b := binding{name: it.obj.GetName(), deny: slices.Contains(actions, "Deny"), objects: labels.Everything()}
		if sel, ok, _ := unstructured.NestedMap(it.obj.Object, "spec", "matchResources", "objectSelector"); ok {
			var ls metav1.LabelSelector
			if err := fromMap(sel, &ls); err == nil {
				if s, err := metav1.LabelSelectorAsSelector(&ls); err == nil {
					b.objects = s
				}
			}
		}
		bindings[name] = append(bindings[name], b)
	}
	var out []*policy
	for _, it := range items {
		if it.obj.GetKind() != "ValidatingAdmissionPolicy" || it.obj.GroupVersionKind().Group != "admissionregistration.k8s.io" {
			continue
		}
		bs := bindings[it.obj.GetName()]
		if len(bs) == 0 {
			continue // not enforced anywhere
		}
		fail := func(field string, err error) {
			problems = append(problems, Problem{Kind: ProblemPolicy, Severity: "error", File: it.file, Document: it.document,
				Object: "ValidatingAdmissionPolicy " + it.obj.GetName(), Field: field, Message: err.Error()})
		}
		spec, _, _ := unstructured.NestedMap(it.obj.Object, "spec")
		if _, ok := spec["paramKind"]; ok {
			problems = append(problems, Problem{Kind: ProblemPolicy, Severity: "warning", File: it.file, Document: it.document,
				Object: "ValidatingAdmissionPolicy " + it.obj.GetName(), Field: "spec.paramKind", Message: "a policy with params is not evaluated offline"})
			continue
		}
		p := &policy{name: it.obj.GetName(), bindings: bs}
		ok := true
		rules, _, _ := unstructured.NestedSlice(spec, "matchConstraints", "resourceRules")
		for _, r := range rules {
			rm, _ := r.(map[string]any)
			p.rules = append(p.rules, rule{groups: strs(rm["apiGroups"]), versions: strs(rm["apiVersions"]), resources: strs(rm["resources"]),
				operations: strs(rm["operations"])})
		}
		for key, dst := range map[string]*[]program{"matchConditions": &p.conditions, "variables": &p.variables} {
			list, _ := spec[key].([]any)
			for i, c := range list {
				cm, _ := c.(map[string]any)
				expr, _ := cm["expression"].(string)
				prg, err := compile(expr)
				if err != nil {
					fail(fmt.Sprintf("spec.%s[%d].expression", key, i), err)
					ok = false
					continue
				}
				name, _ := cm["name"].(string)
				*dst = append(*dst, program{name: name, prg: prg})
			}
		}
		vals, _ := spec["validations"].([]any)
		for i, v := range vals {
			vm, _ := v.(map[string]any)
			expr, _ := vm["expression"].(string)
			prg, err := compile(expr)
			if err != nil {
				fail(fmt.Sprintf("spec.validations[%d].expression", i), err)
				ok = false
				continue
			}
			val := validation{expr: expr, prg: prg}
			val.message, _ = vm["message"].(string)
			if me, _ := vm["messageExpression"].(string); me != "" {
				if val.msgPrg, err = compile(me); err != nil {
					fail(fmt.Sprintf("spec.validations[%d].messageExpression", i), err)
					ok = false
				}
			}
			p.validations = append(p.validations, val)
		}
		if ok {
			out = append(out, p)
		}
	}
	return out, problems
}

// matches says whether the policy's rules select obj being created.
func (p *policy) matches(obj *unstructured.Unstructured) bool {
	gvk := obj.GroupVersionKind()
	plural := pluralOf(gvk.Kind)
	for _, r := range p.rules {
		if matchesAny(r.groups, gvk.Group) && matchesAny(r.versions, gvk.Version) && matchesAny(r.resources, plural) && matchesAny(r.operations, "CREATE") {
			return true
		}
	}
	return false
}

// evaluate runs the policy on obj: one problem per failed validation
// per enforcing binding's action (Deny an error, Warn or Audit a warning).
func (p *policy) evaluate(obj *unstructured.Unstructured) []Problem {
	if !p.matches(obj) {
		return nil
	}
	var applies []binding
	for _, b := range p.bindings {
		if b.objects.Matches(labels.Set(obj.GetLabels())) {
			applies = append(applies, b)
		}
	}
	if len(applies) == 0 {
		return nil
	}
	gvk := obj.GroupVersionKind()
	vars := map[string]any{}
	in := map[string]any{"object": obj.Object, "oldObject": nil, "params": nil, "namespaceObject": nil, "variables": vars,
		"request": map[string]any{"operation": "CREATE", "name": obj.GetName(), "namespace": obj.GetNamespace(),
			"kind": map[string]any{"group": gvk.Group, "version": gvk.Version, "kind": gvk.Kind}}}
	for _, c := range p.conditions {
		out, _, err := c.prg.Eval(in)
		if err != nil || out.Value() != true {
			return nil
		}
	}
	for _, v := range p.variables {
		if out, _, err := v.prg.Eval(in); err == nil {
			vars[v.name] = out.Value()
		}
	}
	var problems []Problem
	for i, v := range p.validations {
		out, _, err := v.prg.Eval(in)
		msg := ""
		switch {
		case err != nil:
			msg = fmt.Sprintf("expression %q: %v", v.expr, err)
		case out.Value() != true:
			msg = v.message
			if v.msgPrg != nil {
				if m, _, err := v.msgPrg.Eval(in); err == nil {
					if s, ok := m.Value().(string); ok && s != "" {
						msg = s
					}
				}
			}
			if msg == "" {
				msg = fmt.Sprintf("failed expression: %s", v.expr)
			}
		default:
			continue
		}
		for _, b := range applies {
			sev := "warning"
			if b.deny {
				sev = "error"
			}
			problems = append(problems, Problem{Kind: ProblemPolicy, Severity: sev,
				Field: fmt.Sprintf("ValidatingAdmissionPolicy %s validations[%d] (binding %s)", p.name, i, b.name), Message: msg})
		}
	}
	return problems
}

func matchesAny(list []string, v string) bool {
	return slices.Contains(list, "*") || slices.Contains(list, v)
}

func fromMap(m map[string]any, into any) error {
	return runtime.DefaultUnstructuredConverter.FromUnstructured(m, into)
}

func strs(v any) []string {
	list, _ := v.([]any)
	var out []string
	for _, s := range list {
		if str, ok := s.(string); ok {
			out = append(out, str)
		}
	}
	return out
}

// pluralOf is a kind's resource name, as the API server names built-in
// kinds' (Deployment deployments, Ingress ingresses, NetworkPolicy
// networkpolicies).
func pluralOf(kind string) string {
	k := strings.ToLower(kind)
	switch {
	case k == "endpoints":
		return k
	case strings.HasSuffix(k, "s"), strings.HasSuffix(k, "x"), strings.HasSuffix(k, "ch"), strings.HasSuffix(k, "sh"):
		return k + "es"
	case strings.HasSuffix(k, "y") && !strings.ContainsAny(k[len(k)-2:len(k)-1], "aeiou"):
		return k[:len(k)-1] + "ies"
	}
	return k + "s"
}
