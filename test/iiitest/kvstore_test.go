package iiitest

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/iii-go/iii/connection/wire"
)

// kvBind registers a binding of c's function fn and waits until it is live.
func kvBind(t *testing.T, e *Engine, c *client, id, ttype, fn, config string) {
	t.Helper()
	c.send(&wire.RegisterTrigger{ID: id, TriggerType: ttype, FunctionID: fn, Config: json.RawMessage(config)})
	if err := e.WaitTrigger(ctxT(t), id); err != nil {
		t.Fatal(err)
	}
}

func sameJSON(t *testing.T, got json.RawMessage, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%s: %v", got, err)
	}
	json.Unmarshal([]byte(want), &w)
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("got %s, want %s", got, want)
	}
}

// The payloads are those engine v0.22.1 sent in a probe of its state and
// stream workers.
func TestStateEventPayload(t *testing.T) {
	e := NewEngine(t)
	h, c := dial(t, e), dial(t, e)
	h.register("on::state")
	kvBind(t, e, h, "b1", "state", "on::state", `{"scope":"s"}`)
	if r := c.callSync("state::set", `{"scope":"s","key":"k","value":{"b":1,"a":"<x>"}}`); r.Error != nil {
		t.Fatal(r.Error)
	}
	inv := expectMsg[*wire.InvokeFunction](t, h)
	sameJSON(t, inv.Data, `{"type":"state","event_type":"state:created","scope":"s","key":"k","old_value":null,"new_value":{"a":"<x>","b":1}}`)
	h.send(&wire.InvocationResult{InvocationID: inv.InvocationID, FunctionID: inv.FunctionID})
	c.callSync("state::delete", `{"scope":"s","key":"nothing"}`)
	inv = expectMsg[*wire.InvokeFunction](t, h)
	sameJSON(t, inv.Data, `{"type":"state","event_type":"state:deleted","scope":"s","key":"nothing","old_value":null,"new_value":null}`)
}

func TestStreamEventPayload(t *testing.T) {
	e := NewEngine(t)
	h, c := dial(t, e), dial(t, e)
	h.register("on::stream")
	kvBind(t, e, h, "b1", "stream", "on::stream", `{"stream_name":"s","group_id":"g"}`)
	c.callSync("stream::set", `{"stream_name":"s","group_id":"g","item_id":"i","data":{"x":1}}`)
	inv := expectMsg[*wire.InvokeFunction](t, h)
	ev := mustJSON(t, inv.Data)
	if ts, ok := ev["timestamp"].(float64); !ok || ts <= 0 {
		t.Fatalf("timestamp: %s", inv.Data)
	}
	delete(ev, "timestamp")
	b, _ := json.Marshal(ev)
	sameJSON(t, b, `{"type":"stream","streamName":"s","groupId":"g","id":"i","event":{"type":"create","data":{"x":1}}}`)
	h.send(&wire.InvocationResult{InvocationID: inv.InvocationID, FunctionID: inv.FunctionID})
	c.callSync("stream::send", `{"stream_name":"s","group_id":"g","type":"t","data":{"d":1}}`)
	inv = expectMsg[*wire.InvokeFunction](t, h)
	ev = mustJSON(t, inv.Data)
	delete(ev, "timestamp")
	b, _ = json.Marshal(ev)
	sameJSON(t, b, `{"type":"stream","streamName":"s","groupId":"g","id":null,"event":{"type":"event","event":{"type":"t","data":{"d":1}}}}`)
}

func TestKVStoresValuesAsTheEngine(t *testing.T) {
	e := NewEngine(t)
	c := dial(t, e)
	r := c.callSync("state::set", `{"scope":"s","key":"k","value":{"n":1.50,"m":1e2,"big":18446744073709551616,"i":-3,"s":"<&>"}}`)
	if r.Error != nil {
		t.Fatal(r.Error)
	}
	want := `{"big":1.8446744073709552e19,"i":-3,"m":100.0,"n":1.5,"s":"<&>"}`
	if r := c.callSync("state::get", `{"scope":"s","key":"k"}`); string(r.Result) != want {
		t.Fatalf("get = %s, want %s", r.Result, want)
	}
	r = c.callSync("state::update", `{"scope":"s","key":"k","ops":[{"type":"increment","path":"n","by":1},{"type":"increment","path":"i"}]}`)
	if r.Error == nil || r.Error.Code != "deserialization_error" || r.Error.Message != "Failed to deserialize input for state::update: missing field `by`" {
		t.Fatalf("update without by: %+v", r.Error)
	}
	r = c.callSync("stream::update", `{"stream_name":"s","group_id":"g","item_id":"i","ops":[{"type":"set","path":"n","value":2.50}]}`)
	if r.Error != nil {
		t.Fatal(r.Error)
	}
	sameJSON(t, r.Result, `{"new_value":{"n":2.5},"old_value":null}`)
	if r := c.callSync("stream::get", `{"stream_name":"s","group_id":"g","item_id":"i"}`); string(r.Result) != `{"n":2.5}` {
		t.Fatalf("stream get = %s", r.Result)
	}
}

