package iii_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/test/iiitest"
)

// livenessOptions are short keepalive settings for the liveness tests.
func livenessOptions() iii.InitOptions {
	o := fastOptions()
	o.PingInterval = 100 * time.Millisecond
	o.IdleTimeout = 500 * time.Millisecond
	return o
}

// flood makes 1 MiB Void calls while the worker is connected, and stops
// at the first disconnection (so that little is parked), or at the end of
// the test.
func flood(t *testing.T, w *iii.III) {
	payload := json.RawMessage(`"` + strings.Repeat("x", 1<<20) + `"`)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil && w.State() == iii.Connected {
			_, _ = w.Trigger(ctx, iii.TriggerRequest{FunctionID: "sink", Payload: payload, Action: iii.Void()})
		}
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })
}

// TestWorkerNoticesAStalledEngineUnderOutboundLoad: an engine that stops
// forwarding (a half-open connection, here a stalled proxy) while the
// worker writes 1 MiB frames as fast as it can. The writer blocks in the
// network write; the worker must still notice within its idle timeout and
// reconnect once the network is back.
func TestWorkerNoticesAStalledEngineUnderOutboundLoad(t *testing.T) {
	eng := iiitest.NewEngine(t)
	p := iiitest.NewProxy(t, eng.URL)
	states := make(chan iii.ConnectionState, 64)
	o := livenessOptions()
	o.OnStateChange = func(s iii.ConnectionState) {
		select {
		case states <- s:
		default:
		}
	}
	w := iii.RegisterWorker(p.URL, o)
	t.Cleanup(w.Shutdown)
	if err := w.WaitConnected(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	flood(t, w)
	p.Stall()
	waitState(t, states, iii.Reconnecting)
	p.Resume()
	waitState(t, states, iii.Connected)
	if p.Accepted() < 2 {
		t.Fatalf("the proxy accepted %d connections; want a reconnect", p.Accepted())
	}
}

// TestWorkerNoticesAnEngineThatStopsReading: the engine keeps sending
// (so the connection never looks idle) but stops reading. gorilla clears
// the write deadline before every frame; the worker's network writes must
// still fail after the idle timeout, and the worker reconnect.
func TestWorkerNoticesAnEngineThatStopsReading(t *testing.T) {
	var upgrades atomic.Int32
	stop := make(chan struct{})
	var handlers sync.WaitGroup
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		handlers.Add(1)
		defer handlers.Done()
		ws, err := (&websocket.Upgrader{}).Upgrade(rw, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		n := upgrades.Add(1)
		_ = ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"workerregistered","worker_id":"w`+string(rune('0'+n))+`"}`))
		if n > 1 {
			<-stop // the reconnect is what the test waits for
			return
		}
		// Never read; keep the connection busy with application pings,
		// which the worker answers without blocking its reader.
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				if ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping"}`)) != nil {
					return
				}
			case <-stop:
				return
			}
		}
	}))
	t.Cleanup(func() {
		close(stop)
		srv.CloseClientConnections()
		srv.Close()
		handlers.Wait()
	})
	w := iii.RegisterWorker("ws"+strings.TrimPrefix(srv.URL, "http"), livenessOptions())
	t.Cleanup(w.Shutdown)
	if err := w.WaitConnected(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	flood(t, w)
	waitFor(t, "a reconnect", func() bool { return upgrades.Load() >= 2 })
}

// TestUndecodableResultFailsTheCallAtOnce: a result frame that does not
// decode, but names one of the worker's pending calls, fails that call at
// once instead of leaving it to its timeout.
func TestUndecodableResultFailsTheCallAtOnce(t *testing.T) {
	var handlers sync.WaitGroup
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		handlers.Add(1)
		defer handlers.Done()
		ws, err := (&websocket.Upgrader{}).Upgrade(rw, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		_ = ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"workerregistered","worker_id":"w1"}`))
		for {
			_, b, err := ws.ReadMessage()
			if err != nil {
				return
			}
			var f struct {
				Type         string `json:"type"`
				InvocationID string `json:"invocation_id"`
				FunctionID   string `json:"function_id"`
			}
			if json.Unmarshal(b, &f) == nil && f.Type == "invokefunction" && f.FunctionID == "remote::fn" {
				// "error" must be an object: the frame does not decode.
				_ = ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"invocationresult","invocation_id":"`+f.InvocationID+`","function_id":"remote::fn","error":5}`))
			}
		}
	}))
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
		handlers.Wait()
	})
	w := iii.RegisterWorker("ws"+strings.TrimPrefix(srv.URL, "http"), fastOptions())
	t.Cleanup(w.Shutdown)
	if err := w.WaitConnected(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := w.Trigger(testCtx(t), iii.TriggerRequest{FunctionID: "remote::fn", Payload: 1, Timeout: time.Minute})
	if iii.ErrorCode(err) != "deserialization_error" {
		t.Fatalf("Trigger = %v after %v; want the call failed with deserialization_error", err, time.Since(start))
	}
}
