package interop_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/connection/wire"
	"github.com/iii-go/iii/test/iiitest"
)

// rustError is how the Rust program prints an error from trigger(): the
// iii_sdk::Error variant, the wire code, message and stack of a remote
// error, and the Display text.
type rustError struct {
	Kind       string  `json:"kind"`
	Code       *string `json:"code"`
	Message    *string `json:"message"`
	Stacktrace *string `json:"stacktrace"`
	Display    string  `json:"display"`
}

// rustResult is a caller / list "result" event of the Rust program.
type rustResult struct {
	Call       string          `json:"call"`
	FunctionID string          `json:"function_id"`
	OK         bool            `json:"ok"`
	Result     json.RawMessage `json:"result"`
	Error      *rustError      `json:"error"`
}

func rustCallResult(t testing.TB, p *proc, label string) rustResult {
	t.Helper()
	var r rustResult
	p.wait(ev("result", "call", label)).decode(t, &r)
	return r
}

// requireRustError fails unless r is a remote error with code and message,
// and returns its stack (nil when the wire error had none).
func requireRustError(t testing.TB, r rustResult, code, message string) *string {
	t.Helper()
	if r.OK || r.Error == nil {
		t.Fatalf("call %s of %s: ok, result %s; want error %s", r.Call, r.FunctionID, r.Result, code)
	}
	e := r.Error
	if e.Kind != "remote" || e.Code == nil || *e.Code != code || e.Message == nil || *e.Message != message ||
		e.Display != fmt.Sprintf("remote error (%s): %s", code, message) {
		t.Fatalf("call %s of %s: error %s; want remote %s %q", r.Call, r.FunctionID, jsonText(e), code, message)
	}
	return e.Stacktrace
}

// rustWorkerID waits for the Rust program's "ready" and returns the id the
// double gave its connection. The Rust SDK keeps its worker id private, so
// the connection is found by the process id the SDK reported in
// engine::workers::register (the last frame it sends on connect).
func rustWorkerID(t testing.TB, eng *iiitest.Engine, p *proc, not ...string) string {
	t.Helper()
	p.wait(ev("ready"))
	var id string
	poll(t, p.name+"'s engine::workers::register", func() bool {
		for _, w := range eng.Workers() {
			if w.PID == p.cmd.Process.Pid && !slices.Contains(not, w.ID) {
				id = w.ID
				return true
			}
		}
		return false
	})
	return id
}

