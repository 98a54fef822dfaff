package iii_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/test/iiitest"
)

type addReq struct {
	A int `json:"a"`
	B int `json:"b"`
}

type addResp struct {
	Sum int `json:"sum"`
}

// twoWorkers connects a handler worker and a caller worker to one engine.
func twoWorkers(t *testing.T) (eng *iiitest.Engine, handler, caller *iii.III) {
	t.Helper()
	eng = iiitest.NewEngine(t)
	handler = newWorker(t, eng, fastOptions())
	caller = newWorker(t, eng, fastOptions())
	return eng, handler, caller
}

func mustRegister[Req, Resp any](t *testing.T, eng *iiitest.Engine, w *iii.III, id string, h func(context.Context, Req) (Resp, error), opts ...iii.FunctionOption) *iii.FunctionRef {
	t.Helper()
	ref, err := iii.RegisterFunction(w, id, h, opts...)
	if err != nil {
		t.Fatalf("RegisterFunction(%s): %v", id, err)
	}
	if err := eng.WaitFunction(testCtx(t), id); err != nil {
		t.Fatalf("engine never saw %s: %v", id, err)
	}
	return ref
}

func TestAwaitedCallRoundTripsTypedPayloadAndMetadata(t *testing.T) {
	eng, handler, caller := twoWorkers(t)
	var seen atomic.Pointer[iii.Invocation]
	mustRegister(t, eng, handler, "math::add", func(ctx context.Context, r addReq) (addResp, error) {
		inv, _ := iii.InvocationFromContext(ctx)
		seen.Store(inv)
		return addResp{Sum: r.A + r.B}, nil
	})
	got, err := caller.Trigger(testCtx(t), iii.TriggerRequest{FunctionID: "math::add", Payload: addReq{2, 40}, Metadata: map[string]string{"tenant": "t1"}})
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != `{"sum":42}` {
		t.Fatalf("result %s", got)
	}
	inv := seen.Load()
	if inv == nil || string(inv.Metadata()) != `{"tenant":"t1"}` || inv.FunctionID() != "math::add" || len(inv.ID()) != 36 {
		t.Fatalf("invocation seen by the handler: %+v", inv)
	}
	if inv.CallerWorkerID() != caller.WorkerID() {
		t.Fatalf("caller worker id %q, want %q", inv.CallerWorkerID(), caller.WorkerID())
	}
	sum, err := iii.Call[addResp](testCtx(t), caller, "math::add", addReq{1, 1})
	if err != nil || sum.Sum != 2 {
		t.Fatalf("Call: %+v %v", sum, err)
	}
}

func TestVoidCallReturnsAtOnceAndStillRunsTheHandler(t *testing.T) {
	eng, handler, caller := twoWorkers(t)
	got := make(chan string, 1)
	mustRegister(t, eng, handler, "audit::log", func(ctx context.Context, msg string) (any, error) {
		got <- msg
		return nil, nil
	})
	res, err := caller.Trigger(testCtx(t), iii.TriggerRequest{FunctionID: "audit::log", Payload: "login", Action: iii.Void()})
	if err != nil || res != nil {
		t.Fatalf("void call: %s %v", res, err)
	}
	select {
	case msg := <-got:
		if msg != "login" {
			t.Fatalf("handler got %q", msg)
		}
	case <-testCtx(t).Done():
		t.Fatal("the void call never reached the handler")
	}
	// A void call to a missing function is silently dropped by the engine.
	if _, err := caller.Trigger(testCtx(t), iii.TriggerRequest{FunctionID: "audit::missing", Action: iii.Void()}); err != nil {
		t.Fatal(err)
	}
}

func TestEnqueueReturnsTheEngineReceiptAndRunsTheJob(t *testing.T) {
	eng := iiitest.NewEngine(t, iiitest.WithQueue(iiitest.QueueConfig{}))
	handler, caller := newWorker(t, eng, fastOptions()), newWorker(t, eng, fastOptions())
	got := make(chan int, 1)
	mustRegister(t, eng, handler, "jobs::run", func(ctx context.Context, n int) (any, error) {
		got <- n
		return nil, nil
	})
	r, err := caller.Enqueue(testCtx(t), "default", "jobs::run", 7)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.MessageReceiptID) != 36 {
		t.Fatalf("receipt %+v", r)
	}
	if n := <-got; n != 7 {
		t.Fatalf("job ran with %d", n)
	}
}

