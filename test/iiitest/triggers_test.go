package iiitest

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/iii-go/iii/connection/wire"
)

func bind(c *client, id, ttype, fn string) {
	c.send(&wire.RegisterTrigger{ID: id, TriggerType: ttype, FunctionID: fn, Config: json.RawMessage(`{"path":"/in"}`), Metadata: json.RawMessage(`{"m":1}`)})
}

func TestBindingsAreForwardedToTheProviderWithoutAck(t *testing.T) {
	e := NewEngine(t)
	p, b := dial(t, e), dial(t, e)
	p.send(&wire.RegisterTriggerType{ID: "fs::watch", Description: "d"})
	p.sync()
	bind(b, "t1", "fs::watch", "files::on")
	rt := expectMsg[*wire.RegisterTrigger](t, p)
	if rt.ID != "t1" || rt.TriggerType != "fs::watch" || rt.FunctionID != "files::on" || string(rt.Config) != `{"path":"/in"}` || string(rt.Metadata) != `{"m":1}` {
		t.Fatalf("provider got %s", wire.Encode(rt))
	}
	p.send(&wire.TriggerRegistrationResult{ID: "t1", TriggerType: "fs::watch", FunctionID: "files::on"})
	p.sync()
	b.expectQuiet() // success is never acknowledged
}

func TestBindingOfAnUnknownTypeIsParkedUntilTheTypeRegisters(t *testing.T) {
	e := NewEngine(t)
	b := dial(t, e)
	bind(b, "t1", "fs::watch", "files::on")
	b.expectQuiet()
	p := dial(t, e)
	p.send(&wire.RegisterTriggerType{ID: "fs::watch", Description: "d"})
	if rt := expectMsg[*wire.RegisterTrigger](t, p); rt.ID != "t1" {
		t.Fatalf("provider got %s", wire.Encode(rt))
	}
}

func TestANewProviderReplacesTheOldAndGetsEveryBinding(t *testing.T) {
	e := NewEngine(t)
	p1, b := dial(t, e), dial(t, e)
	p1.send(&wire.RegisterTriggerType{ID: "fs::watch", Description: "d"})
	p1.sync()
	bind(b, "t1", "fs::watch", "files::on")
	bind(b, "t2", "fs::watch", "files::on")
	b.sync()
	expectMsg[*wire.RegisterTrigger](t, p1)
	expectMsg[*wire.RegisterTrigger](t, p1)
	p2 := dial(t, e)
	p2.send(&wire.RegisterTriggerType{ID: "fs::watch", Description: "d2"})
	got := p2.sync()
	if len(got) != 2 || got[0].(*wire.RegisterTrigger).ID != "t1" || got[1].(*wire.RegisterTrigger).ID != "t2" {
		t.Fatalf("replay = %s", encodeAll(got))
	}
	// Results from the replaced provider are ignored.
	p1.send(&wire.TriggerRegistrationResult{ID: "t1", TriggerType: "fs::watch", FunctionID: "files::on", Error: &wire.ErrorBody{Code: "x", Message: "y"}})
	p1.sync()
	b.expectQuiet()
	// The old provider's disconnect does not remove the type.
	p1.close()
	if err := e.waitFor(ctxT(t), func() bool { return len(e.st.workers) == 2 }); err != nil {
		t.Fatal(err)
	}
	var out struct {
		InstanceCount int    `json:"instance_count"`
		Description   string `json:"description"`
	}
	if errb := b.builtin("engine::triggers::info", `{"id":"fs::watch"}`, &out); errb != nil || out.InstanceCount != 2 || out.Description != "d2" {
		t.Fatalf("triggers::info = %+v %v", out, errb)
	}
}

func TestProviderRejectionIsForwardedToTheBinderAndParksTheBinding(t *testing.T) {
	e := NewEngine(t)
	p, b := dial(t, e), dial(t, e)
	p.send(&wire.RegisterTriggerType{ID: "fs::watch", Description: "d"})
	p.sync()
	bind(b, "t1", "fs::watch", "files::on")
	expectMsg[*wire.RegisterTrigger](t, p)
	errb := &wire.ErrorBody{Code: "trigger_registration_failed", Message: "path does not exist: /in"}
	p.send(&wire.TriggerRegistrationResult{ID: "t1", TriggerType: "bogus", FunctionID: "bogus", Error: errb})
	r := expectMsg[*wire.TriggerRegistrationResult](t, b)
	if r.ID != "t1" || r.TriggerType != "fs::watch" || r.FunctionID != "files::on" || r.Error == nil || *r.Error != *errb {
		t.Fatalf("binder got %s", wire.Encode(r))
	}
	// Parked: not live any more, re-delivered to the next provider.
	var list struct {
		RegisteredTriggers []struct{ ID string } `json:"registered_triggers"`
	}
	b.builtin("engine::registered-triggers::list", `{}`, &list)
	if len(list.RegisteredTriggers) != 0 {
		t.Fatalf("parked binding still listed: %+v", list)
	}
	p2 := dial(t, e)
	p2.send(&wire.RegisterTriggerType{ID: "fs::watch", Description: "d"})
	if rt := expectMsg[*wire.RegisterTrigger](t, p2); rt.ID != "t1" {
		t.Fatalf("got %s", wire.Encode(rt))
	}
}

