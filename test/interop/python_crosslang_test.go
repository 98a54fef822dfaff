package interop_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/connection/wire"
	"github.com/iii-go/iii/test/iiitest"
)

func TestGoWorkerCallsPythonWorker(t *testing.T) {
	eng := routingEngine(t)
	// OTel on, as the Python SDK runs by default: a second socket to /otel
	// (the SDK finds it through III_URL, not through the worker's address).
	worker := startPy(t, eng.URL, "worker.py",
		"FUNCTIONS=interop::echo,interop::syncecho,interop::fail,interop::coded,interop::void,interop::none",
		"FAIL_MESSAGE=python says no", "FAIL_CODE=E_PY", "OTEL_ENABLED=true")
	readyID(t, worker)
	w := goWorker(t, eng.URL, "interop-go-caller")
	ctx := testCtx(t)

	type order struct {
		SKU  string   `json:"sku"`
		Qty  int      `json:"qty"`
		Tags []string `json:"tags"`
		Note *string  `json:"note"`
	}
	type echoed struct {
		Input struct {
			order
			Caller string `json:"_caller_worker_id"`
		} `json:"input"`
		Metadata map[string]any `json:"metadata"`
	}
	// Awaited calls with metadata to the async and the plain (threaded)
	// handler: both see payload, _caller_worker_id and metadata.
	for _, fn := range []string{"interop::echo", "interop::syncecho"} {
		raw, err := w.Trigger(ctx, iii.TriggerRequest{
			FunctionID: fn,
			Payload:    order{SKU: "A-1", Qty: 2, Tags: []string{"x", "ü"}},
			Metadata:   map[string]any{"origin": "go", "attempt": 1},
		})
		if err != nil {
			t.Fatalf("Trigger %s: %v", fn, err)
		}
		var got echoed
		if err := json.Unmarshal(raw, &got); err != nil {
			t.Fatalf("%s result %s: %v", fn, raw, err)
		}
		if got.Input.SKU != "A-1" || got.Input.Qty != 2 || strings.Join(got.Input.Tags, ",") != "x,ü" || got.Input.Note != nil ||
			got.Input.Caller != w.WorkerID() {
			t.Fatalf("%s: Python handler input as echoed: %s", fn, raw)
		}
		requireJSON(t, fn+": metadata seen by the Python handler", got.Metadata, map[string]any{"origin": "go", "attempt": 1})
		var seen invoked
		worker.wait(ev("invoked", "function_id", fn)).decode(t, &seen)
		requireJSON(t, fn+": Python handler input", seen.Input, json.RawMessage(
			`{"sku":"A-1","qty":2,"tags":["x","ü"],"note":null,"_caller_worker_id":"`+w.WorkerID()+`"}`))
	}

	// iii.Call without metadata: the Python handler gets None.
	typed, err := iii.Call[echoed](ctx, w, "interop::echo", order{SKU: "B-2", Qty: 5})
	if err != nil || typed.Input.SKU != "B-2" || typed.Input.Qty != 5 || typed.Metadata != nil {
		t.Fatalf("Call[echoed]: %+v, %v", typed, err)
	}

	// A handler returning None: the SDK leaves "result" out; Go sees no result.
	if res, err := w.Trigger(ctx, iii.TriggerRequest{FunctionID: "interop::none", Payload: map[string]any{}}); err != nil || res != nil {
		t.Fatalf("interop::none: %s, %v; want no result", res, err)
	}

	// Void: returns at once and still runs the Python handler.
	if res, err := w.Trigger(ctx, iii.TriggerRequest{FunctionID: "interop::void", Payload: map[string]any{"fire": "and forget"},
		Action: iii.Void(), Metadata: map[string]any{"void": true}}); err != nil || res != nil {
		t.Fatalf("void Trigger: %s, %v", res, err)
	}
	var seen invoked
	worker.wait(ev("void", "function_id", "interop::void")).decode(t, &seen)
	requireJSON(t, "void input", seen.Input, json.RawMessage(`{"fire":"and forget","_caller_worker_id":"`+w.WorkerID()+`"}`))
	requireJSON(t, "void metadata", seen.Metadata, json.RawMessage(`{"void":true}`))

	// A raised exception is a *RemoteError invocation_failed with str(exc)
	// and the Python traceback.
	_, err = iii.Call[json.RawMessage](ctx, w, "interop::fail", map[string]any{"please": "fail"})
	var re *iii.RemoteError
	if !errors.As(err, &re) || re.Code != iii.CodeInvocationFailed || re.Message != "python says no" || re.FunctionID != "interop::fail" {
		t.Fatalf("interop::fail: %v", err)
	}
	requirePyStack(t, "interop::fail", &re.Stacktrace, "worker.py", "RuntimeError: python says no")
	// A raised iii.InvocationError loses its code on the way out of Python.
	_, err = iii.Call[json.RawMessage](ctx, w, "interop::coded", nil)
	if !errors.As(err, &re) || re.Code != iii.CodeInvocationFailed || re.Message != "E_PY: python says no" {
		t.Fatalf("interop::coded: %v", err)
	}

	_, err = iii.Call[json.RawMessage](ctx, w, "interop::missing", nil)
	if !errors.As(err, &re) || re.Code != iii.CodeFunctionNotFound || re.Message != "Function interop::missing not found" {
		t.Fatalf("interop::missing: %v", err)
	}

	// The Python SDK traced each execution and sent the spans over /otel.
	if eng.double != nil { // only the double shows what it received
		for _, name := range []string{"execute interop::echo", "execute interop::syncecho", "execute interop::fail", "execute interop::void"} {
			waitSpan(t, eng.double, name)
		}
	}
}

