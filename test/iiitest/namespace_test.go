package iiitest

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/iii-go/iii/connection/wire"
)

// announce sends c's engine::workers::register with name and namespace ns
// ("" sends none) and, with WithNamespaces, waits until e applied it (the
// builtin may run on a goroutine of its own: WithUnorderedDispatch).
func (c *client) announce(e *Engine, name, ns string) {
	c.t.Helper()
	c.sendAnnounce(name, ns)
	if !e.cfg.namespaces {
		return
	}
	if err := e.waitFor(ctxT(c.t), func() bool {
		w := e.st.workers[c.id]
		return w != nil && w.nsx.resolved && w.meta.name != nil && *w.meta.name == name
	}); err != nil {
		c.t.Fatalf("announce of %s: %v", name, err)
	}
}

// sendAnnounce sends c's engine::workers::register.
func (c *client) sendAnnounce(name, ns string) {
	c.t.Helper()
	data := `{"name":` + string(wire.AppendString(nil, name))
	if ns != "" {
		data += `,"namespace":` + string(wire.AppendString(nil, ns))
	}
	c.send(&wire.InvokeFunction{FunctionID: "engine::workers::register", Data: json.RawMessage(data + "}"),
		Action: wire.TriggerAction{Kind: wire.ActionVoid}})
}

// sendIn sends a synchronous call of fn in namespace ns.
func (c *client) sendIn(ns, fn string) wire.UUID {
	c.t.Helper()
	id := wire.NewUUID()
	c.send(&wire.InvokeFunction{InvocationID: id, HasInvocationID: true, FunctionID: fn, Data: json.RawMessage(`{}`), Namespace: ns})
	return id
}

// callIn calls fn in namespace ns and returns its result.
func (c *client) callIn(ns, fn string) *wire.InvocationResult {
	c.t.Helper()
	id := c.sendIn(ns, fn)
	for {
		m := c.nextMsg()
		if r, ok := m.(*wire.InvocationResult); ok && r.InvocationID == id {
			return r
		}
	}
}

// answer replies to the next invocation c gets with result.
func (c *client) answer(result string) *wire.InvokeFunction {
	c.t.Helper()
	inv := expectMsg[*wire.InvokeFunction](c.t, c)
	c.send(&wire.InvocationResult{InvocationID: inv.InvocationID, FunctionID: inv.FunctionID, Result: json.RawMessage(result)})
	return inv
}

func TestNamespacesV022IgnoresNamespaceFields(t *testing.T) {
	e := NewEngine(t)
	h := dial(t, e)
	h.announce(e, "h", "orders")
	h.register("greet")
	waitFn(t, e, "greet")
	caller := dial(t, e)
	// v0.22.1 routes by id alone: the namespace field is ignored.
	id := caller.sendIn("elsewhere", "greet")
	if inv := h.answer(`"hi"`); inv.FunctionID != "greet" || inv.Namespace != "" {
		t.Fatalf("handler got %s", wire.Encode(inv))
	}
	if r := expectMsg[*wire.InvocationResult](t, caller); r.InvocationID != id || string(r.Result) != `"hi"` {
		t.Fatalf("result %s", wire.Encode(r))
	}
	if infos := e.Workers(); infos[0].Namespace != "" {
		t.Fatalf("namespace %q without WithNamespaces", infos[0].Namespace)
	}
}

func TestNamespacesRouteCallsByNamespace(t *testing.T) {
	e := NewEngine(t, WithNamespaces())
	orders := dial(t, e)
	orders.register("greet") // sent before the announce: it waits for it
	orders.announce(e, "orders-worker", "orders")
	if err := e.WaitFunctionIn(ctxT(t), "orders", "greet"); err != nil {
		t.Fatal(err)
	}
	if got := e.Functions(); len(got) != 0 {
		t.Fatalf("default namespace functions = %v, want none", got)
	}
	if got := e.FunctionsIn("orders"); got["greet"] != orders.id {
		t.Fatalf("orders functions = %v", got)
	}
	caller := dial(t, e)
	r := caller.callIn("", "greet")
	if r.Error == nil || r.Error.Code != "function_not_found" || !strings.Contains(r.Error.Message, "namespace default") ||
		!strings.Contains(r.Error.Message, "registered in namespace(s): orders") {
		t.Fatalf("call without namespace: %+v", r.Error)
	}
	id := caller.sendIn("orders", "greet")
	orders.answer(`"from orders"`)
	if r := expectMsg[*wire.InvocationResult](t, caller); r.InvocationID != id || r.Error != nil || string(r.Result) != `"from orders"` {
		t.Fatalf("call in orders: %+v %s", r.Error, r.Result)
	}
	if r := caller.callIn("  ", "greet"); r.Error == nil || r.Error.Code != invalidNamespace {
		t.Fatalf("blank namespace: %+v", r.Error)
	}
	// engine:: builtins live in default only.
	if r := caller.callIn("orders", "engine::functions::list"); r.Error == nil || r.Error.Code != "function_not_found" {
		t.Fatalf("builtin in orders: %+v", r.Error)
	}
	if infos := e.Workers(); len(infos) != 2 || infos[0].Namespace != "orders" || infos[1].Namespace != "default" {
		t.Fatalf("workers = %+v", infos)
	}
}

