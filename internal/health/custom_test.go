package health

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"converge.dev/converge/internal/object"
)

func loadObjects(t *testing.T, path string) []*unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	docs, err := object.Decode(data, path)
	if err != nil {
		t.Fatal(err)
	}
	var out []*unstructured.Unstructured
	for _, d := range docs {
		out = append(out, d.Object)
	}
	return out
}

func testRules(t *testing.T) *Rules {
	t.Helper()
	data, err := os.ReadFile("testdata/custom/rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := ConfigFromFile("rules.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewRules(c)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestCustomRules runs CEL checks on six kinds whose status has different
// shapes (conditions, nested per-parent conditions, a free-text state, a
// phase, counters), and a Lua script, over testdata/custom/objects.yaml.
func TestCustomRules(t *testing.T) {
	r := testRules(t)
	for _, obj := range loadObjects(t, "testdata/custom/objects.yaml") {
		want := obj.GetAnnotations()["test.converge.dev/want"]
		status, fragment, _ := strings.Cut(want, ": ")
		got, ok := r.Assess(obj)
		if !ok || string(got.Status) != status || !strings.Contains(got.Message, fragment) {
			t.Errorf("%s/%s: got %s %q, want %s containing %q", obj.GetKind(), obj.GetName(), got.Status, got.Message, status, fragment)
		}
	}
	// Kinds without a custom rule keep the built-in ones.
	cm := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": map[string]any{"name": "d"}}}
	if got, _ := r.Assess(cm); got.Status == "" {
		t.Errorf("built-in Deployment rule lost: %+v", got)
	}
}

func TestCustomRulesErrorsNameTheKind(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{HealthCheckExprs: []CELCheck{{APIVersion: "cert-manager.io/v1", Kind: "Certificate", Current: "status.ready ==="}}}, "healthCheckExprs cert-manager.io/Certificate... "},
		{Config{HealthCheckExprs: []CELCheck{{APIVersion: "cert-manager.io/v1", Kind: "Certificate"}}}, "current is required"},
		{Config{HealthCheckExprs: []CELCheck{{APIVersion: "x/v1", Kind: "K", Current: "'not a bool'"}}}, "not a bool"},
		{Config{HealthCheckExprs: []CELCheck{{APIVersion: "x/v1", Kind: "K", Current: "undeclared.field"}}}, "undeclared reference"},
		{Config{Lua: map[string]string{"example.com_Widget": "return {"}}, "lua health script example.com_Widget"},
		{Config{Lua: map[string]string{"nokind": "return {}"}}, "must be <group>_<kind>"},
	} {
		_, err := NewRules(tc.cfg)
		want := strings.TrimSuffix(tc.want, "... ")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%+v: got %v, want an error containing %q", tc.cfg, err, want)
		}
	}
}

func widget() *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "example.com/v1", "kind": "Widget",
		"metadata": map[string]any{"name": "w", "labels": map[string]any{"tier": "gold"}},
		"spec":     map[string]any{"replicas": int64(3), "ports": []any{int64(80), int64(443)}},
		"status":   map[string]any{"conditions": []any{map[string]any{"type": "Ready", "status": "True", "lastTransitionTime": "2026-11-28T10:00:00Z"}}},
	}}
}

func runLua(t *testing.T, script string, limits LuaLimits) Result {
	t.Helper()
	r, err := NewRules(Config{Lua: map[string]string{"example.com_Widget": script}, LuaLimits: limits})
	if err != nil {
		t.Fatal(err)
	}
	got, ok := r.Assess(widget())
	if !ok {
		t.Fatal("no result")
	}
	return got
}