// goFunctionsForCallers registers the Go functions the Node, Python and Rust
// callers call: gointerop::echo (returns input, metadata and caller), gointerop::void,
// gointerop::fail (an InvocationError with code E_GO) and gointerop::panic.
// Each call of echo and void is sent on the returned channel.
func goFunctionsForCallers(t *testing.T, eng functionWaiter, w *iii.III) <-chan goCall {
	t.Helper()
	calls := make(chan goCall, 8)
	record := func(ctx context.Context, in json.RawMessage) {
		inv, ok := iii.InvocationFromContext(ctx)
		if !ok {
			t.Errorf("handler context without an invocation")
			return
		}
		calls <- goCall{input: in, metadata: iii.MetadataFromContext(ctx), caller: inv.CallerWorkerID()}
	}
	must := func(_ *iii.FunctionRef, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(iii.RegisterFunction(w, "gointerop::echo", func(ctx context.Context, in json.RawMessage) (goReply, error) {
		record(ctx, in)
		inv, _ := iii.InvocationFromContext(ctx)
		return goReply{Input: in, Metadata: iii.MetadataFromContext(ctx), Caller: inv.CallerWorkerID(), Runtime: "go"}, nil
	}))
	must(iii.RegisterFunction(w, "gointerop::void", func(ctx context.Context, in json.RawMessage) (any, error) {
		record(ctx, in)
		return nil, nil
	}))
	must(iii.RegisterFunction(w, "gointerop::fail", func(ctx context.Context, in json.RawMessage) (any, error) {
		return nil, iii.NewInvocationError("E_GO", "go handler refused the order")
	}))
	must(iii.RegisterFunction(w, "gointerop::panic", func(ctx context.Context, in json.RawMessage) (any, error) {
		panic("go handler exploded")
	}))
	for _, id := range []string{"gointerop::echo", "gointerop::void", "gointerop::fail", "gointerop::panic"} {
		if err := eng.WaitFunction(testCtx(t), id); err != nil {
			t.Fatalf("WaitFunction(%s): %v", id, err)
		}
	}
	return calls
}

// goCall is one call a Go handler of goFunctionsForCallers saw.
type goCall struct {
	input    json.RawMessage
	metadata json.RawMessage
	caller   string
}

// goReply is what gointerop::echo returns.
type goReply struct {
	Input    json.RawMessage `json:"input"`
	Metadata json.RawMessage `json:"metadata"`
	Caller   string          `json:"caller"`
	Runtime  string          `json:"runtime"`
}

// requireGoEchoAndVoid checks the "echo" and "void" calls of the caller
// program caller (worker id callerID, started with PAYLOAD=payload and
// METADATA=metadata) of gointerop::echo and gointerop::void, and what the
// Go handlers saw (calls, from goFunctionsForCallers).
func requireGoEchoAndVoid(t *testing.T, caller *proc, calls <-chan goCall, callerID, payload, metadata string) {
	t.Helper()
	withCaller := func(extra string) json.RawMessage {
		return json.RawMessage(strings.TrimSuffix(payload, "}") + extra + `,"_caller_worker_id":"` + callerID + `"}`)
	}

	// The Go handler got the payload, the metadata and the caller's id, and
	// its typed result reached the caller unchanged.
	echo := outcome(t, caller, "echo")
	if !echo.OK {
		t.Fatalf("gointerop::echo: %s", echo.raw)
	}
	requireJSON(t, "echo result", echo.Result, json.RawMessage(`{"input":`+string(withCaller(""))+`,"metadata":`+metadata+
		`,"caller":"`+callerID+`","runtime":"go"}`))
	c := recv(t, "the echo call", calls)
	requireJSON(t, "recorded input", c.input, withCaller(""))
	if c.caller != callerID {
		t.Fatalf("echo caller %q, want %q", c.caller, callerID)
	}

	// Void: the caller gets nothing at once; the Go handler still runs, with
	// metadata.
	if void := outcome(t, caller, "void"); !void.OK || string(void.Result) != "null" {
		t.Fatalf("void: %s", void.raw)
	}
	c = recv(t, "the void call", calls)
	requireJSON(t, "void input", c.input, withCaller(`,"void":true`))
	requireJSON(t, "void metadata", c.metadata, json.RawMessage(metadata))
	if c.caller != callerID {
		t.Fatalf("void caller %q, want %q", c.caller, callerID)
	}
}

// requireGoQueuedCall checks a caller program's "enqueue" call of
// gointerop::echo (a receipt) and that the Go handler then ran the job with
// the payload.
func requireGoQueuedCall(t *testing.T, caller *proc, calls <-chan goCall, payload string) {
	t.Helper()
	enq := outcome(t, caller, "enqueue")
	var receipt iii.EnqueueResult
	if !enq.OK || json.Unmarshal(enq.Result, &receipt) != nil {
		t.Fatalf("enqueue: %s", enq.raw)
	}
	if _, err := wire.ParseUUID(receipt.MessageReceiptID); err != nil {
		t.Fatalf("enqueue receipt %s: %v", enq.Result, err)
	}
	c := recv(t, "the queued job", calls)
	var input map[string]any
	if err := json.Unmarshal(c.input, &input); err != nil {
		t.Fatal(err)
	}
	delete(input, "_caller_worker_id")
	requireJSON(t, "queued job's payload", input, json.RawMessage(payload))
}

func TestPythonWorkerCallsGoWorker(t *testing.T) {
	eng := routingEngine(t, interopQueue())
	w := goWorker(t, eng.URL, "interop-go-handler")
	calls := goFunctionsForCallers(t, eng, w)

	payload := `{"order":"A-1","qty":2,"note":"ünï ✓","gift":null}`
	metadata := `{"origin":"python-caller","tenant":"t1"}`
	queue := eng.queueEnv("interop-q")
	caller := startPy(t, eng.URL, "caller.py", append([]string{"PAYLOAD=" + payload, "METADATA=" + metadata,
		"ECHO_FN=gointerop::echo", "VOID_FN=gointerop::void", "FAIL_FN=gointerop::panic", "CODED_FN=gointerop::fail"}, queue...)...)
	callerID := readyID(t, caller)
	requireGoEchoAndVoid(t, caller, calls, callerID, payload, metadata)

	// A panic is invocation_failed with the panic value only: the Go stack
	// stays in the worker's log unless InitOptions.SendPanicStacks is set.
	panicked := requireError(t, result(t, caller, "fail"), "invocation_failed", "panic: go handler exploded")
	if panicked.Stacktrace != nil {
		t.Fatalf("panic stacktrace %q reached another worker", *panicked.Stacktrace)
	}
	// An InvocationError's code reaches Python's InvocationError unchanged.
	coded := requireError(t, result(t, caller, "coded"), "E_GO", "go handler refused the order")
	if coded.Stacktrace != nil {
		t.Fatalf("E_GO carries a stack %q", *coded.Stacktrace)
	}
	requireError(t, result(t, caller, "missing"), "function_not_found", "Function interop::missing not found")

	if queue != nil { // see hasQueue
		// Enqueued from Python to Go: the receipt, then the Go handler runs.
		requireGoQueuedCall(t, caller, calls, payload)
	}
	caller.waitExit()
}

func TestGoTriggerProviderServesAPythonBinder(t *testing.T) {
	eng := routingEngine(t)
	g := provideGoTicker(t, eng.URL, "Python", 8)
	binder := startTickedBinder(t, eng.URL, pythonSDK)
	var bound struct {
		ID string `json:"id"`
	}
	binder.wait(ev("bound")).decode(t, &bound)
	// Fired from Go, it runs the Python function with the binding's metadata.
	g.requireBindingFires(t, binder, bound.ID, pythonSDK)

	// A config that does not decode into the provider's type is refused, and
	// the Python binder hears of it.
	badID := requireBadConfigRefused(t, eng.URL, pythonSDK)

	// Unbinding from Python reaches the Go provider.
	unbinder := startPy(t, eng.URL, "trigger_binder.py", "TRIGGER_TYPE=gointerop::ticker", "FUNCTION_ID=interop::ticked-once",
		"UNREGISTER_AFTER_MS=0")
	var once struct {
		ID string `json:"id"`
	}
	unbinder.wait(ev("unbound")).decode(t, &once)
	for {
		u := recv(t, "explicit unregistration", g.prov.unregistered)
		if u.ID == once.ID {
			break
		}
		if u.ID != badID { // the refused binding may be unbound too
			t.Fatalf("Go provider unregistered %+v, want %s", u, once.ID)
		}
	}

	// When the Python binder leaves, the Go provider is told to stop.
	if code := binder.stop(); code != 0 {
		t.Fatalf("binder exited with %d", code)
	}
	for {
		u := recv(t, "unregistration", g.prov.unregistered)
		if u.ID == bound.ID {
			break
		}
		if u.ID != badID {
			t.Fatalf("Go provider unregistered %+v, want %s", u, bound.ID)
		}
	}
}

func TestPythonTriggerProviderServesAGoBinder(t *testing.T) {
	eng := doubleEngine(t)
	provider := startPy(t, eng.URL, "trigger_provider.py", "TRIGGER_TYPE=interop::ticker", "FIRE_COUNT=1")
	providerID := readyID(t, provider)
	b := bindGo(t, eng.URL, provider, "Python")
	b.requireFire(t, 1, providerID)
	b.requireFired(t, provider, 1)

	// The Python provider's refusal reaches the Go binding as a TriggerError.
	b.requireRefusal(t, "")

	// The Go worker's connection drops: the engine unbinds at the provider,
	// and the Go SDK's replay binds the same id again, which fires again.
	oldID := b.w.WorkerID()
	if !eng.DropWorker(oldID) {
		t.Fatalf("DropWorker(%s): not connected", oldID)
	}
	provider.wait(ev("unregistertrigger", "id", b.tr.ID()))
	provider.waitN(ev("registertrigger", "id", b.tr.ID()), 2)
	requireLaterEvent(t, provider, ev("unregistertrigger", "id", b.tr.ID()), ev("registertrigger", "id", b.tr.ID()))
	f := recv(t, "fire after the Go worker reconnected", b.fires)
	requireJSON(t, "fire after reconnect", f.input, json.RawMessage(
		`{"tick":1,"trigger_id":"`+b.tr.ID()+`","config":{"interval_ms":50},"_caller_worker_id":"`+providerID+`"}`))
	// The new id comes with the engine's workerregistered, which the
	// connection handles apart from the invocations of the same socket: the
	// fire may overtake it.
	for deadline := time.Now().Add(waitTimeout); b.w.WorkerID() == oldID; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the Go worker kept its worker id %s after reconnecting", oldID)
		}
	}

	// Unregistering from Go tells the Python provider.
	b.unbind(t, provider, 2)
}