func TestNamespacesFunctionConflict(t *testing.T) {
	e := NewEngine(t, WithNamespaces())
	a := dial(t, e)
	a.register("greet")
	a.announce(e, "a", "orders")
	if err := e.WaitFunctionIn(ctxT(t), "orders", "greet"); err != nil {
		t.Fatal(err)
	}
	b := dial(t, e)
	b.announce(e, "b", "orders")
	b.register("greet")
	b.register("engine::mine")
	got := b.sync()
	want := []wire.Message{
		&wire.RegistrationRejected{Code: functionNamespaceConflict, Namespace: "orders", FunctionID: "greet", OwnerWorkerID: a.id},
		&wire.RegistrationRejected{Code: functionNamespaceConflict, Namespace: "orders", FunctionID: "engine::mine"},
	}
	if encodeAll(got) != encodeAll(want) {
		t.Fatalf("got\n%s\nwant\n%s", encodeAll(got), encodeAll(want))
	}
	if e.FunctionsIn("orders")["greet"] != a.id {
		t.Fatal("the owner lost its function")
	}
	// Another namespace may hold the same id.
	c := dial(t, e)
	c.announce(e, "c", "billing")
	c.register("greet")
	c.expectQuiet()
	// Once the owner is gone, the id is free again.
	a.close()
	if err := e.WaitFunctionGone(ctxT(t), "orders\x00greet"); err != nil {
		t.Fatal(err)
	}
	b.register("greet")
	b.expectQuiet()
	if e.FunctionsIn("orders")["greet"] != b.id {
		t.Fatal("the id was not taken over")
	}
}

func TestNamespacesWorkerNameConflict(t *testing.T) {
	e := NewEngine(t, WithNamespaces())
	a := dial(t, e)
	a.announce(e, "same", "orders")
	a.expectQuiet()
	other := dial(t, e)
	other.announce(e, "same", "billing") // another namespace: no conflict
	other.expectQuiet()
	b := dial(t, e)
	b.register("late")
	b.sendAnnounce("same", "orders")
	got := expectMsg[*wire.RegistrationRejected](t, b)
	want := &wire.RegistrationRejected{Code: workerNamespaceConflict, Namespace: "orders", WorkerName: "same", OwnerWorkerID: a.id}
	if string(wire.Encode(got)) != string(wire.Encode(want)) {
		t.Fatalf("got %s, want %s", wire.Encode(got), wire.Encode(want))
	}
	if err := b.waitClosed(); err == nil {
		t.Fatal("no close")
	}
	if fns := e.FunctionsIn("orders"); len(fns) != 0 {
		t.Fatalf("the rejected worker's registrations were applied: %v", fns)
	}
}

