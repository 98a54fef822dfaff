package interop_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/connection/wire"
	"github.com/iii-go/iii/test/iiitest"
)

// goWorker connects a worker of this SDK to eng; it is shut down when the
// test ends (after the scripts started later have stopped).
func goWorker(t *testing.T, eng *iiitest.Engine, name string) *iii.III {
	t.Helper()
	w := iii.RegisterWorker(eng.URL, iii.InitOptions{Metadata: &iii.WorkerMetadata{Name: name}})
	t.Cleanup(w.Shutdown)
	if err := w.WaitConnected(testCtx(t)); err != nil {
		t.Fatalf("WaitConnected: %v", err)
	}
	return w
}

func TestGoWorkerCallsNodeWorker(t *testing.T) {
	t.Parallel()
	eng := iiitest.NewEngine(t)
	// OTel on, as the Node SDK runs by default: a second socket to /otel.
	worker := startScript(t, eng.URL, "worker.mjs", "FUNCTIONS=interop::echo,interop::fail,interop::void",
		"FAIL_MESSAGE=node says no", "OTEL_ENABLED=true")
	readyID(t, worker)
	w := goWorker(t, eng, "interop-go-caller")
	ctx := testCtx(t)

	// Awaited call with metadata, result decoded into a Go type: the Node
	// handler saw the payload (plus the engine's _caller_worker_id) and the
	// metadata.
	type order struct {
		SKU  string   `json:"sku"`
		Qty  int      `json:"qty"`
		Tags []string `json:"tags"`
	}
	type echoed struct {
		Input struct {
			order
			Caller string `json:"_caller_worker_id"`
		} `json:"input"`
		Metadata map[string]any `json:"metadata"`
	}
	raw, err := w.Trigger(ctx, iii.TriggerRequest{
		FunctionID: "interop::echo",
		Payload:    order{SKU: "A-1", Qty: 2, Tags: []string{"x", "ü"}},
		Metadata:   map[string]any{"origin": "go", "attempt": 1},
	})
	if err != nil {
		t.Fatalf("Trigger interop::echo: %v", err)
	}
	var got echoed
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatalf("echo result %s: %v", raw, err)
	}
	if got.Input.SKU != "A-1" || got.Input.Qty != 2 || strings.Join(got.Input.Tags, ",") != "x,ü" || got.Input.Caller != w.WorkerID() {
		t.Fatalf("Node handler input as echoed: %s", raw)
	}
	requireJSON(t, "metadata seen by the Node handler", got.Metadata, map[string]any{"origin": "go", "attempt": 1})
	var seen invoked
	worker.wait(ev("invoked", "function_id", "interop::echo")).decode(t, &seen)
	requireJSON(t, "Node handler input", seen.Input, json.RawMessage(
		`{"sku":"A-1","qty":2,"tags":["x","ü"],"_caller_worker_id":"`+w.WorkerID()+`"}`))

	// iii.Call decodes the result into the type asked for.
	typed, err := iii.Call[echoed](ctx, w, "interop::echo", order{SKU: "B-2", Qty: 5})
	if err != nil || typed.Input.SKU != "B-2" || typed.Input.Qty != 5 || typed.Metadata != nil {
		t.Fatalf("Call[echoed]: %+v, %v", typed, err)
	}

	// A void call returns at once and still runs the Node handler.
	if res, err := w.Trigger(ctx, iii.TriggerRequest{FunctionID: "interop::void", Payload: map[string]any{"fire": "and forget"},
		Action: iii.Void(), Metadata: map[string]any{"void": true}}); err != nil || res != nil {
		t.Fatalf("void Trigger: %s, %v", res, err)
	}
	worker.wait(ev("void", "function_id", "interop::void")).decode(t, &seen)
	requireJSON(t, "void input", seen.Input, json.RawMessage(`{"fire":"and forget","_caller_worker_id":"`+w.WorkerID()+`"}`))
	requireJSON(t, "void metadata", seen.Metadata, json.RawMessage(`{"void":true}`))

	// A Node handler's throw is a *RemoteError with code invocation_failed,
	// the message and the JavaScript stack.
	_, err = iii.Call[json.RawMessage](ctx, w, "interop::fail", map[string]any{"please": "fail"})
	var re *iii.RemoteError
	if !errors.As(err, &re) {
		t.Fatalf("interop::fail: %v (%T), want *iii.RemoteError", err, err)
	}
	if re.Code != iii.CodeInvocationFailed || re.Message != "node says no" || re.FunctionID != "interop::fail" ||
		!strings.HasPrefix(re.Stacktrace, "Error: node says no\n") || !strings.Contains(re.Stacktrace, "worker.mjs") {
		t.Fatalf("interop::fail: %+v", re)
	}
	if iii.ErrorCode(err) != iii.CodeInvocationFailed {
		t.Fatalf("ErrorCode = %q", iii.ErrorCode(err))
	}

	// A function nobody registered: function_not_found from the engine.
	_, err = iii.Call[json.RawMessage](ctx, w, "interop::missing", nil)
	if !errors.As(err, &re) || re.Code != iii.CodeFunctionNotFound || re.Message != "Function interop::missing not found" {
		t.Fatalf("interop::missing: %v", err)
	}

	// The Node SDK traced each execution and sent the spans over /otel.
	for _, name := range []string{"execute interop::echo", "execute interop::fail", "execute interop::void"} {
		waitSpan(t, eng, name)
	}
}

