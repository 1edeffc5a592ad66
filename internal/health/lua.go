package health

import (
	"context"
	"errors"
	"fmt"
	"runtime/metrics"
	"strings"
	"sync/atomic"
	"time"

	lua "github.com/yuin/gopher-lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// LuaLimits bound one Lua health script run. Zero values take defaults.
type LuaLimits struct {
	// Instructions is the VM instruction budget. If zero, 10 million.
	Instructions int64
	// Time bounds the run. If zero, one second.
	Time time.Duration
	// Memory bounds how much the process heap may grow during the run.
	// If zero, 64 MiB.
	Memory uint64
}

func (l LuaLimits) withDefaults() LuaLimits {
	if l.Instructions == 0 {
		l.Instructions = 10_000_000
	}
	if l.Time == 0 {
		l.Time = time.Second
	}
	if l.Memory == 0 {
		l.Memory = 64 << 20
	}
	return l
}

// Errors a Lua run ends with when it exceeds a limit.
var (
	ErrLuaInstructions = errors.New("lua: instruction budget exceeded")
	ErrLuaMemory       = errors.New("lua: memory limit exceeded")
)

type luaRule struct {
	source string
	proto  *lua.FunctionProto
	limits LuaLimits
}

// compileLua parses a script once; it runs many times.
func compileLua(name, script string, limits LuaLimits) (*luaRule, error) {
	L := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer L.Close()
	fn, err := L.LoadString(script)
	if err != nil {
		return nil, fmt.Errorf("lua health script %s: %w", name, err)
	}
	return &luaRule{source: name, proto: fn.Proto, limits: limits.withDefaults()}, nil
}

// assess runs the script under Argo CD's contract: the global obj is the
// object, and the script returns a table {status = ..., message = ...}.
// Anything that goes wrong, a limit included, is Unknown with the reason.
func (r *luaRule) assess(obj *unstructured.Unstructured) Result {
	res, err := r.run(obj)
	if err != nil {
		return Result{Unknown, err.Error()}
	}
	return res
}

func (r *luaRule) run(obj *unstructured.Unstructured) (Result, error) {
	L := newSandbox()
	defer L.Close()
	ctx, cancel := context.WithTimeout(context.Background(), r.limits.Time)
	defer cancel()
	bctx := &budgetContext{Context: ctx, left: r.limits.Instructions}
	bctx.done = make(chan struct{})
	stopWatch := watchHeap(cancel, r.limits.Memory, &bctx.overMemory)
	defer stopWatch()
	L.SetContext(bctx)
	L.SetGlobal("obj", toLua(L, obj.Object))
	L.Push(L.NewFunctionFromProto(r.proto))
	err := L.PCall(0, 1, nil)
	switch {
	case bctx.exhausted.Load():
		return Result{}, fmt.Errorf("%s: %w (%d)", r.source, ErrLuaInstructions, r.limits.Instructions)
	case bctx.overMemory.Load():
		return Result{}, fmt.Errorf("%s: %w (%d MiB)", r.source, ErrLuaMemory, r.limits.Memory>>20)
	case ctx.Err() != nil:
		return Result{}, fmt.Errorf("%s: lua: time limit of %s exceeded", r.source, r.limits.Time)
	case err != nil:
		return Result{}, fmt.Errorf("%s: %v", r.source, err)
	}
	ret := L.Get(-1)
	t, ok := ret.(*lua.LTable)
	if !ok {
		return Result{}, fmt.Errorf("%s: the script returned %s, not a table {status, message}", r.source, ret.Type())
	}
	st := Status(lua.LVAsString(t.RawGetString("status")))
	switch st {
	case Healthy, Progressing, Degraded, Suspended, Missing, Unknown:
	default:
		return Result{}, fmt.Errorf("%s: the script returned status %q (want Healthy, Progressing, Degraded, Suspended, Missing or Unknown)", r.source, st)
	}
	return Result{st, lua.LVAsString(t.RawGetString("message"))}, nil
}

// budgetContext ends the run after a number of VM instructions: the
// gopher-lua VM asks Done() once per instruction, so counting those calls
// counts instructions.
type budgetContext struct {
	context.Context
	left       int64
	done       chan struct{}
	closed     bool
	exhausted  atomic.Bool
	overMemory atomic.Bool
}

func (c *budgetContext) Done() <-chan struct{} {
	c.left--
	if c.left < 0 {
		if !c.closed {
			c.closed = true
			c.exhausted.Store(true)
			close(c.done)
		}
		return c.done
	}
	return c.Context.Done()
}

func (c *budgetContext) Err() error {
	if c.exhausted.Load() {
		return ErrLuaInstructions
	}
	return c.Context.Err()
}

// watchHeap cancels the run when the heap grows by more than limit while
// it runs. It samples; a script can overshoot by what it allocates within
// one interval.
func watchHeap(cancel context.CancelFunc, limit uint64, over *atomic.Bool) func() {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(sample)
	start := sample[0].Value.Uint64()
	stop := make(chan struct{})
	go func() {
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				metrics.Read(sample)
				if now := sample[0].Value.Uint64(); now > start && now-start > limit {
					over.Store(true)
					cancel()
					return
				}
			}
		}
	}()
	return func() { close(stop) }
}