func TestGoCallerReachesAPythonWorkerAgainAfterItReconnects(t *testing.T) {
	eng := routingEngine(t)
	// The double drops the Python worker's connection itself; an external
	// engine is reached through a proxy that resets it.
	pyURL := eng.URL
	var drop func(workerID string) bool
	if eng.double != nil {
		drop = eng.double.DropWorker
	} else {
		px := iiitest.NewProxy(t, eng.URL)
		pyURL = px.URL
		drop = func(string) bool { px.Cut(); return true }
	}
	worker := startPy(t, pyURL, "reconnect.py", "FUNCTION_ID=interop::reconnect-fn")
	var ready struct {
		WorkerID string `json:"worker_id"`
	}
	worker.wait(ev("ready")).decode(t, &ready)
	w := goWorker(t, eng.URL, "interop-go-caller")
	ctx := testCtx(t)
	type reply struct {
		PID      int    `json:"pid"`
		WorkerID string `json:"worker_id"`
	}
	before, err := iii.Call[reply](ctx, w, "interop::reconnect-fn", map[string]any{"n": 1})
	if err != nil || before.WorkerID != ready.WorkerID {
		t.Fatalf("call before the drop: %+v, %v", before, err)
	}
	if !drop(ready.WorkerID) {
		t.Fatalf("DropWorker(%s): not connected", ready.WorkerID)
	}
	var next struct {
		WorkerID string `json:"worker_id"`
	}
	worker.wait(ev("worker_id", "n", 2)).decode(t, &next)
	if next.WorkerID == ready.WorkerID {
		t.Fatalf("the Python worker kept its id %s across the reconnect", next.WorkerID)
	}
	// Once the replay has reached the engine, Go's next call gets there.
	if err := eng.WaitFunction(ctx, "interop::reconnect-fn"); err != nil {
		t.Fatal(err)
	}
	if eng.double != nil {
		poll(t, "interop::reconnect-fn on the new connection", func() bool {
			return eng.double.Functions()["interop::reconnect-fn"] == next.WorkerID
		})
	} else {
		// An external engine does not say which connection serves a
		// function: calls go to the old one until the engine retires it.
		poll(t, "interop::reconnect-fn on the new connection", func() bool {
			r, err := iii.Call[reply](ctx, w, "interop::reconnect-fn", map[string]any{"n": 2})
			return err == nil && r.WorkerID == next.WorkerID
		})
	}
	after, err := iii.Call[reply](ctx, w, "interop::reconnect-fn", map[string]any{"n": 2})
	if err != nil || after.WorkerID != next.WorkerID || after.PID != worker.cmd.Process.Pid {
		t.Fatalf("call after the reconnect: %+v, %v; want worker %s", after, err, next.WorkerID)
	}
}