func TestGoWorkerCallsRustWorker(t *testing.T) {
	eng := routingEngine(t, interopQueue())
	worker := startRust(t, eng.URL, "worker",
		"FUNCTIONS=interop::echo,interop::fail,interop::error,interop::panic,interop::void",
		"FAIL_CODE=E_RUST", "FAIL_MESSAGE=rust says no")
	eng.workerID(worker)
	w := goWorker(t, eng.URL, "interop-go-caller")
	ctx := testCtx(t)

	// Awaited call with metadata: the Rust handler saw the payload plus the
	// engine's _caller_worker_id, and the metadata beside it.
	type order struct {
		SKU  string   `json:"sku"`
		Qty  int      `json:"qty"`
		Tags []string `json:"tags"`
	}
	raw, err := w.Trigger(ctx, iii.TriggerRequest{FunctionID: "interop::echo",
		Payload: order{SKU: "A-1", Qty: 2, Tags: []string{"x", "ü"}}, Metadata: map[string]any{"origin": "go", "attempt": 1}})
	if err != nil {
		t.Fatalf("Trigger interop::echo: %v", err)
	}
	input := `{"sku":"A-1","qty":2,"tags":["x","ü"],"_caller_worker_id":"` + w.WorkerID() + `"}`
	requireJSON(t, "echo result", raw, json.RawMessage(`{"input":`+input+`,"metadata":{"origin":"go","attempt":1}}`))
	var seen invoked
	worker.wait(ev("invoked", "function_id", "interop::echo")).decode(t, &seen)
	requireJSON(t, "Rust handler input", seen.Input, json.RawMessage(input))

	// iii.Call decodes into a Go type; no metadata reaches Rust as None.
	type echoed struct {
		Input    order           `json:"input"`
		Metadata json.RawMessage `json:"metadata"`
	}
	typed, err := iii.Call[echoed](ctx, w, "interop::echo", order{SKU: "B-2", Qty: 5})
	if err != nil || typed.Input.SKU != "B-2" || typed.Input.Qty != 5 || string(typed.Metadata) != "null" {
		t.Fatalf("Call[echoed]: %+v, %v", typed, err)
	}

	// Void: returns at once, and the Rust handler still runs with payload and metadata.
	if res, err := w.Trigger(ctx, iii.TriggerRequest{FunctionID: "interop::void", Payload: map[string]any{"fire": "and forget"},
		Action: iii.Void(), Metadata: map[string]any{"void": true}}); err != nil || res != nil {
		t.Fatalf("void Trigger: %s, %v", res, err)
	}
	worker.wait(ev("void", "function_id", "interop::void")).decode(t, &seen)
	requireJSON(t, "void input", seen.Input, json.RawMessage(`{"fire":"and forget","_caller_worker_id":"`+w.WorkerID()+`"}`))
	requireJSON(t, "void metadata", seen.Metadata, json.RawMessage(`{"void":true}`))

	if eng.hasQueue() {
		// Enqueued: the receipt at once, and the job runs the Rust handler.
		raw, err = w.Trigger(ctx, iii.TriggerRequest{FunctionID: "interop::echo", Payload: map[string]any{"queued": 1}, Action: iii.Enqueue("interop-q")})
		var receipt struct {
			MessageReceiptID string `json:"messageReceiptId"`
		}
		if err != nil || json.Unmarshal(raw, &receipt) != nil {
			t.Fatalf("enqueue: %s, %v", raw, err)
		}
		if _, err := wire.ParseUUID(receipt.MessageReceiptID); err != nil {
			t.Fatalf("enqueue receipt %s: %v", raw, err)
		}
		worker.wait(ev("invoked", "function_id", "interop::echo", "input", map[string]any{"queued": 1}))
	}

	// An Error::Remote from the handler keeps its code, with no stack.
	_, err = iii.Call[json.RawMessage](ctx, w, "interop::fail", nil)
	var re *iii.RemoteError
	if !errors.As(err, &re) || re.Code != "E_RUST" || re.Message != "rust says no" || re.FunctionID != "interop::fail" || re.Stacktrace != "" {
		t.Fatalf("interop::fail: %v (%+v)", err, re)
	}
	// Any other error is invocation_failed with the error's Display text and
	// a backtrace the SDK captured.
	_, err = iii.Call[json.RawMessage](ctx, w, "interop::error", nil)
	if !errors.As(err, &re) || re.Code != iii.CodeInvocationFailed || re.Message != "handler error: rust says no" || re.Stacktrace == "" {
		t.Fatalf("interop::error: %v (%+v)", err, re)
	}

	// A panicking handler: the Rust SDK 0.22.1 runs it in a task whose panic
	// it never turns into a result (see rust/NOTES.md), so the call gets no
	// answer at all; the caller's own deadline ends it. The worker survives.
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	_, err = iii.Call[json.RawMessage](short, w, "interop::panic", nil)
	cancel()
	if !errors.Is(err, iii.ErrTimeout) {
		t.Fatalf("interop::panic: %v; want the caller's timeout (the Rust SDK sends no result for a panic)", err)
	}
	worker.wait(ev("invoked", "function_id", "interop::panic"))
	if _, err := iii.Call[json.RawMessage](ctx, w, "interop::echo", "after the panic"); err != nil {
		t.Fatalf("interop::echo after the panic: %v", err)
	}

	// A function nobody registered: function_not_found from the engine.
	_, err = iii.Call[json.RawMessage](ctx, w, "interop::missing", nil)
	if !errors.As(err, &re) || re.Code != iii.CodeFunctionNotFound || re.Message != "Function interop::missing not found" {
		t.Fatalf("interop::missing: %v", err)
	}
	if code := worker.stop(); code != 0 {
		t.Fatalf("Rust worker exited with %d", code)
	}
}

func TestRustWorkerCallsGoWorker(t *testing.T) {
	eng := routingEngine(t, interopQueue())
	w := goWorker(t, eng.URL, "interop-go-handler")
	calls := goFunctionsForCallers(t, eng, w)

	payload := `{"order":"A-1","qty":2,"note":"ünï ✓"}`
	metadata := `{"origin":"rust-caller","tenant":"t1"}`
	queue := eng.queueEnv("interop-q")
	caller := startRust(t, eng.URL, "caller", append([]string{"PAYLOAD=" + payload, "METADATA=" + metadata,
		"ECHO_FN=gointerop::echo", "VOID_FN=gointerop::void", "FAIL_FN=gointerop::fail", "PANIC_FN=gointerop::panic"}, queue...)...)
	callerID := eng.workerID(caller)
	requireGoEchoAndVoid(t, caller, calls, callerID, payload, metadata)

	// The Go InvocationError's code reaches Rust as Error::Remote unchanged.
	if st := requireRustError(t, rustCallResult(t, caller, "fail"), "E_GO", "go handler refused the order"); st != nil {
		t.Fatalf("E_GO carries a stack %q", *st)
	}
	// A Go panic: invocation_failed with the panic value only; the Go stack
	// stays in the worker's log unless InitOptions.SendPanicStacks is set.
	st := requireRustError(t, rustCallResult(t, caller, "panic"), "invocation_failed", "panic: go handler exploded")
	if st != nil {
		t.Fatalf("panic stacktrace %q reached another worker", *st)
	}
	if st := requireRustError(t, rustCallResult(t, caller, "missing"), "function_not_found", "Function interop::missing not found"); st != nil {
		t.Fatalf("function_not_found carries a stack %q", *st)
	}

	if queue != nil { // see hasQueue
		// Enqueued from Rust: the receipt, then the Go handler runs the job.
		requireGoQueuedCall(t, caller, calls, payload)
	}
	caller.wait(ev("done"))
	caller.waitExit()
}