func TestUnregisterTriggerTellsTheProviderWithTheType(t *testing.T) {
	e := NewEngine(t)
	p, b, other := dial(t, e), dial(t, e), dial(t, e)
	p.send(&wire.RegisterTriggerType{ID: "fs::watch", Description: "d"})
	p.sync()
	bind(b, "t1", "fs::watch", "files::on")
	expectMsg[*wire.RegisterTrigger](t, p)
	other.send(&wire.UnregisterTrigger{ID: "t1"}) // any connection may remove any binding
	other.sync()
	ut := expectMsg[*wire.UnregisterTrigger](t, p)
	if ut.ID != "t1" || ut.TriggerType != "fs::watch" {
		t.Fatalf("provider got %s", wire.Encode(ut))
	}
	other.send(&wire.UnregisterTrigger{ID: "t1"})
	other.sync()
	p.expectQuiet()
}

func TestBinderDisconnectUnregistersItsBindingsAtTheProvider(t *testing.T) {
	e := NewEngine(t)
	p, b := dial(t, e), dial(t, e)
	p.send(&wire.RegisterTriggerType{ID: "fs::watch", Description: "d"})
	p.sync()
	bind(b, "t1", "fs::watch", "files::on")
	expectMsg[*wire.RegisterTrigger](t, p)
	e.DropWorker(b.id)
	if ut := expectMsg[*wire.UnregisterTrigger](t, p); ut.ID != "t1" || ut.TriggerType != "fs::watch" {
		t.Fatalf("provider got %s", wire.Encode(ut))
	}
}

func TestProviderDisconnectParksAllBindingsOfItsTypes(t *testing.T) {
	e := NewEngine(t)
	p, b := dial(t, e), dial(t, e)
	p.send(&wire.RegisterTriggerType{ID: "fs::watch", Description: "d"})
	p.sync()
	bind(b, "t1", "fs::watch", "files::on")
	expectMsg[*wire.RegisterTrigger](t, p)
	e.DropWorker(p.id)
	if err := e.waitFor(ctxT(t), func() bool { return e.st.ttypes["fs::watch"] == nil }); err != nil {
		t.Fatal(err)
	}
	var info struct{}
	if errb := b.builtin("engine::triggers::info", `{"id":"fs::watch"}`, &info); errb == nil || errb.Code != "NOT_FOUND" {
		t.Fatalf("type still registered: %v", errb)
	}
	p2 := dial(t, e)
	p2.send(&wire.RegisterTriggerType{ID: "fs::watch", Description: "d"})
	if rt := expectMsg[*wire.RegisterTrigger](t, p2); rt.ID != "t1" {
		t.Fatalf("got %s", wire.Encode(rt))
	}
	// A binder that leaves while parked takes its bindings along.
	e.DropWorker(p2.id)
	if err := e.waitFor(ctxT(t), func() bool { return len(e.st.parked) == 1 }); err != nil {
		t.Fatal(err)
	}
	e.DropWorker(b.id)
	if err := e.waitFor(ctxT(t), func() bool { return len(e.st.parked) == 0 }); err != nil {
		t.Fatal("the departed binder's parked binding was kept")
	}
}

func TestWorkersAvailableFiresOnConnectMetadataAndDisconnect(t *testing.T) {
	// It checks the FIFO order the double keeps by default.
	t.Setenv(UnorderedEnv, "")
	e := NewEngine(t)
	s := dial(t, e)
	s.register("watch::workers")
	s.send(&wire.RegisterTrigger{ID: "w1", TriggerType: "engine::workers-available", FunctionID: "watch::workers", Config: json.RawMessage(`{}`), Metadata: json.RawMessage(`{"tag":"x"}`)})
	s.expectQuiet() // an engine-provided type: accepted, nothing sent
	w := dial(t, e)
	w.sendRaw(`{"type":"invokefunction","function_id":"engine::workers::register","data":{"name":"n","pid":1},"action":{"type":"void"}}`)
	w.sync()
	w.close()
	for _, ev := range []string{"worker_connected", "worker_metadata_updated", "worker_disconnected"} {
		inv := expectMsg[*wire.InvokeFunction](t, s)
		d := mustJSON(t, inv.Data)
		if d["event"] != ev || d["worker_id"] != w.id || d["_caller_worker_id"] != nil || string(inv.Metadata) != `{"tag":"x"}` {
			t.Fatalf("fire = %s, want event %s", wire.Encode(inv), ev)
		}
		s.send(&wire.InvocationResult{InvocationID: inv.InvocationID, FunctionID: inv.FunctionID})
	}
}