// newSandbox opens the libraries Argo CD offers health scripts: base,
// table, string and math, and of os only the clock functions. There is no
// io, no package/require, no loading of code, no os.execute.
func newSandbox() *lua.LState {
	L := lua.NewState(lua.Options{SkipOpenLibs: true, CallStackSize: 200, RegistrySize: 1024 * 20, RegistryMaxSize: 1024 * 80})
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{{lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}, {lua.StringLibName, lua.OpenString}, {lua.MathLibName, lua.OpenMath}} {
		L.Push(L.NewFunction(lib.open))
		L.Push(lua.LString(lib.name))
		L.Call(1, 0)
	}
	for _, name := range []string{"dofile", "loadfile", "load", "loadstring", "require", "module", "collectgarbage", "print", "getfenv", "setfenv", "newproxy"} {
		L.SetGlobal(name, lua.LNil)
	}
	// string.rep can allocate gigabytes in one call.
	str := L.GetGlobal("string").(*lua.LTable)
	rep := str.RawGetString("rep").(*lua.LFunction)
	str.RawSetString("rep", L.NewFunction(func(L *lua.LState) int {
		if n := L.CheckInt(2); n*len(L.CheckString(1)) > 1<<20 {
			L.RaiseError("string.rep: result larger than 1 MiB")
		}
		L.Push(rep)
		L.Push(L.Get(1))
		L.Push(L.Get(2))
		L.Call(2, 1)
		return 1
	}))
	// Capture the real os functions, then offer only the clock ones.
	L.Push(L.NewFunction(lua.OpenOs))
	L.Push(lua.LString(lua.OsLibName))
	L.Call(1, 0)
	full := L.GetGlobal("os").(*lua.LTable)
	safe := L.NewTable()
	for _, name := range []string{"time", "date", "clock", "difftime"} {
		safe.RawSetString(name, full.RawGetString(name))
	}
	L.SetGlobal("os", safe)
	return L
}

// toLua converts decoded JSON into Lua values: objects to tables, arrays
// to 1-based tables.
func toLua(L *lua.LState, v any) lua.LValue {
	switch x := v.(type) {
	case nil:
		return lua.LNil
	case bool:
		return lua.LBool(x)
	case string:
		return lua.LString(x)
	case int64:
		return lua.LNumber(x)
	case int:
		return lua.LNumber(x)
	case float64:
		return lua.LNumber(x)
	case map[string]any:
		t := L.CreateTable(0, len(x))
		for k, val := range x {
			t.RawSetString(k, toLua(L, val))
		}
		return t
	case []any:
		t := L.CreateTable(len(x), 0)
		for i, val := range x {
			t.RawSetInt(i+1, toLua(L, val))
		}
		return t
	}
	return lua.LString(strings.TrimSpace(fmt.Sprint(v)))
}
