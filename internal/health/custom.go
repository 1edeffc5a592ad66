package health

import (
	"errors"
	"fmt"
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

// ConfigFromFile reads a YAML file with healthCheckExprs and lua.
func ConfigFromFile(name string, data []byte) (Config, error) {
	var c Config
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		return Config{}, fmt.Errorf("health rules %s: %w", name, err)
	}
	return c, nil
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
		r.lua[schema.GroupKind{Group: key[:i], Kind: key[i+1:]}] = rule
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
		if c, ok := r.cel[gk]; ok {
			return c.assess(obj), true
		}
	}
	return Assess(obj)
}
