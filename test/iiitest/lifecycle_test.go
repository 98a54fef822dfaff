package iiitest

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/iii-go/iii/connection/wire"
)

func TestReattachRetiresOldConnectionBeforeReplay(t *testing.T) {
	e := NewEngine(t)
	old, caller, p := dial(t, e), dial(t, e), dial(t, e)
	p.send(&wire.RegisterTriggerType{ID: "fs::watch", Description: "d"})
	p.sync()
	old.register("f::g")
	bind(old, "t1", "fs::watch", "f::g")
	old.sync()
	expectMsg[*wire.RegisterTrigger](t, p)
	id := caller.call("f::g", `{}`)
	expectMsg[*wire.InvokeFunction](t, old)

	// The reconnect: reattach first, then the replay, on a new socket
	// while the old one is still open (half-open from the worker's view).
	nw := dial(t, e)
	nw.send(&wire.Reattach{PreviousWorkerID: old.id, ReattachToken: old.token})
	nw.register("f::g")
	bind(nw, "t1", "fs::watch", "f::g")
	nw.sync()

	// The old connection's in-flight call was stopped...
	r := expectMsg[*wire.InvocationResult](t, caller)
	if r.InvocationID != id || r.Error == nil || r.Error.Code != "invocation_stopped" {
		t.Fatalf("caller got %s", wire.Encode(r))
	}
	// ...its binding unregistered at the provider before the replay
	// re-registered it...
	got := p.sync()
	if len(got) != 2 || got[0].Kind() != wire.KindUnregisterTrigger || got[1].Kind() != wire.KindRegisterTrigger {
		t.Fatalf("provider got %s", encodeAll(got))
	}
	// ...the function belongs to the new connection, and the old socket is
	// closed.
	if owner := e.Functions()["f::g"]; owner != nw.id {
		t.Fatalf("owner %s, want %s", owner, nw.id)
	}
	old.waitClosed()
	if ws := e.Workers(); len(ws) != 3 {
		t.Fatalf("Workers = %+v", ws)
	}
	// A late result on the old socket can't reach the caller any more.
	caller.call("f::g", `{}`)
	expectMsg[*wire.InvokeFunction](t, nw)
}

func TestReattachWithAWrongOrMissingTokenIsIgnored(t *testing.T) {
	e := NewEngine(t)
	old := dial(t, e)
	old.register("f::g")
	old.sync()
	nw := dial(t, e)
	nw.send(&wire.Reattach{PreviousWorkerID: old.id, ReattachToken: "wrong"})
	nw.send(&wire.Reattach{PreviousWorkerID: old.id})
	nw.send(&wire.Reattach{PreviousWorkerID: "not-a-uuid", ReattachToken: old.token})
	nw.send(&wire.Reattach{PreviousWorkerID: wire.NewUUID().String(), ReattachToken: old.token})
	nw.send(&wire.Reattach{PreviousWorkerID: nw.id, ReattachToken: nw.token})
	nw.sync()
	old.expectQuiet()
	if owner := e.Functions()["f::g"]; owner != old.id || len(e.Workers()) != 2 {
		t.Fatalf("old connection affected: owner %s, workers %d", owner, len(e.Workers()))
	}
}

func TestReattachAcceptsOtherUUIDSpellings(t *testing.T) {
	e := NewEngine(t)
	old := dial(t, e)
	u := wire.MustParseUUID(old.id)
	nw := dial(t, e)
	nw.send(&wire.Reattach{PreviousWorkerID: "{" + u.String() + "}", ReattachToken: old.token})
	nw.sync()
	old.waitClosed()
}

func TestDropWorkerClosesWithoutCloseFrameAndCleansUp(t *testing.T) {
	e := NewEngine(t)
	w := dial(t, e)
	w.register("f::g")
	w.sync()
	if e.DropWorker("nobody") {
		t.Fatal("DropWorker of an unknown id")
	}
	e.DropWorker(w.id)
	err := w.waitClosed()
	if !websocket.IsCloseError(err, websocket.CloseAbnormalClosure) { // 1006: EOF without a Close frame
		t.Fatalf("got %v", err)
	}
	if err := e.WaitFunctionGone(ctxT(t), "f::g"); err != nil {
		t.Fatal(err)
	}
}

