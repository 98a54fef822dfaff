package iiitest

import (
	"encoding/json"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/iii-go/iii/connection/wire"
)

func TestLogTriggerFiresForBuiltinLogsByLevel(t *testing.T) {
	e := NewEngine(t)
	c := &pubClient{client: dial(t, e)}
	c.register("logs::all")
	c.register("logs::warn")
	c.send(&wire.RegisterTrigger{ID: "l1", TriggerType: "log", FunctionID: "logs::all", Config: json.RawMessage(`{}`), Metadata: json.RawMessage(`{"m":1}`)})
	c.send(&wire.RegisterTrigger{ID: "l2", TriggerType: "log", FunctionID: "logs::warn", Config: json.RawMessage(`{"level":"warn"}`)})
	c.sync()
	r := c.callEarly("engine::log::warn", `{"message":"disk low","data":{"free":3},"service_name":"svc","trace_id":"t1"}`)
	if r.Error != nil {
		t.Fatal(wire.Encode(r))
	}
	got := map[string]*wire.InvokeFunction{}
	for range 2 {
		inv := c.nextInvoke()
		got[inv.FunctionID] = inv
	}
	for fn, inv := range got {
		var rec map[string]any
		if err := json.Unmarshal(inv.Data, &rec); err != nil {
			t.Fatal(err)
		}
		if rec["body"] != "disk low" || rec["severity_text"] != "WARN" || rec["severity_number"] != 13.0 || rec["service_name"] != "svc" ||
			rec["trace_id"] != "t1" || rec["span_id"] != nil || rec["instrumentation_scope_name"] != "iii" ||
			rec["attributes"].(map[string]any)["free"] != 3.0 || rec["resource"].(map[string]any)["service.name"] != "iii" ||
			rec["timestamp_unix_nano"] == 0.0 {
			t.Fatalf("%s got %s", fn, inv.Data)
		}
	}
	if string(got["logs::all"].Metadata) != `{"m":1}` || got["logs::warn"].Metadata != nil {
		t.Fatalf("metadata: %s / %s", got["logs::all"].Metadata, got["logs::warn"].Metadata)
	}
	// An info record reaches only the "all" binding; "unknown" without a
	// service name.
	c.callEarly("engine::log::info", `{"message":"hello"}`)
	inv := c.nextInvoke()
	var rec struct {
		Service string         `json:"service_name"`
		Attrs   map[string]any `json:"attributes"`
	}
	_ = json.Unmarshal(inv.Data, &rec)
	if inv.FunctionID != "logs::all" || rec.Service != "unknown" || rec.Attrs == nil || len(rec.Attrs) != 0 {
		t.Fatalf("info record: %s", wire.Encode(inv))
	}
	if len(c.early) != 0 {
		t.Fatalf("unexpected: %s", encodeAll(c.early))
	}
	c.expectQuiet()
	// Unbound: nothing more.
	c.send(&wire.UnregisterTrigger{ID: "l1", TriggerType: "log"})
	c.sync()
	c.callEarly("engine::log::info", `{"message":"again"}`)
	if len(c.early) != 0 {
		t.Fatalf("fired after unregister: %s", encodeAll(c.early))
	}
	c.expectQuiet()
}

func TestLogTriggerFiresForOTLPLogs(t *testing.T) {
	e := NewEngine(t)
	c := dial(t, e)
	c.register("logs::errors")
	c.send(&wire.RegisterTrigger{ID: "l1", TriggerType: "log", FunctionID: "logs::errors", Config: json.RawMessage(`{"level":"error"}`)})
	c.sync()
	frame := `LOGS{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"billing"}},{"key":"n","value":{"intValue":"7"}}]},"scopeLogs":[{"scope":{"name":"iii-go"},"logRecords":[` +
		`{"timeUnixNano":"5","severityNumber":17,"severityText":"ERROR","body":{"stringValue":"failed"},"attributes":[{"key":"k","value":{"kvlistValue":{"values":[{"key":"a","value":{"boolValue":true}}]}}}],"traceId":"00000000000000000000000000000000","spanId":"00f067aa0ba902b7"},` +
		`{"severityText":"INFO","body":{"stringValue":"fine"}}]}]}]}`
	if err := c.ws.WriteMessage(websocket.BinaryMessage, []byte(frame)); err != nil {
		t.Fatal(err)
	}
	inv := expectMsg[*wire.InvokeFunction](t, c)
	want := `{"attributes":{"k":{"a":true}},"body":"failed","instrumentation_scope_name":"iii-go","instrumentation_scope_version":null,"observed_timestamp_unix_nano":0,"resource":{"n":"7","service.name":"billing"},"service_name":"billing","severity_number":17,"severity_text":"ERROR","span_id":"00f067aa0ba902b7","timestamp_unix_nano":5,"trace_id":null}`
	if string(inv.Data) != want {
		t.Fatalf("record = %s\nwant     %s", inv.Data, want)
	}
	c.expectQuiet() // the INFO record does not match
}