func TestFunctionsAvailableFiresWhenTheFunctionSetChanges(t *testing.T) {
	e := NewEngine(t, WithFunctionsPollInterval(10*time.Millisecond))
	s := dial(t, e)
	s.register("watch::fns")
	s.send(&wire.RegisterTrigger{ID: "f1", TriggerType: "engine::functions-available", FunctionID: "watch::fns", Config: json.RawMessage(`{}`)})
	s.sync()
	inv := expectMsg[*wire.InvokeFunction](t, s)
	var d struct {
		Event     string `json:"event"`
		Functions []struct {
			FunctionID string `json:"function_id"`
		} `json:"functions"`
	}
	if err := json.Unmarshal(inv.Data, &d); err != nil || d.Event != "functions_changed" {
		t.Fatalf("fire = %s", inv.Data)
	}
	found := false
	for _, f := range d.Functions {
		found = found || f.FunctionID == "watch::fns"
	}
	if !found {
		t.Fatalf("functions = %s", inv.Data)
	}
}

func TestRegisterTriggerBuiltinWaitsForTheProvidersAck(t *testing.T) {
	e := NewEngine(t)
	p, c := dial(t, e), dial(t, e)
	p.send(&wire.RegisterTriggerType{ID: "fs::watch", Description: "d"})
	p.sync()
	id := c.call("engine::register_trigger", `{"trigger_type":"fs::watch","function_id":"files::on","config":{"a":1},"metadata":{"m":2}}`)
	rt := expectMsg[*wire.RegisterTrigger](t, p)
	if rt.FunctionID != "files::on" || string(rt.Config) != `{"a":1}` || string(rt.Metadata) != `{"m":2}` {
		t.Fatalf("provider got %s", wire.Encode(rt))
	}
	c.expectQuiet() // still waiting for the ack
	p.send(&wire.TriggerRegistrationResult{ID: rt.ID, TriggerType: "fs::watch", FunctionID: "files::on", Error: &wire.ErrorBody{Code: "bad_config", Message: "nope"}})
	r := expectMsg[*wire.InvocationResult](t, c)
	if r.InvocationID != id || r.Error == nil || r.Error.Code != "trigger_registration_failed" || r.Error.Message != "bad_config: nope" {
		t.Fatalf("result = %s", wire.Encode(r))
	}
	// Success: the binding is stored, ownerless (it survives the caller).
	c.call("engine::register_trigger", `{"trigger_type":"fs::watch","function_id":"files::on"}`)
	rt = expectMsg[*wire.RegisterTrigger](t, p)
	if string(rt.Config) != "null" {
		t.Fatalf("config %s", rt.Config)
	}
	p.send(&wire.TriggerRegistrationResult{ID: rt.ID, TriggerType: "fs::watch", FunctionID: "files::on"})
	r = expectMsg[*wire.InvocationResult](t, c)
	if r.Error != nil || string(r.Result) != `{"id":"`+rt.ID+`"}` {
		t.Fatalf("result = %s", wire.Encode(r))
	}
	c.close()
	if err := e.waitFor(ctxT(t), func() bool { return len(e.st.workers) == 1 }); err != nil {
		t.Fatal(err)
	}
	p.expectQuiet() // no unregistertrigger: ownerless bindings survive
	e.mu.Lock()
	b := e.st.bindings[rt.ID]
	e.mu.Unlock()
	if b == nil {
		t.Fatal("ownerless binding removed with its caller")
	}
}

func TestRegisterTriggerBuiltinAcceptsWhenTheProviderIsSilent(t *testing.T) {
	e := NewEngine(t, WithTriggerAckTimeout(20*time.Millisecond))
	p, c := dial(t, e), dial(t, e)
	p.send(&wire.RegisterTriggerType{ID: "fs::watch", Description: "d"})
	p.sync()
	c.call("engine::register_trigger", `{"trigger_type":"fs::watch","function_id":"files::on"}`)
	rt := expectMsg[*wire.RegisterTrigger](t, p)
	r := expectMsg[*wire.InvocationResult](t, c)
	if r.Error != nil || string(r.Result) != `{"id":"`+rt.ID+`"}` {
		t.Fatalf("result = %s", wire.Encode(r))
	}
}

func TestRegisterTriggerBuiltinParksUnknownTypesAndUnregisterIsIdempotent(t *testing.T) {
	e := NewEngine(t)
	c := dial(t, e)
	var reg struct{ ID string }
	if errb := c.builtin("engine::register_trigger", `{"trigger_type":"fs::watch","function_id":"r::n","config":{"path":"/tmp"}}`, &reg); errb != nil || reg.ID == "" {
		t.Fatalf("register_trigger = %+v %v", reg, errb)
	}
	var un struct {
		Removed bool `json:"removed"`
	}
	c.builtin("engine::unregister_trigger", `{"id":"`+reg.ID+`"}`, &un)
	if !un.Removed {
		t.Fatal("parked binding not removed")
	}
	c.builtin("engine::unregister_trigger", `{"id":"`+reg.ID+`","trigger_type":"fs::watch"}`, &un)
	if un.Removed {
		t.Fatal("second unregister reported removal")
	}
	if errb := c.builtin("engine::register_trigger", `{"function_id":"r::n"}`, nil); errb == nil || errb.Code != "deserialization_error" ||
		errb.Message != "Failed to deserialize input for engine::register_trigger: missing field `trigger_type`" {
		t.Fatalf("missing trigger_type: %v", errb)
	}
}
