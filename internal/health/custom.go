package health

import (
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"
)

// Config is users' custom health, per group and kind. It is read from a
// file (the CLI) or a ConfigMap (the controller).
type Config struct {
	// HealthCheckExprs are CEL checks in Flux's form.
	HealthCheckExprs []CELCheck `json:"healthCheckExprs,omitempty"`
	// Lua maps "<group>_<kind>" (Argo CD's resource.customizations.health
	// key, "_<kind>" for the core group) to a Lua script.
	Lua map[string]string `json:"lua,omitempty"`
	// LuaLimits bound each script run.
	LuaLimits LuaLimits `json:"-"`
}

// LuaConfigMapPrefix is the ConfigMap key prefix of Lua health scripts,
// Argo CD's.
const LuaConfigMapPrefix = "resource.customizations.health."

// ConfigFromFile reads health rules from a YAML file in any of three
// forms: converge's own (healthCheckExprs and lua), an argocd-cm
// ConfigMap as a user already has it, or Argo CD's resource.customizations
// block (keys "<group>/<kind>", each with a health.lua script).
func ConfigFromFile(name string, data []byte) (Config, error) {
	var probe map[string]any
	if err := yaml.Unmarshal(data, &probe); err != nil {
		return Config{}, fmt.Errorf("health rules %s: %w", name, err)
	}
	if probe["kind"] == "ConfigMap" {
		var cm struct {
			Data map[string]string `json:"data"`
		}
		if err := yaml.Unmarshal(data, &cm); err != nil {
			return Config{}, fmt.Errorf("health rules %s: %w", name, err)
		}
		return ConfigFromConfigMap(name, cm.Data)
	}
	if _, ok := probe["healthCheckExprs"]; !ok {
		if _, ok := probe["lua"]; !ok && len(probe) > 0 {
			lua, err := customizations(name, probe)
			if err != nil {
				return Config{}, err
			}
			return Config{Lua: lua}, nil
		}
	}
	var c Config
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		return Config{}, fmt.Errorf("health rules %s: %w", name, err)
	}
	return c, nil
}

// customizations reads Argo CD's resource.customizations block: keys
// "<group>/<kind>" ("<kind>" alone for the core group; globs allowed),
// each a map whose health.lua is a script. Other entries (actions,
// ignoreDifferences) are not health and are left to their readers.
func customizations(name string, block map[string]any) (map[string]string, error) {
	out := map[string]string{}
	for key, v := range block {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("health rules %s: %q: want a map with health.lua (a resource.customizations entry)", name, key)
		}
		script, ok := m["health.lua"].(string)
		if !ok {
			continue
		}
		group, kind := "", key
		if i := strings.LastIndex(key, "/"); i >= 0 {
			group, kind = key[:i], key[i+1:]
		}
		out[group+"_"+kind] = script
	}
	return out, nil
}

// ConfigFromConfigMap reads a ConfigMap's data: keys
// resource.customizations.health.<group>_<kind> hold Lua scripts, as in
// argocd-cm, and the key healthCheckExprs a YAML list of CEL checks.
func ConfigFromConfigMap(name string, data map[string]string) (Config, error) {
	c := Config{Lua: map[string]string{}}
	for k, v := range data {
		switch {
		case strings.HasPrefix(k, LuaConfigMapPrefix):
			c.Lua[strings.TrimPrefix(k, LuaConfigMapPrefix)] = v
		case k == "resource.customizations":
			var block map[string]any
			if err := yaml.Unmarshal([]byte(v), &block); err != nil {
				return Config{}, fmt.Errorf("ConfigMap %s: key resource.customizations: %w", name, err)
			}
			lua, err := customizations("ConfigMap "+name+" key resource.customizations", block)
			if err != nil {
				return Config{}, err
			}
			for gk, script := range lua {
				if _, set := c.Lua[gk]; !set { // the per-kind keys win, as in Argo CD
					c.Lua[gk] = script
				}
			}
		case k == "healthCheckExprs":
			if err := yaml.UnmarshalStrict([]byte(v), &c.HealthCheckExprs); err != nil {
				return Config{}, fmt.Errorf("ConfigMap %s: key healthCheckExprs: %w", name, err)
			}
		}
	}
	return c, nil
}

// Rules assess objects with users' custom rules first, then the built-in
// ones. The zero value and nil have no custom rules.
type Rules struct {
	cel map[schema.GroupKind]*celRule
	lua map[schema.GroupKind]*luaRule
	// luaGlobs are scripts whose key has a wildcard ("*.crossplane.io_*"),
	// tried in key order after an exact key.
	luaGlobs []luaGlob
}

type luaGlob struct {
	group, kind string
	rule        *luaRule
}

// NewRules compiles a Config. Every bad expression or script is reported,
// by kind.
func NewRules(c Config) (*Rules, error) {
	r := &Rules{cel: map[schema.GroupKind]*celRule{}, lua: map[schema.GroupKind]*luaRule{}}
	var errs []error
	for _, check := range c.HealthCheckExprs {
		gk, rule, err := compileCEL(check)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		r.cel[gk] = rule
	}
	keys := make([]string, 0, len(c.Lua))
	for k := range c.Lua {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		i := strings.LastIndex(key, "_")
		if i < 0 || i == len(key)-1 {
			errs = append(errs, fmt.Errorf("lua health script %q: the key must be <group>_<kind>", key))
			continue
		}
		rule, err := compileLua(key, c.Lua[key], c.LuaLimits)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		group, kind := key[:i], key[i+1:]
		if strings.ContainsAny(key, "*?[") {
			if _, err := path.Match(group, ""); err != nil {
				errs = append(errs, fmt.Errorf("lua health script %q: group pattern: %w", key, err))
				continue
			}
			if _, err := path.Match(kind, ""); err != nil {
				errs = append(errs, fmt.Errorf("lua health script %q: kind pattern: %w", key, err))
				continue
			}
			r.luaGlobs = append(r.luaGlobs, luaGlob{group, kind, rule})
			continue
		}
		r.lua[schema.GroupKind{Group: group, Kind: kind}] = rule
	}
	return r, errors.Join(errs...)
}

// Assess is Assess with the custom rules in front: a Lua script, then a
// CEL check for the object's kind, then the built-in rules.
func (r *Rules) Assess(obj *unstructured.Unstructured) (Result, bool) {
	if r != nil {
		gk := obj.GroupVersionKind().GroupKind()
		if l, ok := r.lua[gk]; ok {
			return l.assess(obj), true
		}
		for _, g := range r.luaGlobs {
			if ok, _ := path.Match(g.group, gk.Group); ok {
				if ok, _ := path.Match(g.kind, gk.Kind); ok {
					return g.rule.assess(obj), true
				}
			}
		}
		if c, ok := r.cel[gk]; ok {
			return c.assess(obj), true
		}
	}
	return Assess(obj)
}