func TestHandlerErrorsReachTheCallerWithTheirCodes(t *testing.T) {
	eng, handler, caller := twoWorkers(t)
	mustRegister(t, eng, handler, "err::plain", func(ctx context.Context, _ any) (any, error) {
		return nil, errors.New("out of stock")
	})
	mustRegister(t, eng, handler, "err::typed", func(ctx context.Context, _ any) (any, error) {
		return nil, iii.NewInvocationError("E_STOCK", "sku A-1 is out of stock")
	})
	mustRegister(t, eng, handler, "err::panic", func(ctx context.Context, _ any) (any, error) {
		var m map[string]int
		//lint:ignore SA5000 the handler panics on purpose
		m["boom"]++ // nil map write
		return nil, nil
	})
	mustRegister(t, eng, handler, "err::typed-input", func(ctx context.Context, r addReq) (addResp, error) {
		return addResp{}, nil
	})
	ctx := testCtx(t)
	cases := []struct {
		fn, payload, code, msg string
		stack                  bool
	}{
		{"err::plain", `null`, iii.CodeInvocationFailed, "out of stock", false},
		{"err::typed", `null`, "E_STOCK", "sku A-1 is out of stock", false},
		// No stack by default (see TestHandlerPanicSendsNoStackByDefaultAndLogsItLocally).
		{"err::panic", `null`, iii.CodeInvocationFailed, "panic: assignment to entry in nil map", false},
		{"err::typed-input", `{"a":"not a number"}`, iii.CodeInvalidRequest, "does not decode", false},
		{"err::missing", `null`, iii.CodeFunctionNotFound, "not found", false},
	}
	for _, c := range cases {
		_, err := caller.Trigger(ctx, iii.TriggerRequest{FunctionID: c.fn, Payload: json.RawMessage(c.payload)})
		var re *iii.RemoteError
		if !errors.As(err, &re) {
			t.Fatalf("%s: error %v (%T) is not a *RemoteError", c.fn, err, err)
		}
		if re.Code != c.code || !strings.Contains(re.Message, c.msg) || re.FunctionID != c.fn {
			t.Errorf("%s: got %+v", c.fn, re)
		}
		if c.stack != strings.Contains(re.Stacktrace, "invoke_test.go") {
			t.Errorf("%s: stack trace %q", c.fn, re.Stacktrace)
		}
		if iii.ErrorCode(err) != c.code {
			t.Errorf("%s: ErrorCode %q", c.fn, iii.ErrorCode(err))
		}
	}
	// The worker kept serving after the panic.
	if _, err := caller.Trigger(ctx, iii.TriggerRequest{FunctionID: "err::typed-input", Payload: addReq{1, 2}}); err != nil {
		t.Fatalf("after the panic: %v", err)
	}
	_, err := caller.Trigger(ctx, iii.TriggerRequest{FunctionID: "err::missing"})
	if !errors.Is(err, &iii.RemoteError{ErrorBody: iii.ErrorBody{Code: iii.CodeFunctionNotFound}}) {
		t.Errorf("errors.Is by code failed for %v", err)
	}
}

func TestRemoteErrorCodesPropagateThroughANestedCall(t *testing.T) {
	eng, handler, caller := twoWorkers(t)
	mustRegister(t, eng, handler, "inner::fail", func(ctx context.Context, _ any) (any, error) {
		return nil, iii.NewInvocationError("E_INNER", "inner failed")
	})
	mustRegister(t, eng, caller, "outer::call", func(ctx context.Context, _ any) (any, error) {
		return caller.Trigger(ctx, iii.TriggerRequest{FunctionID: "inner::fail"})
	})
	_, err := handler.Trigger(testCtx(t), iii.TriggerRequest{FunctionID: "outer::call"})
	if iii.ErrorCode(err) != "E_INNER" {
		t.Fatalf("nested error: %v", err)
	}
}