func TestGoWriterStreams8MiBAndMessagesToAPythonReader(t *testing.T) {
	testGoWriterStreamsToAReader(t, pythonSDK, 8<<20, 7)
}

func TestPythonWriterStreams8MiBAndMessagesToAGoReader(t *testing.T) {
	testWriterStreamsToAGoReader(t, pythonSDK, 8<<20, 7)
}

func TestGoPassesChannelRefsToPythonFunctionsInPayloads(t *testing.T) {
	eng := routingEngine(t)
	py := startPy(t, eng.URL, "channel.py", "MODE=serve")
	readyID(t, py)
	goPassesChannelRefsInPayloads(t, eng, "Python")
	py.stop()
}

func TestPythonWorkerCallsNodeWorker(t *testing.T) {
	testWorkerCallsWorker(t, workerCalls{
		caller: pythonSDK, worker: nodeSDK,
		workerEnv: []string{"FUNCTIONS=interop::echo,interop::fail,interop::void", "FAIL_MESSAGE=node says no"},
		payload:   `{"hello":"node","list":[1,null,"ü"]}`,
		metadata:  `{"origin":"python"}`,
		fail:      nodeThrow("node says no"),
	})
}

func TestNodeWorkerCallsPythonWorker(t *testing.T) {
	testWorkerCallsWorker(t, workerCalls{
		caller: nodeSDK, worker: pythonSDK,
		workerEnv: []string{"FUNCTIONS=interop::echo,interop::fail,interop::void", "FAIL_MESSAGE=python says no"},
		payload:   `{"hello":"python","list":[1,null,"ü"]}`,
		metadata:  `{"origin":"node"}`,
		fail:      pythonRaise("python says no", "RuntimeError: python says no"),
	})
}