func TestStallWorkerSilencesTheConnectionWithoutCleanup(t *testing.T) {
	e := NewEngine(t)
	w, c := dial(t, e), dial(t, e)
	w.register("f::g")
	w.sync()
	if !e.StallWorker(w.id) {
		t.Fatal("StallWorker: not connected")
	}
	w.send(&wire.Ping{})
	w.ws.WriteControl(websocket.PingMessage, []byte("x"), timeNowPlus())
	w.send(&wire.UnregisterFunction{ID: "f::g"}) // not processed
	id := c.call("f::g", `{}`)                   // queued, never written
	c.expectQuiet()
	if owner := e.Functions()["f::g"]; owner != w.id {
		t.Fatal("a stalled worker's frames were processed")
	}
	select {
	case f := <-w.frames:
		t.Fatalf("a stalled worker got %d %s", f.typ, f.data)
	default:
	}
	// Only when the socket really closes does the cleanup run.
	w.close()
	r := expectMsg[*wire.InvocationResult](t, c)
	if r.InvocationID != id || r.Error == nil || r.Error.Code != "invocation_stopped" {
		t.Fatalf("caller got %s", wire.Encode(r))
	}
}

func TestRestartWipesStateAndListensOnTheSameAddress(t *testing.T) {
	e := NewEngine(t)
	w := dial(t, e)
	w.register("f::g")
	w.sync()
	url, addr := e.URL, e.Addr
	if err := e.Restart(); err != nil {
		t.Fatal(err)
	}
	w.waitClosed()
	if e.URL != url || e.Addr != addr {
		t.Fatalf("address changed: %s -> %s", addr, e.Addr)
	}
	if len(e.Functions()) != 0 || len(e.Workers()) != 0 {
		t.Fatalf("state survived: %v", e.Functions())
	}
	w2 := dial(t, e)
	if w2.id == w.id {
		t.Fatal("same worker id after restart")
	}
	// Reattach to a pre-restart id is ignored.
	w2.send(&wire.Reattach{PreviousWorkerID: w.id, ReattachToken: w.token})
	w2.expectQuiet()
}

func TestStopRefusesConnectionsUntilResume(t *testing.T) {
	e := NewEngine(t)
	w := dial(t, e)
	e.Stop()
	w.waitClosed()
	if _, _, err := websocket.DefaultDialer.Dial(e.URL, nil); err == nil {
		t.Fatal("dial succeeded while stopped")
	}
	if err := e.Resume(); err != nil {
		t.Fatal(err)
	}
	if err := e.Resume(); err != nil {
		t.Fatal("Resume while up:", err)
	}
	dial(t, e).expectQuiet()
	e.Close()
	e.Close()
	if err := e.Resume(); err != ErrClosed {
		t.Fatalf("Resume after Close: %v", err)
	}
}

func TestTelemetryFramesAreKeptFromRootAndOtel(t *testing.T) {
	e := NewEngine(t)
	w := dial(t, e)
	spans := `{"resourceSpans":[{"resource":{},"scopeSpans":[{"scope":{"name":"s"},"spans":[{"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","spanId":"00f067aa0ba902b7","name":"call","startTimeUnixNano":"1","endTimeUnixNano":"2","status":{}}]}]}]}`
	w.ws.WriteMessage(websocket.BinaryMessage, append([]byte("OTLP"), spans...))
	otel := dialURL(t, e.URL+"/otel", nil)
	otel.ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping"}`)) // ignored on /otel
	otel.ws.WriteMessage(websocket.BinaryMessage, append([]byte("OTLP"), spans...))
	otel.ws.WriteMessage(websocket.BinaryMessage, []byte(`LOGS{"resourceLogs":[{"resource":{},"scopeLogs":[{"scope":{},"logRecords":[{"body":{"stringValue":"hi"},"severityText":"INFO"}]}]}]}`))
	otel.ws.WriteMessage(websocket.BinaryMessage, []byte(`MTRC{"resourceMetrics":[{"resource":{},"scopeMetrics":[{"scope":{},"metrics":[{"name":"m","gauge":{"dataPoints":[{"asDouble":1.5}]}}]}]}]}`))
	otel.ws.WriteMessage(websocket.BinaryMessage, []byte(`OTLP{broken`))
	got, err := e.WaitSpans(ctxT(t), 2)
	if err != nil || got[0].Name != "call" {
		t.Fatalf("Spans = %+v %v", got, err)
	}
	if logs, err := e.WaitLogs(ctxT(t), 1); err != nil || logs[0].Body.String() != "hi" {
		t.Fatalf("Logs = %+v %v", logs, err)
	}
	if ms, err := e.WaitMetrics(ctxT(t), 1); err != nil || ms[0].Name != "m" {
		t.Fatalf("Metrics = %+v %v", ms, err)
	}
	if err := e.waitFor(ctxT(t), func() bool { return e.TelemetryFrames(wire.TelemetryTraces) == 3 }); err != nil {
		t.Fatal("broken frame not counted")
	}
	if len(e.Workers()) != 1 {
		t.Fatal("the /otel connection became a worker")
	}
	select {
	case f := <-otel.frames:
		t.Fatalf("/otel got %s", f.data)
	default:
	}
	w.expectQuiet()
}