func TestCallTimesOutAndIgnoresTheLateResult(t *testing.T) {
	eng, handler, caller := twoWorkers(t)
	release := make(chan struct{})
	mustRegister(t, eng, handler, "slow::op", func(ctx context.Context, _ any) (string, error) {
		<-release
		return "late", nil
	})
	_, err := caller.Trigger(testCtx(t), iii.TriggerRequest{FunctionID: "slow::op", Timeout: 50 * time.Millisecond})
	if !errors.Is(err, iii.ErrTimeout) {
		t.Fatalf("got %v, want ErrTimeout", err)
	}
	close(release)
	// The late result arrives and is dropped; the worker keeps working.
	mustRegister(t, eng, handler, "fast::op", func(ctx context.Context, _ any) (string, error) { return "ok", nil })
	if got, err := iii.Call[string](testCtx(t), caller, "fast::op", nil); err != nil || got != "ok" {
		t.Fatalf("after a timeout: %q %v", got, err)
	}
}

func TestCallEndsWithItsContext(t *testing.T) {
	eng, handler, caller := twoWorkers(t)
	started := make(chan struct{}, 2)
	mustRegister(t, eng, handler, "slow::op", func(ctx context.Context, _ any) (any, error) {
		started <- struct{}{}
		<-ctx.Done()
		return nil, ctx.Err()
	})
	ctx, cancel := context.WithCancel(testCtx(t))
	go func() { <-started; cancel() }()
	_, err := caller.Trigger(ctx, iii.TriggerRequest{FunctionID: "slow::op"})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	dctx, dcancel := context.WithTimeout(testCtx(t), 30*time.Millisecond)
	defer dcancel()
	_, err = caller.Trigger(dctx, iii.TriggerRequest{FunctionID: "slow::op"})
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, iii.ErrTimeout) {
		t.Fatalf("got %v, want a deadline that is also ErrTimeout", err)
	}
}

func TestDuplicateAndInvalidRegistrationsAreRefused(t *testing.T) {
	eng, handler, _ := twoWorkers(t)
	mustRegister(t, eng, handler, "dup::fn", func(ctx context.Context, _ any) (any, error) { return nil, nil })
	_, err := iii.RegisterFunction(handler, "dup::fn", func(ctx context.Context, _ any) (any, error) { return nil, nil })
	if !errors.Is(err, iii.ErrDuplicate) {
		t.Fatalf("second registration: %v", err)
	}
	_, err = iii.RegisterFunction(handler, "", func(ctx context.Context, _ any) (any, error) { return nil, nil })
	if !errors.Is(err, iii.ErrInvalidID) {
		t.Fatalf("empty id: %v", err)
	}
	_, err = handler.Trigger(testCtx(t), iii.TriggerRequest{FunctionID: "x", Payload: json.RawMessage(`{bad`)})
	if !errors.Is(err, iii.ErrInvalidPayload) {
		t.Fatalf("invalid raw payload: %v", err)
	}
}

func TestUnregisteredFunctionIsGoneFromTheEngine(t *testing.T) {
	eng, handler, caller := twoWorkers(t)
	ref := mustRegister(t, eng, handler, "tmp::fn", func(ctx context.Context, _ any) (any, error) { return nil, nil })
	if err := ref.Unregister(); err != nil {
		t.Fatal(err)
	}
	if err := eng.WaitFunctionGone(testCtx(t), "tmp::fn"); err != nil {
		t.Fatal(err)
	}
	_, err := caller.Trigger(testCtx(t), iii.TriggerRequest{FunctionID: "tmp::fn"})
	if iii.ErrorCode(err) != iii.CodeFunctionNotFound {
		t.Fatalf("after unregister: %v", err)
	}
	if err := ref.Unregister(); !errors.Is(err, iii.ErrNotRegistered) {
		t.Fatalf("second unregister: %v", err)
	}
}