// The Python SDK connects with the websockets library's default max_size
// of 1 MiB for an incoming message (the engine accepts 64 MiB, the Node SDK
// 100 MiB): a larger frame makes the library close the connection (1009),
// so the call fails with invocation_stopped and the worker reconnects.
// Frames the Python SDK sends are not limited. See python/NOTES.md.
func TestGoCallsPythonWithFramesUpToTheSDKsOneMiBLimit(t *testing.T) {
	eng := routingEngine(t)
	worker := startPy(t, eng.URL, "worker.py", "FUNCTIONS=interop::echo")
	first := readyID(t, worker)
	w := goWorker(t, eng.URL, "interop-go-caller")
	ctx := testCtx(t)
	type echoed struct {
		Input struct {
			Big string `json:"big"`
		} `json:"input"`
	}

	// Just under 1 MiB in, about as much back out: fine.
	under := strings.Repeat("u", 1<<20-4096)
	got, err := iii.Call[echoed](ctx, w, "interop::echo", map[string]any{"big": under})
	if err != nil || got.Input.Big != under {
		t.Fatalf("echo of %d bytes: %d bytes back, %v", len(under), len(got.Input.Big), err)
	}

	// Over 1 MiB: the Python side drops the connection under the call.
	_, err = iii.Call[echoed](ctx, w, "interop::echo", map[string]any{"big": strings.Repeat("o", 1<<20+1)})
	var re *iii.RemoteError
	if !errors.As(err, &re) || re.Code != iii.CodeInvocationStopped {
		t.Fatalf("echo of just over 1 MiB: %v; want invocation_stopped", err)
	}
	// It reconnects under a new worker id and serves calls again.
	if eng.double != nil {
		poll(t, "interop::echo on a new connection", func() bool {
			owner := eng.double.Functions()["interop::echo"]
			return owner != "" && owner != first
		})
	}
	poll(t, "an echo after the reconnect", func() bool {
		got, err = iii.Call[echoed](ctx, w, "interop::echo", map[string]any{"big": "small"})
		return err == nil
	})
	if got.Input.Big != "small" {
		t.Fatalf("echo after the reconnect: %+v", got)
	}
}

