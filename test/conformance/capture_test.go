package conformance

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/iii-go/iii/connection/wire"
)

// CaptureEnv names the environment variable that makes TestCaptureVectors
// write the frames an engine sends in a few scenarios to a JSON Lines file
// (test vectors: facts about the protocol).
const CaptureEnv = "III_CAPTURE"

type captured struct {
	Scenario string          `json:"scenario"`
	Dir      string          `json:"dir"`
	Frame    json.RawMessage `json:"frame"`
}

type recorder struct {
	t   *testing.T
	out []captured
}

func (r *recorder) send(ws *websocket.Conn, scenario, frame string) {
	r.t.Helper()
	r.out = append(r.out, captured{scenario, "worker->engine", json.RawMessage(frame)})
	if err := ws.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
		r.t.Fatal(err)
	}
}

func (r *recorder) recv(ws *websocket.Conn, scenario string) wire.Message {
	r.t.Helper()
	ws.SetReadDeadline(time.Now().Add(15 * time.Second))
	_, b, err := ws.ReadMessage()
	if err != nil {
		r.t.Fatalf("%s: %v", scenario, err)
	}
	r.out = append(r.out, captured{scenario, "engine->worker", json.RawMessage(append([]byte(nil), b...))})
	m, err := wire.Decode(b)
	if err != nil {
		r.t.Fatalf("%s: %s: %v", scenario, b, err)
	}
	return m
}

func TestCaptureVectors(t *testing.T) {
	path := os.Getenv(CaptureEnv)
	if path == "" {
		t.Skipf("set %s to a file to capture the frames an engine sends", CaptureEnv)
	}
	tg := newTarget(t)
	r := &recorder{t: t}
	dial := func(scenario string) *websocket.Conn {
		ws, _, err := websocket.DefaultDialer.Dial(tg.url+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ws.Close() })
		r.recv(ws, scenario)
		return ws
	}
	h := dial("connect")
	c := dial("connect")
	r.send(c, "ping", `{"type":"ping"}`)
	r.recv(c, "ping")

	fn := tg.id("echo")
	r.send(h, "invoke", `{"type":"registerfunction","id":"`+fn+`"}`)
	// The engine sends nothing on registration; list until it is in.
	eventually(t, "registration", func() bool {
		id := wire.NewUUID()
		c.WriteMessage(websocket.TextMessage, wire.Encode(&wire.InvokeFunction{InvocationID: id, HasInvocationID: true, FunctionID: "engine::functions::info", Data: json.RawMessage(`{"function_id":"` + fn + `"}`)}))
		c.SetReadDeadline(time.Now().Add(15 * time.Second))
		_, b, err := c.ReadMessage()
		return err == nil && !strings.Contains(string(b), `"error"`)
	})
	tp := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	r.send(c, "invoke", `{"type":"invokefunction","invocation_id":"`+wire.NewUUID().String()+`","function_id":"`+fn+`","data":{"a":1},"traceparent":"`+tp+`","baggage":"iii.function.id=caller::fn,user=x","metadata":{"m":1}}`)
	inv := r.recv(h, "invoke").(*wire.InvokeFunction)
	r.send(h, "invoke", string(wire.Encode(&wire.InvocationResult{InvocationID: inv.InvocationID, FunctionID: fn, Result: json.RawMessage(`{"ok":true}`)})))
	r.recv(c, "invoke")

	r.send(c, "invoke-traceparent-only", `{"type":"invokefunction","invocation_id":"`+wire.NewUUID().String()+`","function_id":"`+fn+`","data":{},"traceparent":"`+tp+`"}`)
	inv = r.recv(h, "invoke-traceparent-only").(*wire.InvokeFunction)
	r.send(h, "invoke-traceparent-only", string(wire.Encode(&wire.InvocationResult{InvocationID: inv.InvocationID, FunctionID: fn})))
	r.recv(c, "invoke-traceparent-only")

	r.send(c, "missing", `{"type":"invokefunction","invocation_id":"`+wire.NewUUID().String()+`","function_id":"`+tg.id("missing")+`","data":{}}`)
	r.recv(c, "missing")
	r.send(c, "enqueue", `{"type":"invokefunction","invocation_id":"`+wire.NewUUID().String()+`","function_id":"`+fn+`","data":{},"action":{"type":"enqueue","queue":"default"}}`)
	r.recv(c, "enqueue")
	for _, b := range []string{"engine::functions::list", "engine::triggers::list", "engine::workers::list"} {
		r.send(c, b, `{"type":"invokefunction","invocation_id":"`+wire.NewUUID().String()+`","function_id":"`+b+`","data":{}}`)
		r.recv(c, b)
	}
	r.send(c, "cron-bad-config", `{"type":"registertrigger","id":"`+wire.NewUUID().String()+`","trigger_type":"cron","function_id":"`+fn+`","config":{"expression":"not a cron"}}`)
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, b, err := c.ReadMessage(); err == nil {
		r.out = append(r.out, captured{"cron-bad-config", "engine->worker", json.RawMessage(append([]byte(nil), b...))})
	}

	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	enc := json.NewEncoder(f)
	for _, c := range r.out {
		if err := enc.Encode(c); err != nil {
			t.Fatal(err)
		}
	}
}