func TestSchemasDerivedFromGoTypesAreSentWithTheRegistration(t *testing.T) {
	eng, handler, caller := twoWorkers(t)
	mustRegister(t, eng, handler, "math::add", func(ctx context.Context, r addReq) (addResp, error) { return addResp{}, nil },
		iii.WithDescription("adds two numbers"))
	raw, err := caller.Trigger(testCtx(t), iii.TriggerRequest{FunctionID: "engine::functions::info", Payload: map[string]string{"function_id": "math::add"}})
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		Description    string          `json:"description"`
		RequestSchema  json.RawMessage `json:"request_schema"`
		ResponseSchema json.RawMessage `json:"response_schema"`
	}
	if err := json.Unmarshal(raw, &info); err != nil {
		t.Fatal(err)
	}
	if info.Description != "adds two numbers" || !strings.Contains(string(info.RequestSchema), `"a"`) ||
		!strings.Contains(string(info.ResponseSchema), `"sum"`) {
		t.Fatalf("function info: %s", raw)
	}
}

func TestTenThousandInFlightInvocationsCompleteWithBoundedMemory(t *testing.T) {
	eng, handler, caller := twoWorkers(t)
	release := make(chan struct{})
	var arrived atomic.Int64
	mustRegister(t, eng, handler, "load::park", func(ctx context.Context, n int) (int, error) {
		arrived.Add(1)
		<-release
		return n, nil
	})
	const n = 10000
	ctx := testCtx(t)
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	errs := make(chan error, n)
	for i := range n {
		go func() {
			got, err := iii.Call[int](ctx, caller, "load::park", i)
			if err == nil && got != i {
				err = fmt.Errorf("call %d returned %d", i, got)
			}
			errs <- err
		}()
	}
	// 1024 handlers run (the default limit); the rest wait in the backlog.
	waitFor(t, "the handlers to fill up", func() bool { return arrived.Load() == iii.DefaultMaxConcurrentInvocations })
	waitFor(t, "every call to be in flight", func() bool { return handler.Stats().Queued == n-iii.DefaultMaxConcurrentInvocations })
	perCall := (heap() - before) / n
	close(release)
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	// Everything in this process counts: caller, engine double, handler and
	// the test's own goroutines' closures. A leak or an unbounded buffer per
	// call would be tens of KiB.
	t.Logf("heap per in-flight invocation, everything included: %d B", perCall)
	if perCall > 8<<10 {
		t.Fatalf("%d B of heap per in-flight invocation", perCall)
	}
}

func TestOversizedPayloadsAndResultsAreRefusedWithoutLosingTheConnection(t *testing.T) {
	eng := iiitest.NewEngine(t)
	opts := fastOptions()
	opts.MaxMessageSize = 1 << 10
	handler := newWorker(t, eng, opts)
	caller := newWorker(t, eng, opts)
	mustRegister(t, eng, handler, "big::result", func(ctx context.Context, n int) (string, error) {
		return strings.Repeat("x", n), nil
	})
	callerID, handlerID := caller.WorkerID(), handler.WorkerID()
	_, err := caller.Trigger(testCtx(t), iii.TriggerRequest{FunctionID: "big::result", Payload: strings.Repeat("y", 2<<10)})
	if !errors.Is(err, iii.ErrPayloadTooLarge) {
		t.Fatalf("oversized payload: %v", err)
	}
	_, err = iii.Call[string](testCtx(t), caller, "big::result", 4<<10)
	if iii.ErrorCode(err) != iii.CodeInvocationFailed || !strings.Contains(err.Error(), "limit is 1024") {
		t.Fatalf("oversized result: %v", err)
	}
	if got, err := iii.Call[string](testCtx(t), caller, "big::result", 3); err != nil || got != "xxx" {
		t.Fatalf("after the refusals: %q %v", got, err)
	}
	if caller.WorkerID() != callerID || handler.WorkerID() != handlerID {
		t.Fatal("a connection was lost")
	}
}

