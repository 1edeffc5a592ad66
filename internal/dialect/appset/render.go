package appset

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig/v3"
	"github.com/valyala/fasttemplate"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"converge.dev/converge/internal/api/argocd/v1alpha1"
)

// Render fills tmpl (the set's template with gen's override merged in)
// with p, into an Application in the set's namespace. Without goTemplate
// a {{param}} no set has is left as written, as Argo CD leaves it; with
// goTemplate the options (missingkey=error) decide.
func Render(set *v1alpha1.ApplicationSet, override *v1alpha1.ApplicationSetTemplate, p Params) (*unstructured.Unstructured, error) {
	tmpl, err := merged(set.Spec.Template, override)
	if err != nil {
		return nil, err
	}
	var doc any
	raw, err := json.Marshal(tmpl)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, err
	}
	fill, err := filler(set.Spec.GoTemplate, set.Spec.GoTemplateOptions, p)
	if err != nil {
		return nil, err
	}
	if doc, err = walk(doc, fill); err != nil {
		return nil, err
	}
	if raw, err = json.Marshal(doc); err != nil {
		return nil, err
	}
	var out struct {
		Metadata v1alpha1.ApplicationSetTemplateMeta `json:"metadata"`
		Spec     map[string]any                      `json:"spec"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, err
	}
	if sp := set.Spec.TemplatePatch; sp != nil {
		if err := patchTemplate(set, *sp, p, &out.Metadata, &out.Spec); err != nil {
			return nil, err
		}
	}
	if out.Metadata.Name == "" {
		return nil, fmt.Errorf("template.metadata.name is empty for parameters %v", p.Flat)
	}
	if RollingSync(set) {
		// The set syncs each Application when its step comes, as Argo CD
		// does: their own automated sync would bypass the steps.
		if sp, ok := out.Spec["syncPolicy"].(map[string]any); ok {
			delete(sp, "automated")
		}
	}
	// Unstructured, so that spec fields converge does not model (sources,
	// kustomize...) reach the Application as written.
	app := &unstructured.Unstructured{Object: map[string]any{"apiVersion": v1alpha1.GroupVersion.String(), "kind": "Application", "spec": out.Spec}}
	app.SetName(out.Metadata.Name)
	app.SetNamespace(set.Namespace)
	app.SetLabels(out.Metadata.Labels)
	app.SetAnnotations(out.Metadata.Annotations)
	app.SetFinalizers(out.Metadata.Finalizers)
	return app, nil
}

// filler fills one template string with p: with text/template when
// goTemplate is set, else with fasttemplate, leaving a {{param}} no set
// has as written (as Argo CD does).
func filler(goTemplate bool, options []string, p Params) (func(string) (string, error), error) {
	if goTemplate {
		return goFiller(options, p)
	}
	return func(s string) (string, error) {
		return fasttemplate.ExecuteFuncStringWithErr(s, "{{", "}}", func(w io.Writer, tag string) (int, error) {
			if v, ok := p.Flat[strings.TrimSpace(tag)]; ok {
				return w.Write([]byte(v))
			}
			return w.Write([]byte("{{" + tag + "}}"))
		})
	}, nil
}

// goFiller renders with text/template and Sprig, as Argo CD does, less
// the functions that read the controller's environment or network.
func goFiller(options []string, p Params) (func(string) (string, error), error) {
	for _, o := range options {
		switch o {
		case "missingkey=default", "missingkey=invalid", "missingkey=zero", "missingkey=error":
		default:
			// text/template panics on an option it does not know.
			return nil, fmt.Errorf("spec.goTemplateOptions: %q is not a text/template option (missingkey=...)", o)
		}
	}
	funcs := sprig.TxtFuncMap()
	for _, f := range []string{"env", "expandenv", "getHostByName"} {
		delete(funcs, f)
	}
	return func(s string) (string, error) {
		if !strings.Contains(s, "{{") {
			return s, nil
		}
		t, err := template.New("").Funcs(funcs).Option(options...).Parse(s)
		if err != nil {
			return "", fmt.Errorf("template %q: %w", s, err)
		}
		var b bytes.Buffer
		if err := t.Execute(&b, p.Go); err != nil {
			return "", fmt.Errorf("template %q: %w", s, err)
		}
		return b.String(), nil
	}, nil
}

// walk fills every string of doc, keys included.
func walk(doc any, fill func(string) (string, error)) (any, error) {
	switch t := doc.(type) {
	case string:
		return fill(t)
	case []any:
		for i := range t {
			v, err := walk(t[i], fill)
			if err != nil {
				return nil, err
			}
			t[i] = v
		}
		return t, nil
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, v := range t {
			nk, err := fill(k)
			if err != nil {
				return nil, err
			}
			if out[nk], err = walk(v, fill); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	return doc, nil
}

// merged is the set's template with a generator's override laid over it:
// the override's fields win, maps merged key by key, as Argo CD merges.
func merged(base v1alpha1.ApplicationSetTemplate, over *v1alpha1.ApplicationSetTemplate) (v1alpha1.ApplicationSetTemplate, error) {
	if over == nil {
		return base, nil
	}
	var a, b map[string]any
	for _, x := range []struct {
		t   v1alpha1.ApplicationSetTemplate
		out *map[string]any
	}{{base, &a}, {*over, &b}} {
		raw, err := json.Marshal(x.t)
		if err != nil {
			return base, err
		}
		if err := json.Unmarshal(raw, x.out); err != nil {
			return base, err
		}
	}
	raw, err := json.Marshal(overlay(a, b, true))
	if err != nil {
		return base, err
	}
	var out v1alpha1.ApplicationSetTemplate
	err = json.Unmarshal(raw, &out)
	return out, err
}

// RollingSync reports whether the set rolls its Applications out step by
// step.
func RollingSync(set *v1alpha1.ApplicationSet) bool {
	return set.Spec.Strategy != nil && set.Spec.Strategy.Type == "RollingSync"
}

// patchTemplate renders templatePatch (goTemplate only, as in Argo CD)
// and lays the YAML it yields over the rendered Application: maps merged
// key by key, anything else replaced.
func patchTemplate(set *v1alpha1.ApplicationSet, patch string, p Params, meta *v1alpha1.ApplicationSetTemplateMeta, spec *map[string]any) error {
	if !set.Spec.GoTemplate {
		return fmt.Errorf("spec.templatePatch needs spec.goTemplate: true, as in Argo CD")
	}
	fill, err := goFiller(set.Spec.GoTemplateOptions, p)
	if err != nil {
		return err
	}
	text, err := fill(patch)
	if err != nil {
		return fmt.Errorf("spec.templatePatch: %w", err)
	}
	var over map[string]any
	if err := yaml.Unmarshal([]byte(text), &over); err != nil {
		return fmt.Errorf("spec.templatePatch: the rendered patch is not a YAML object: %w", err)
	}
	raw, err := json.Marshal(meta)
	if err != nil {
		return err
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return err
	}
	merged := overlay(map[string]any{"metadata": m, "spec": *spec}, over, false)
	raw, err = json.Marshal(merged["metadata"])
	if err != nil {
		return err
	}
	var nm v1alpha1.ApplicationSetTemplateMeta
	if err := json.Unmarshal(raw, &nm); err != nil {
		return fmt.Errorf("spec.templatePatch: metadata: %w", err)
	}
	*meta = nm
	if s, ok := merged["spec"].(map[string]any); ok {
		*spec = s
	}
	return nil
}

// overlay lays b over a: maps merged key by key, anything else
// replaced; with skipEmpty an empty or null value of b keeps a's (a
// generator's template override leaves the set's fields it does not set).
func overlay(a, b map[string]any, skipEmpty bool) map[string]any {
	out := map[string]any{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		if skipEmpty && (v == nil || v == "") {
			continue
		}
		am, aok := out[k].(map[string]any)
		bm, bok := v.(map[string]any)
		if aok && bok {
			out[k] = overlay(am, bm, skipEmpty)
			continue
		}
		out[k] = v
	}
	return out
}