func TestNamespacesBindingsCarryNamespaces(t *testing.T) {
	e := NewEngine(t, WithNamespaces())
	def := dial(t, e) // provider of "tick" in default
	def.announce(e, "def", "")
	def.send(&wire.RegisterTriggerType{ID: "tick", Description: "d"})
	tools := dial(t, e) // provider of "tick" in tools
	tools.announce(e, "tools", "tools")
	tools.send(&wire.RegisterTriggerType{ID: "tick", Description: "t"})
	def.expectQuiet()
	tools.expectQuiet()

	orders := dial(t, e)
	orders.announce(e, "orders", "orders")
	orders.register("onTick")
	// No trigger_namespace: home (orders) has no provider, default has.
	orders.send(&wire.RegisterTrigger{ID: "t1", TriggerType: "tick", FunctionID: "onTick", Config: json.RawMessage(`{}`), Namespace: "orders"})
	// Explicit: the tools provider.
	orders.send(&wire.RegisterTrigger{ID: "t2", TriggerType: "tick", FunctionID: "onTick", Config: json.RawMessage(`{}`), Namespace: "orders", TriggerNamespace: "tools"})
	// Explicit, with no provider there: parked.
	orders.send(&wire.RegisterTrigger{ID: "t3", TriggerType: "tick", FunctionID: "onTick", Config: json.RawMessage(`{}`), TriggerNamespace: "nowhere"})
	orders.expectQuiet()

	if got := expectMsg[*wire.RegisterTrigger](t, def); got.ID != "t1" || got.Namespace != "orders" || got.TriggerNamespace != "" || got.FunctionID != "onTick" {
		t.Fatalf("default provider got %s", wire.Encode(got))
	}
	if got := expectMsg[*wire.RegisterTrigger](t, tools); got.ID != "t2" || got.Namespace != "orders" || got.TriggerNamespace != "tools" {
		t.Fatalf("tools provider got %s", wire.Encode(got))
	}
	def.expectQuiet()
	tools.expectQuiet()

	// A provider that registers in "nowhere" gets the parked binding.
	nw := dial(t, e)
	nw.announce(e, "nw", "nowhere")
	nw.send(&wire.RegisterTriggerType{ID: "tick", Description: "n"})
	if got := expectMsg[*wire.RegisterTrigger](t, nw); got.ID != "t3" || got.Namespace != "" || got.TriggerNamespace != "nowhere" {
		t.Fatalf("nowhere provider got %s", wire.Encode(got))
	}

	// A blank namespace is refused to the binder.
	orders.send(&wire.RegisterTrigger{ID: "t4", TriggerType: "tick", FunctionID: "onTick", Config: json.RawMessage(`{}`), TriggerNamespace: " "})
	r := expectMsg[*wire.TriggerRegistrationResult](t, orders)
	if r.Error == nil || r.Error.Code != invalidNamespace || !strings.Contains(r.Error.Message, "trigger_namespace") {
		t.Fatalf("blank trigger_namespace: %s", wire.Encode(r))
	}
}

func TestNamespacesGraceFilesRegistrationsUnderDefault(t *testing.T) {
	e := NewEngine(t, WithNamespaces(), WithNamespaceGrace(20*time.Millisecond))
	c := dial(t, e)
	c.register("early")
	waitFn(t, e, "early") // in default once the grace ran out
	// A late announce cannot move the connection any more.
	c.announce(e, "late", "orders")
	c.register("later")
	waitFn(t, e, "later")
	if got := e.FunctionsIn("orders"); len(got) != 0 {
		t.Fatalf("orders = %v", got)
	}
	if infos := e.Workers(); infos[0].Namespace != "default" {
		t.Fatalf("namespace %q", infos[0].Namespace)
	}
}

func TestNamespacesBindingMovesToAProviderAtHome(t *testing.T) {
	e := NewEngine(t, WithNamespaces())
	def := dial(t, e)
	def.announce(e, "def", "")
	def.send(&wire.RegisterTriggerType{ID: "tick", Description: "d"})
	def.expectQuiet()
	orders := dial(t, e)
	orders.announce(e, "orders", "orders")
	orders.send(&wire.RegisterTrigger{ID: "t1", TriggerType: "tick", FunctionID: "f", Config: json.RawMessage(`{}`), Namespace: "orders"})
	orders.expectQuiet()
	if got := expectMsg[*wire.RegisterTrigger](t, def); got.ID != "t1" {
		t.Fatalf("default provider got %s", wire.Encode(got))
	}
	home := dial(t, e)
	home.announce(e, "home", "orders")
	home.send(&wire.RegisterTriggerType{ID: "tick", Description: "h"})
	if got := expectMsg[*wire.RegisterTrigger](t, home); got.ID != "t1" || got.TriggerNamespace != "orders" || got.Namespace != "orders" {
		t.Fatalf("home provider got %s", wire.Encode(got))
	}
	if got := expectMsg[*wire.UnregisterTrigger](t, def); got.ID != "t1" || got.TriggerType != "tick" {
		t.Fatalf("default provider got %s", wire.Encode(got))
	}
}

func TestNamespacesBlankWorkerNamespaceRefused(t *testing.T) {
	e := NewEngine(t, WithNamespaces())
	c := dial(t, e)
	r := c.builtin("engine::workers::register", `{"name":"w","namespace":" "}`, nil)
	if r == nil || r.Code != invalidNamespace {
		t.Fatalf("blank namespace: %+v", r)
	}
	// Still unresolved: a later announce places it.
	c.announce(e, "w", "orders")
	c.register("f")
	if err := e.WaitFunctionIn(ctxT(t), "orders", "f"); err != nil {
		t.Fatal(err)
	}
}