// waitSpan waits until the double has received a span called name.
func waitSpan(t *testing.T, eng *iiitest.Engine, name string) {
	t.Helper()
	ctx := testCtx(t)
	for n := 1; ; n++ {
		spans, err := eng.WaitSpans(ctx, n)
		if err != nil {
			t.Fatalf("no span %q among %d received: %v", name, len(eng.Spans()), err)
		}
		if slices.ContainsFunc(spans, func(s wire.Span) bool { return s.Name == name }) {
			return
		}
		n = len(spans)
	}
}

func TestNodeWorkerCallsGoWorker(t *testing.T) {
	t.Parallel()
	eng := iiitest.NewEngine(t)
	w := goWorker(t, eng, "interop-go-handler")

	type call struct {
		input    json.RawMessage
		metadata json.RawMessage
		caller   string
	}
	calls := make(chan call, 8)
	record := func(ctx context.Context, in json.RawMessage) {
		inv, ok := iii.InvocationFromContext(ctx)
		if !ok {
			t.Errorf("handler context without an invocation")
			return
		}
		calls <- call{input: in, metadata: inv.Metadata, caller: inv.CallerWorkerID()}
	}
	type reply struct {
		Input    json.RawMessage `json:"input"`
		Metadata json.RawMessage `json:"metadata"`
		Caller   string          `json:"caller"`
		Runtime  string          `json:"runtime"`
	}
	must := func(_ *iii.FunctionRef, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(iii.RegisterFunction(w, "gointerop::echo", func(ctx context.Context, in json.RawMessage) (reply, error) {
		record(ctx, in)
		inv, _ := iii.InvocationFromContext(ctx)
		return reply{Input: in, Metadata: inv.Metadata, Caller: inv.CallerWorkerID(), Runtime: "go"}, nil
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

	// caller.mjs makes its four calls in order: echo, void, fail, and (under
	// the label "missing") the panicking function.
	payload := `{"order":"A-1","qty":2,"note":"ünï ✓"}`
	metadata := `{"origin":"node-caller","tenant":"t1"}`
	caller := startScript(t, eng.URL, "caller.mjs", "PAYLOAD="+payload, "METADATA="+metadata,
		"ECHO_FN=gointerop::echo", "VOID_FN=gointerop::void", "FAIL_FN=gointerop::fail", "MISSING_FN=gointerop::panic")
	callerID := readyID(t, caller)
	withCaller := func(extra string) json.RawMessage {
		return json.RawMessage(strings.TrimSuffix(payload, "}") + extra + `,"_caller_worker_id":"` + callerID + `"}`)
	}

	// The Go handler got the payload, the metadata and the caller's id, and
	// its typed result reached Node unchanged.
	echo := result(t, caller, "echo")
	if !echo.OK {
		t.Fatalf("gointerop::echo: %+v", echo.Error)
	}
	var r reply
	if err := json.Unmarshal(echo.Result, &r); err != nil {
		t.Fatalf("echo result %s: %v", echo.Result, err)
	}
	requireJSON(t, "Go handler input", r.Input, withCaller(""))
	requireJSON(t, "Go handler metadata", r.Metadata, json.RawMessage(metadata))
	if r.Caller != callerID || r.Runtime != "go" {
		t.Fatalf("echo result %s; want caller %s", echo.Result, callerID)
	}
	c := <-calls
	requireJSON(t, "recorded input", c.input, withCaller(""))

	// Void: Node resolves at once; the Go handler still runs, with metadata.
	void := result(t, caller, "void")
	if !void.OK || string(void.Result) != "null" {
		t.Fatalf("void: %+v", void)
	}
	select {
	case c = <-calls:
	case <-testCtx(t).Done():
		t.Fatal("the Go void handler never ran")
	}
	requireJSON(t, "void input", c.input, withCaller(`,"void":true`))
	requireJSON(t, "void metadata", c.metadata, json.RawMessage(metadata))
	if c.caller != callerID {
		t.Fatalf("void caller %q, want %q", c.caller, callerID)
	}

	// An InvocationError's code reaches the Node caller unchanged.
	fail := requireError(t, result(t, caller, "fail"), "E_GO", "go handler refused the order")
	if fail.Stacktrace != nil {
		t.Fatalf("E_GO carries a stack %q", *fail.Stacktrace)
	}

	// A panic is invocation_failed with the panic value and the Go stack.
	panicked := requireError(t, result(t, caller, "missing"), "invocation_failed", "panic: go handler exploded")
	if panicked.Stacktrace == nil || !strings.Contains(*panicked.Stacktrace, "goroutine ") ||
		!strings.Contains(*panicked.Stacktrace, "crosslang_test.go") {
		t.Fatalf("panic stacktrace %v; want the Go stack of the handler", panicked.Stacktrace)
	}
	caller.waitExit()

	// The panic hurt nothing else: the Go worker still serves calls.
	res, errb, err := eng.Invoke(testCtx(t), "gointerop::echo", json.RawMessage(`{"after":"panic"}`))
	if err != nil || errb != nil {
		t.Fatalf("gointerop::echo after the panic: %v %+v", err, errb)
	}
	requireJSON(t, "echo after the panic", res, json.RawMessage(`{"input":{"after":"panic"},"metadata":null,"caller":"","runtime":"go"}`))
}