// An engine restart (connections closed without Close frames, all state
// wiped) brings both a Python and a Go worker back: each reconnects,
// replays its registrations, and they call each other again (Go calls a
// Python function that calls a Go function).
func TestPythonAndGoWorkersCallEachOtherAgainAfterAnEngineRestart(t *testing.T) {
	eng := restartingEngine(t)
	py := startPy(t, eng.URL, "worker.py", "FUNCTIONS=interop::relay", "RELAY_FN=gointerop::hello")
	first := readyID(t, py)
	w := goWorker(t, eng.URL, "interop-go-restart")
	if _, err := iii.RegisterFunction(w, "gointerop::hello", func(ctx context.Context, in json.RawMessage) (map[string]any, error) {
		inv, _ := iii.InvocationFromContext(ctx)
		return map[string]any{"hello": "from go", "input": in, "caller": inv.CallerWorkerID()}, nil
	}); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	if err := eng.WaitFunction(ctx, "gointerop::hello"); err != nil {
		t.Fatal(err)
	}
	// relay calls the Python function, which calls the Go one, and returns
	// the id the Python worker's connection has (the caller the Go handler
	// saw): pyID if given.
	relay := func(n int, pyID string) string {
		t.Helper()
		raw, err := w.Trigger(ctx, iii.TriggerRequest{FunctionID: "interop::relay", Payload: map[string]any{"n": n}})
		if err != nil {
			t.Fatalf("relay %d: %v", n, err)
		}
		if pyID == "" {
			var got struct {
				Relayed struct {
					Caller string `json:"caller"`
				} `json:"relayed"`
			}
			if err := json.Unmarshal(raw, &got); err != nil {
				t.Fatalf("relay %d: %s: %v", n, raw, err)
			}
			pyID = got.Relayed.Caller
		}
		// The Python handler passed on its input, in which the engine
		// replaced _caller_worker_id (Go's id) with the Python worker's.
		requireJSON(t, fmt.Sprintf("relay %d", n), raw, json.RawMessage(fmt.Sprintf(
			`{"relayed":{"hello":"from go","input":{"n":%d,"_caller_worker_id":"%s"},"caller":"%s"}}`, n, pyID, pyID)))
		return pyID
	}
	relay(1, first)

	eng.restart()
	// Both replay onto the empty engine.
	for _, fn := range []string{"interop::relay", "gointerop::hello"} {
		if err := eng.WaitFunction(ctx, fn); err != nil {
			t.Fatalf("WaitFunction(%s) after the restart: %v", fn, err)
		}
	}
	second := relay(2, "")
	if second == first {
		t.Fatal("the Python worker kept its worker id across the restart")
	}
	if eng.double != nil && eng.double.Functions()["interop::relay"] != second {
		t.Fatalf("interop::relay is registered by %s, not by the Python worker's new connection %s",
			eng.double.Functions()["interop::relay"], second)
	}
}