// The engine calls the bindings of one write one after the other, each
// awaited.
func TestKVFanOutIsSequential(t *testing.T) {
	e := NewEngine(t)
	h, c := dial(t, e), dial(t, e)
	h.register("on::a")
	h.register("on::b")
	kvBind(t, e, h, "b1", "state", "on::a", `{}`)
	kvBind(t, e, h, "b2", "state", "on::b", `{"key":"k"}`)
	c.callSync("state::set", `{"scope":"s","key":"k","value":1}`)
	first := expectMsg[*wire.InvokeFunction](t, h)
	if first.FunctionID != "on::a" {
		t.Fatalf("first call to %s", first.FunctionID)
	}
	h.expectQuiet() // b waits for a's answer
	h.send(&wire.InvocationResult{InvocationID: first.InvocationID, FunctionID: first.FunctionID, Error: &wire.ErrorBody{Code: "x", Message: "failed"}})
	if second := expectMsg[*wire.InvokeFunction](t, h); second.FunctionID != "on::b" {
		t.Fatalf("second call to %s", second.FunctionID)
	}
}

func TestKVConditionWithoutAnswerPasses(t *testing.T) {
	e := NewEngine(t)
	h, c := dial(t, e), dial(t, e)
	h.register("cond")
	h.register("on::s")
	kvBind(t, e, h, "b1", "stream", "on::s", `{"stream_name":"s","condition_function_id":"cond"}`)
	c.callSync("stream::set", `{"stream_name":"s","group_id":"g","item_id":"i","data":1}`)
	cond := expectMsg[*wire.InvokeFunction](t, h)
	if cond.FunctionID != "cond" || len(cond.Metadata) != 0 {
		t.Fatalf("condition call %s", wire.Encode(cond))
	}
	// No result (null) passes, as in the engine.
	h.send(&wire.InvocationResult{InvocationID: cond.InvocationID, FunctionID: cond.FunctionID})
	if inv := expectMsg[*wire.InvokeFunction](t, h); inv.FunctionID != "on::s" {
		t.Fatalf("call to %s", inv.FunctionID)
	}
}