func TestFrameOverTheReadLimitEndsOnlyThatSocket(t *testing.T) {
	eng := iiitest.NewEngine(t)
	small := fastOptions()
	small.MaxMessageSize = 1 << 10
	handler := newWorker(t, eng, small)
	caller := newWorker(t, eng, fastOptions())
	mustRegister(t, eng, handler, "len::of", func(ctx context.Context, s string) (int, error) { return len(s), nil })
	first := handler.WorkerID()
	// The dispatch frame exceeds the handler's read limit: it drops that
	// socket, and the engine stops the invocation.
	_, err := iii.Call[int](testCtx(t), caller, "len::of", strings.Repeat("z", 2<<20))
	if iii.ErrorCode(err) != iii.CodeInvocationStopped {
		t.Fatalf("got %v, want invocation_stopped", err)
	}
	waitFor(t, "the handler to reconnect", func() bool {
		return handler.State() == iii.Connected && handler.WorkerID() != first && eng.Functions()["len::of"] == handler.WorkerID()
	})
	if n, err := iii.Call[int](testCtx(t), caller, "len::of", "abc"); err != nil || n != 3 {
		t.Fatalf("after the reconnect: %d %v", n, err)
	}
}

func TestRawResultThatIsNotJSONBecomesAnErrorReply(t *testing.T) {
	eng, handler, caller := twoWorkers(t)
	mustRegister(t, eng, handler, "raw::bad", func(ctx context.Context, in json.RawMessage) (json.RawMessage, error) {
		return json.RawMessage(`{"unterminated":`), nil
	})
	mustRegister(t, eng, handler, "raw::echo", func(ctx context.Context, in json.RawMessage) (json.RawMessage, error) {
		return in, nil
	})
	_, err := caller.Trigger(testCtx(t), iii.TriggerRequest{FunctionID: "raw::bad"})
	if iii.ErrorCode(err) != iii.CodeInvocationFailed || !strings.Contains(err.Error(), "not valid JSON") {
		t.Fatalf("got %v", err)
	}
	got, err := caller.Trigger(testCtx(t), iii.TriggerRequest{FunctionID: "raw::echo", Payload: json.RawMessage(` [1, {"a": "b"}] `)})
	if err != nil || string(got) != `[1, {"a": "b"}]` {
		t.Fatalf("echo: %s %v", got, err)
	}
}

// After a burst, the handler goroutines idle longer than
// InvocationIdleTimeout are stopped but for the KeepIdleInvocations most
// recently used; with a negative timeout every one is kept. Both handlers
// take the same burst at once, so that by the time the first has shrunk,
// the second's goroutines have been idle as long.
func TestIdleHandlerGoroutinesShrinkAsConfigured(t *testing.T) {
	const burst, keep = 40, 3
	eng := iiitest.NewEngine(t)
	caller := newWorker(t, eng, fastOptions())
	release := make(chan struct{})
	var arrived atomic.Int64
	park := func(ctx context.Context, n int) (int, error) {
		arrived.Add(1)
		<-release
		return n, nil
	}
	handler := func(fn string, timeout time.Duration) *iii.III {
		opts := fastOptions()
		opts.InvocationIdleTimeout, opts.KeepIdleInvocations = timeout, keep
		w := newWorker(t, eng, opts)
		mustRegister(t, eng, w, fn, park)
		return w
	}
	shrinking, keeping := handler("pool::shrinks", 20*time.Millisecond), handler("pool::keeps", -1)
	fns := []string{"pool::shrinks", "pool::keeps"}
	errs := make(chan error, len(fns)*burst)
	for _, fn := range fns {
		for i := range burst {
			go func() {
				_, err := iii.Call[int](testCtx(t), caller, fn, i)
				errs <- err
			}()
		}
	}
	waitFor(t, "every handler running", func() bool { return arrived.Load() == int64(len(fns)*burst) })
	close(release)
	for range len(fns) * burst {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, fmt.Sprintf("%d idle handler goroutines", keep), func() bool { return shrinking.Stats().IdleHandlers == keep })
	if got := keeping.Stats().IdleHandlers; got != burst {
		t.Fatalf("%d idle handler goroutines with a negative InvocationIdleTimeout; want %d", got, burst)
	}
	// Each pool serves the next call as before.
	for _, fn := range fns {
		if n, err := iii.Call[int](testCtx(t), caller, fn, 7); err != nil || n != 7 {
			t.Fatalf("%s after the burst: %d, %v", fn, n, err)
		}
	}
}