// rustBindingID returns the id of the binding that worker bound, as the
// double received it (the Rust SDK does not expose it).
func rustBindingID(t testing.TB, eng *iiitest.Engine, workerID, functionID string) string {
	t.Helper()
	var id string
	poll(t, "the binding of "+functionID, func() bool {
		for _, m := range eng.Received(workerID) {
			if rt, ok := m.(*wire.RegisterTrigger); ok && rt.FunctionID == functionID {
				id = rt.ID
				return true
			}
		}
		return false
	})
	return id
}

func TestGoTriggerProviderServesARustBinder(t *testing.T) {
	eng := doubleEngine(t)
	g := provideGoTicker(t, eng.URL, "Rust", 4)
	binder := startTickedBinder(t, eng.URL, rustSDK)
	id := rustBindingID(t, eng, rustWorkerID(t, eng, binder), "interop::ticked")
	g.requireBindingFires(t, binder, id, rustSDK)

	// A config the Go provider cannot decode is refused; the Rust SDK only
	// logs the refusal (the program turns that log record into an event).
	bad := startRust(t, eng.URL, "trigger-binder", "TRIGGER_TYPE=gointerop::ticker", "FUNCTION_ID=interop::ticked-bad",
		`CONFIG={"interval_ms":"often"}`)
	badID := rustBindingID(t, eng, rustWorkerID(t, eng, bad), "interop::ticked-bad")
	var refused struct {
		ID          string `json:"id"`
		TriggerType string `json:"trigger_type"`
		Code        string `json:"code"`
		Message     string `json:"message"`
	}
	bad.wait(ev("trigger_registration_failed")).decode(t, &refused)
	if refused.ID != badID || refused.TriggerType != "gointerop::ticker" || refused.Code != iii.CodeTriggerRegistrationFailed ||
		!strings.Contains(refused.Message, "interval_ms") {
		t.Fatalf("refusal reported to Rust as %+v; want binding %s and a message about interval_ms", refused, badID)
	}

	// A Rust binder that unbinds explicitly: its unregistertrigger (with
	// the trigger type) reaches the Go provider.
	quitter := startRust(t, eng.URL, "trigger-binder", "TRIGGER_TYPE=gointerop::ticker", "FUNCTION_ID=interop::ticked-once",
		`CONFIG={"interval_ms":1}`, "UNREGISTER_AFTER_MS=0")
	quitID := rustBindingID(t, eng, rustWorkerID(t, eng, quitter), "interop::ticked-once")
	quitter.wait(ev("unbound"))
	for _, want := range []struct {
		ch   chan iii.TriggerBinding[tickConfig]
		what string
	}{{g.prov.registered, "registration"}, {g.prov.unregistered, "unregistration"}} {
		if b := recv(t, "the quitter's "+want.what, want.ch); b.ID != quitID {
			t.Fatalf("Go provider got %s %+v, want binding %s", want.what, b, quitID)
		}
	}

	// When the Rust binder leaves, the Go provider is told to stop.
	if code := binder.stop(); code != 0 {
		t.Fatalf("binder exited with %d", code)
	}
	if u := recv(t, "unregistration", g.prov.unregistered); u.ID != id {
		t.Fatalf("Go provider unregistered %+v, want %s", u, id)
	}
}

func TestRustTriggerProviderServesAGoBinder(t *testing.T) {
	eng := routingEngine(t)
	provider := startRust(t, eng.URL, "trigger-provider", "TRIGGER_TYPE=interop::ticker", "FIRE_COUNT=2")
	providerID := eng.workerID(provider)
	b := bindGo(t, eng.URL, provider, "Rust")
	for k := 1; k <= 2; k++ {
		b.requireFire(t, k, providerID)
	}
	b.requireFired(t, provider, 2)

	// The Rust provider's refusal reaches the Go binding as a TriggerError;
	// the message is the Rust error's Display text.
	b.requireRefusal(t, "handler error: ")

	// Unregistering from Go tells the Rust provider (only the id: the SDK
	// fills function_id with "" and config with null).
	b.unbind(t, provider, 1)
	if code := provider.stop(); code != 0 {
		t.Fatalf("Rust provider exited with %d", code)
	}
}