func TestKVTriggerConfigs(t *testing.T) {
	e := NewEngine(t)
	h := dial(t, e)
	h.register("f")
	for id, cfg := range map[string]string{
		"no-name":      `{}`,
		"bad-state":    `{"scope":1}`,
		"null-state":   `null`,
		"join-any-cfg": `42`,
	} {
		tt := "stream"
		switch id {
		case "bad-state", "null-state":
			tt = "state"
		case "join-any-cfg":
			tt = "stream:join"
		}
		h.send(&wire.RegisterTrigger{ID: id, TriggerType: tt, FunctionID: "f", Config: json.RawMessage(cfg)})
	}
	// The worker hears of each refusal, as from engine v0.22.1 (whose
	// message for a null state config this is).
	refused := map[string]string{}
	for _, m := range h.sync() {
		if r, ok := m.(*wire.TriggerRegistrationResult); ok && r.Error != nil && r.Error.Code == "trigger_registration_failed" {
			refused[r.ID] = r.Error.Message
		}
	}
	if len(refused) != 3 || refused["null-state"] != "Failed to parse trigger config: invalid type: null, expected struct StateTriggerConfig" {
		t.Errorf("refusals = %v", refused)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for id, want := range map[string]bool{"no-name": false, "bad-state": false, "null-state": false, "join-any-cfg": true} {
		if got := e.st.bindings[id] != nil; got != want {
			t.Errorf("binding %s live = %v, want %v", id, got, want)
		}
	}
}

func TestCustomStreamAnswers(t *testing.T) {
	e := NewEngine(t)
	p, c := dial(t, e), dial(t, e)
	p.register("stream::set(x)")
	p.register("stream::delete(x)")
	waitFn(t, e, "stream::delete(x)")
	for _, tc := range []struct {
		fn, answer, code, msg string
	}{
		{"stream::set", `null`, "STREAM_SET_ERROR", "Failed to set value: Function returned no result"},
		{"stream::set", `{"old_value":1}`, "JSON_ERROR", "Failed to convert result to value: missing field `new_value`"},
		{"stream::set", `{"new_value":2}`, "", ""},
		{"stream::delete", `{}`, "", ""},
		{"stream::delete", `null`, "STREAM_DELETE_ERROR", "Failed to delete value: Function returned no result"},
	} {
		id := c.call(tc.fn, `{"stream_name":"x","group_id":"g","item_id":"i","data":1}`)
		inv := expectMsg[*wire.InvokeFunction](t, p)
		want := `{"stream_name":"x","group_id":"g","item_id":"i","data":1}`
		if tc.fn == "stream::delete" {
			want = `{"stream_name":"x","group_id":"g","item_id":"i"}`
		}
		if inv.FunctionID != tc.fn+"(x)" || string(inv.Data) != want {
			t.Fatalf("custom call %s", wire.Encode(inv))
		}
		p.send(&wire.InvocationResult{InvocationID: inv.InvocationID, FunctionID: inv.FunctionID, Result: json.RawMessage(tc.answer)})
		r := expectMsg[*wire.InvocationResult](t, c)
		if r.InvocationID != id {
			t.Fatal("wrong result")
		}
		if tc.code == "" {
			if r.Error != nil {
				t.Fatalf("%s answering %s: %+v", tc.fn, tc.answer, r.Error)
			}
			continue
		}
		if r.Error == nil || r.Error.Code != tc.code || r.Error.Message != tc.msg {
			t.Fatalf("%s answering %s: %+v", tc.fn, tc.answer, r.Error)
		}
	}
}

func TestKVRestartWipes(t *testing.T) {
	e := NewEngine(t)
	c := dial(t, e)
	c.callSync("state::set", `{"scope":"s","key":"k","value":1}`)
	c.callSync("stream::set", `{"stream_name":"s","group_id":"g","item_id":"i","data":1}`)
	if err := e.Restart(); err != nil {
		t.Fatal(err)
	}
	c = dial(t, e)
	if r := c.callSync("state::get", `{"scope":"s","key":"k"}`); r.Error != nil || r.Result != nil {
		t.Fatalf("state after restart: %+v", r)
	}
	var all struct {
		Count int `json:"count"`
	}
	if errb := c.builtin("stream::list_all", `{}`, &all); errb != nil || all.Count != 0 {
		t.Fatalf("streams after restart: %+v %v", all, errb)
	}
}

// engine::functions::list names the in-process workers that own the
// state and stream functions, as engine v0.22.1 does.
func TestKVFunctionOwners(t *testing.T) {
	e := NewEngine(t)
	c := dial(t, e)
	var list struct {
		Functions []functionSummary `json:"functions"`
	}
	if errb := c.builtin("engine::functions::list", `{"prefix":"st"}`, &list); errb != nil {
		t.Fatal(errb)
	}
	owners := map[string]string{}
	for _, f := range list.Functions {
		owners[f.FunctionID] = f.WorkerName
	}
	if len(owners) != 14 || owners["state::set"] != "iii-state" || owners["stream::list_all"] != "iii-stream" {
		t.Fatalf("owners = %v", owners)
	}
	// Nor are they the runtime worker's.
	var info struct {
		Worker    map[string]any    `json:"worker"`
		Functions []functionSummary `json:"functions"`
	}
	if errb := c.builtin("engine::workers::info", `{"name":"`+runtimeWorkerName+`"}`, &info); errb != nil {
		t.Fatal(errb)
	}
	for _, f := range info.Functions {
		if strings.HasPrefix(f.FunctionID, "state::") || strings.HasPrefix(f.FunctionID, "stream::") {
			t.Fatalf("runtime worker lists %s", f.FunctionID)
		}
	}
	// (function_count also counts engine::queue::enqueue, listed only WithQueue.)
	if n, _ := info.Worker["function_count"].(float64); int(n) != len(info.Functions)+1 {
		t.Fatalf("function_count %v for %d functions", info.Worker["function_count"], len(info.Functions))
	}
}

// engine::register_trigger fails with the refusal of an engine-provided
// type, as engine v0.22.1 does.
func TestKVRegisterTriggerBuiltinRefused(t *testing.T) {
	e := NewEngine(t)
	c := dial(t, e)
	for payload, msg := range map[string]string{
		`{"trigger_type":"state","function_id":"x::y","config":null}`:               "Failed to parse trigger config: invalid type: null, expected struct StateTriggerConfig",
		`{"trigger_type":"stream","function_id":"x::y","config":{"stream_name":7}}`: "Failed to deserialize stream trigger",
	} {
		if errb := c.builtin("engine::register_trigger", payload, nil); errb == nil || errb.Code != "trigger_registration_failed" || errb.Message != msg {
			t.Errorf("%s: %+v", payload, errb)
		}
	}
	var ok struct {
		ID string `json:"id"`
	}
	if errb := c.builtin("engine::register_trigger", `{"trigger_type":"state","function_id":"x::y","config":{"scope":"s"}}`, &ok); errb != nil || ok.ID == "" {
		t.Fatalf("valid: %+v %v", ok, errb)
	}
}

// A binding whose worker leaves before answering does not stop the
// fan-out: its call fails and the next binding is called.
func TestKVFanOutGoesOnWhenAHandlerLeaves(t *testing.T) {
	e := NewEngine(t)
	h1, h2, c := dial(t, e), dial(t, e), dial(t, e)
	h1.register("on::first")
	h2.register("on::second")
	kvBind(t, e, h1, "b1", "stream", "on::first", `{"stream_name":"s"}`)
	kvBind(t, e, h2, "b2", "stream", "on::second", `{"stream_name":"s"}`)
	c.callSync("stream::set", `{"stream_name":"s","group_id":"g","item_id":"i","data":1}`)
	expectMsg[*wire.InvokeFunction](t, h1)
	h2.expectQuiet()
	h1.close()
	if inv := expectMsg[*wire.InvokeFunction](t, h2); inv.FunctionID != "on::second" {
		t.Fatalf("call to %s", inv.FunctionID)
	}
}