// TestLuaContract: the object is bound to obj, the script returns
// {status, message}, and the libraries Argo CD offers work.
func TestLuaContract(t *testing.T) {
	for _, tc := range []struct {
		name, script string
		want         Result
	}{
		{"fields and arrays", `return {status = "Healthy", message = obj.metadata.labels.tier .. " " .. obj.spec.ports[2] .. " " .. #obj.spec.ports}`,
			Result{Healthy, "gold 443 2"}},
		{"string", `local s = string.format("%s-%03d", string.upper(obj.kind), obj.spec.replicas)
			local i = string.find(s, "-", 1, true)
			return {status = "Healthy", message = s .. " " .. i .. " " .. string.sub(s, 1, 3) .. " " .. string.gsub("a.b", "%.", "/")}`,
			Result{Healthy, "WIDGET-003 7 WID a/b"}},
		{"table and math", `local t = {} for _, p in ipairs(obj.spec.ports) do table.insert(t, tostring(p)) end
			table.sort(t) return {status = "Progressing", message = table.concat(t, ",") .. " " .. math.floor(7.9) .. " " .. math.max(1, 5) .. " " .. tonumber("12")}`,
			Result{Progressing, "443,80 7 5 12"}},
		{"pairs and type", `local n = 0 for k, v in pairs(obj.metadata) do n = n + 1 end
			return {status = "Suspended", message = n .. " " .. type(obj.spec) .. " " .. type(obj.missing)}`,
			Result{Suspended, "2 table nil"}},
		{"os clock functions", `local t = os.time() if t > 0 and os.date("%Y", 0) == "1970" and os.clock() >= 0 then
			return {status = "Healthy", message = "clock"} end return {status = "Degraded"}`,
			Result{Healthy, "clock"}},
		{"pcall and error values", `local ok, err = pcall(function() error("inner") end)
			return {status = "Degraded", message = tostring(ok) .. " " .. string.match(err, "inner")}`,
			Result{Degraded, "false inner"}},
		{"script error is Unknown", `error("cannot read the widget")`, Result{Unknown, "cannot read the widget"}},
		{"nil field access is Unknown", `return {status = obj.status.nothing.deeper}`, Result{Unknown, "attempt to index"}},
		{"no table", `return "Healthy"`, Result{Unknown, "returned string, not a table"}},
		{"bad status", `return {status = "Fine"}`, Result{Unknown, `returned status "Fine"`}},
	} {
		got := runLua(t, tc.script, LuaLimits{})
		if got.Status != tc.want.Status || !strings.Contains(got.Message, tc.want.Message) {
			t.Errorf("%s: got %s %q, want %s containing %q", tc.name, got.Status, got.Message, tc.want.Status, tc.want.Message)
		}
	}
}

// TestLuaSandbox: loops, os.execute, io, loading code and memory bombs are
// stopped with a clear error, fast, and do nothing.
func TestLuaSandbox(t *testing.T) {
	marker := t.TempDir() + "/pwned"
	for _, tc := range []struct {
		name, script string
		limits       LuaLimits
		want         string
		err          error
	}{
		{"endless loop", `while true do end`, LuaLimits{}, "instruction budget exceeded", ErrLuaInstructions},
		{"endless recursion", `local function f() return 1 + f() end return f()`, LuaLimits{}, "stack overflow", nil},
		{"loop under the time limit", `while true do end`, LuaLimits{Instructions: 1 << 62, Time: 100 * time.Millisecond}, "time limit of 100ms exceeded", nil},
		{"os.execute", `os.execute("touch ` + marker + `") return {status = "Healthy"}`, LuaLimits{}, "attempt to call a non-function object", nil},
		{"io.open", `local f = io.open("` + marker + `", "w") return {status = "Healthy"}`, LuaLimits{}, "attempt to index a non-table object(nil)", nil},
		{"require", `local os2 = require("os") return {status = "Healthy"}`, LuaLimits{}, "attempt to call a non-function object", nil},
		{"loadstring", `local f = loadstring("return 1") return {status = "Healthy"}`, LuaLimits{}, "attempt to call a non-function object", nil},
		{"dofile", `dofile("/etc/passwd")`, LuaLimits{}, "attempt to call a non-function object", nil},
		{"string.rep bomb", `local s = string.rep("x", 1e10) return {status = "Healthy"}`, LuaLimits{}, "larger than 1 MiB", nil},
		{"memory bomb", `local t = {} local s = string.rep("x", 1000000) for i = 1, 1e9 do t[i] = s .. i end`,
			LuaLimits{Instructions: 1 << 62, Time: time.Minute, Memory: 32 << 20}, "memory limit exceeded", ErrLuaMemory},
	} {
		start := time.Now()
		got := runLua(t, tc.script, tc.limits)
		if got.Status != Unknown || !strings.Contains(got.Message, tc.want) {
			t.Errorf("%s: got %s %q, want Unknown containing %q", tc.name, got.Status, got.Message, tc.want)
		}
		if d := time.Since(start); d > 20*time.Second {
			t.Errorf("%s: took %s to stop", tc.name, d)
		}
		if tc.err != nil {
			r, _ := compileLua("x", tc.script, tc.limits)
			if _, err := r.run(widget()); !errors.Is(err, tc.err) {
				t.Errorf("%s: error %v, want %v", tc.name, err, tc.err)
			}
		}
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("a sandboxed script created a file")
	}
}