func TestTelemetryIsBounded(t *testing.T) {
	e := NewEngine(t, WithTelemetryLimit(2))
	otel := dialURL(t, e.URL+"/otel", nil)
	for _, n := range []string{"a", "b", "c"} {
		otel.ws.WriteMessage(websocket.BinaryMessage, []byte(`MTRC{"resourceMetrics":[{"resource":{},"scopeMetrics":[{"scope":{},"metrics":[{"name":"`+n+`"}]}]}]}`))
	}
	if err := e.waitFor(ctxT(t), func() bool { return e.TelemetryFrames(wire.TelemetryMetrics) == 3 }); err != nil {
		t.Fatal(err)
	}
	if ms := e.Metrics(); len(ms) != 2 || ms[0].Name != "b" {
		t.Fatalf("Metrics = %+v", ms)
	}
}

func TestOutboundQueueBackPressuresTheSender(t *testing.T) {
	// A handler that does not read: with a small queue, the caller's
	// calls wait instead of piling up, and nothing is lost once the
	// handler reads again.
	e := NewEngine(t, WithOutboundLimits(4, 1<<20, testTimeout))
	h, c := dial(t, e), dial(t, e)
	h.register("f::g")
	waitFn(t, e, "f::g")
	const n = 2000
	payload := json.RawMessage(`{"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`)
	go func() {
		for range n {
			c.ws.WriteMessage(websocket.TextMessage, wire.Encode(&wire.InvokeFunction{InvocationID: wire.NewUUID(), HasInvocationID: true, FunctionID: "f::g", Data: payload}))
		}
	}()
	for range n {
		expectMsg[*wire.InvokeFunction](t, h)
	}
}

func TestNonUpgradeRequestOnRootIsRejected(t *testing.T) {
	e := NewEngine(t)
	resp, err := http.Get("http://" + e.Addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest { // not a WebSocket upgrade
		t.Fatalf("status %d", resp.StatusCode)
	}
}

func timeNowPlus() time.Time { return time.Now().Add(time.Second) }

// At shutdown the engine sends /otel connections a Close with no status
// code and drops worker connections without one.
func TestStopClosesOtelWithACloseFrameAndDropsWorkers(t *testing.T) {
	e := NewEngine(t)
	w := dial(t, e)
	otel := dialURL(t, e.URL+"/otel", nil)
	otel.ws.WriteMessage(websocket.BinaryMessage, []byte(`LOGS{"resourceLogs":[]}`))
	if err := e.waitFor(ctxT(t), func() bool { return len(e.socks) == 2 }); err != nil {
		t.Fatal(err)
	}
	e.Stop()
	if err := otel.waitClosed(); !websocket.IsCloseError(err, websocket.CloseNoStatusReceived) {
		t.Fatalf("/otel: %v", err)
	}
	if err := w.waitClosed(); !websocket.IsCloseError(err, websocket.CloseAbnormalClosure) {
		t.Fatalf("/: %v", err)
	}
}
