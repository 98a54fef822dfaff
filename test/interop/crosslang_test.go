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

// goWorker connects a worker of this SDK to the engine at url; it is shut
// down when the test ends (after the scripts started later have stopped).
func goWorker(t *testing.T, url, name string) *iii.III {
	t.Helper()
	w := iii.RegisterWorker(url, iii.InitOptions{Metadata: &iii.WorkerMetadata{Name: name}})
	t.Cleanup(w.Shutdown)
	if err := w.WaitConnected(testCtx(t)); err != nil {
		t.Fatalf("WaitConnected: %v", err)
	}
	return w
}

func TestGoWorkerCallsNodeWorker(t *testing.T) {
	eng := routingEngine(t)
	// OTel on, as the Node SDK runs by default: a second socket to /otel.
	worker := startScript(t, eng.URL, "worker.mjs", "FUNCTIONS=interop::echo,interop::fail,interop::void",
		"FAIL_MESSAGE=node says no", "OTEL_ENABLED=true")
	readyID(t, worker)
	w := goWorker(t, eng.URL, "interop-go-caller")
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

	// The Node SDK traced each execution and sent the spans over /otel
	// (only the double shows what it received).
	if eng.double != nil {
		for _, name := range []string{"execute interop::echo", "execute interop::fail", "execute interop::void"} {
			waitSpan(t, eng.double, name)
		}
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
	eng := routingEngine(t)
	w := goWorker(t, eng.URL, "interop-go-handler")
	calls := goFunctionsForCallers(t, eng, w)

	// caller.mjs makes its four calls in order: echo, void, fail, and (under
	// the label "missing") the panicking function.
	payload := `{"order":"A-1","qty":2,"note":"ünï ✓"}`
	metadata := `{"origin":"node-caller","tenant":"t1"}`
	caller := startScript(t, eng.URL, "caller.mjs", "PAYLOAD="+payload, "METADATA="+metadata,
		"ECHO_FN=gointerop::echo", "VOID_FN=gointerop::void", "FAIL_FN=gointerop::fail", "MISSING_FN=gointerop::panic")
	callerID := readyID(t, caller)
	requireGoEchoAndVoid(t, caller, calls, callerID, payload, metadata)

	// An InvocationError's code reaches the Node caller unchanged.
	fail := requireError(t, result(t, caller, "fail"), "E_GO", "go handler refused the order")
	if fail.Stacktrace != nil {
		t.Fatalf("E_GO carries a stack %q", *fail.Stacktrace)
	}

	// A panic is invocation_failed with the panic value only: the Go stack
	// stays in the worker's log unless InitOptions.SendPanicStacks is set.
	panicked := requireError(t, result(t, caller, "missing"), "invocation_failed", "panic: go handler exploded")
	if panicked.Stacktrace != nil {
		t.Fatalf("panic stacktrace %q reached another worker", *panicked.Stacktrace)
	}
	caller.waitExit()

	// The panic hurt nothing else: the Go worker still serves calls (here
	// its own, through the engine).
	res, err := w.Trigger(testCtx(t), iii.TriggerRequest{FunctionID: "gointerop::echo", Payload: json.RawMessage(`{"after":"panic"}`)})
	if err != nil {
		t.Fatalf("gointerop::echo after the panic: %v", err)
	}
	requireJSON(t, "echo after the panic", res, json.RawMessage(`{"input":{"after":"panic","_caller_worker_id":"`+w.WorkerID()+
		`"},"metadata":null,"caller":"`+w.WorkerID()+`","runtime":"go"}`))
}

// tickConfig and tick are the configuration and fire payload of the Go
// trigger type below.
type tickConfig struct {
	IntervalMs int `json:"interval_ms"`
}

type tick struct {
	Tick int `json:"tick"`
}

// tickProvider records what the engine asks a Go trigger provider to do.
type tickProvider struct {
	registered, unregistered chan iii.TriggerBinding[tickConfig]
}

func (p tickProvider) RegisterTrigger(_ context.Context, b iii.TriggerBinding[tickConfig]) error {
	p.registered <- b
	return nil
}

func (p tickProvider) UnregisterTrigger(_ context.Context, b iii.TriggerBinding[tickConfig]) error {
	p.unregistered <- b
	return nil
}

// recv returns the next value of ch, failing the test after waitTimeout.
func recv[T any](t *testing.T, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitTimeout):
		t.Fatalf("no %s within %v", what, waitTimeout)
		panic("unreachable")
	}
}

// goTicker is a Go worker that provides the trigger type gointerop::ticker
// (config tickConfig, fired with a tick) to foreign binders; prov records
// the bindings the engine forwards.
type goTicker struct {
	w    *iii.III
	prov tickProvider
	ref  *iii.TriggerTypeRef[tickConfig, tick]
}

// provideGoTicker connects a goTicker to the engine at url, with room for
// size bindings on each of prov's channels, described as ticking for the
// binders of who.
func provideGoTicker(t *testing.T, url, who string, size int) goTicker {
	t.Helper()
	g := goTicker{w: goWorker(t, url, "interop-go-provider"),
		prov: tickProvider{registered: make(chan iii.TriggerBinding[tickConfig], size), unregistered: make(chan iii.TriggerBinding[tickConfig], size)}}
	var err error
	if g.ref, err = iii.RegisterTriggerType[tickConfig, tick](g.w, "gointerop::ticker", "ticks for "+who+" binders", g.prov); err != nil {
		t.Fatal(err)
	}
	return g
}

// startTickedBinder starts a trigger-binder program of sdk that binds its
// function interop::ticked to gointerop::ticker with config
// {"interval_ms":250} and metadata {"binder":sdk.label}.
func startTickedBinder(t *testing.T, url string, sdk foreignSDK) *proc {
	t.Helper()
	return sdk.start(t, url, "trigger-binder", "TRIGGER_TYPE=gointerop::ticker", "FUNCTION_ID=interop::ticked",
		`CONFIG={"interval_ms":250}`, `METADATA={"binder":"`+sdk.label+`"}`)
}

// requireBindingFires checks that the Go provider gets the binding id of
// binder (startTickedBinder), config decoded into its type, and that fired
// from Go it runs binder's function with the binding's metadata.
func (g goTicker) requireBindingFires(t *testing.T, binder *proc, id string, sdk foreignSDK) {
	t.Helper()
	metadata := json.RawMessage(`{"binder":"` + sdk.label + `"}`)
	b := recv(t, "binding", g.prov.registered)
	if b.ID != id || b.FunctionID != "interop::ticked" || b.Config.IntervalMs != 250 || !jsonEqual(b.Metadata, metadata) {
		t.Fatalf("Go provider got binding %+v (metadata %s); want id %s", b, b.Metadata, id)
	}
	res, err := g.ref.Fire(testCtx(t), b.ID, tick{Tick: 7})
	if err != nil {
		t.Fatalf("Fire: %v", err)
	}
	requireJSON(t, "fire result", res, json.RawMessage(`{"ok":true,"tick":7}`))
	var in invoked
	binder.wait(ev("invoked")).decode(t, &in)
	requireJSON(t, sdk.name+" function input", in.Input, json.RawMessage(`{"tick":7,"_caller_worker_id":"`+g.w.WorkerID()+`"}`))
	requireJSON(t, sdk.name+" function metadata", in.Metadata, metadata)
}

// requireBadConfigRefused starts a trigger-binder program of sdk (Node or
// Python) whose config the Go provider of gointerop::ticker cannot decode,
// checks that the program hears of the refusal, and returns the refused
// binding's id.
func requireBadConfigRefused(t *testing.T, url string, sdk foreignSDK) string {
	t.Helper()
	bad := sdk.start(t, url, "trigger-binder", "TRIGGER_TYPE=gointerop::ticker", "FUNCTION_ID=interop::ticked-bad",
		`CONFIG={"interval_ms":"often"}`)
	var refused struct {
		ID          string `json:"id"`
		TriggerType string `json:"trigger_type"`
		Message     string `json:"message"`
	}
	bad.wait(ev("trigger_registration_failed")).decode(t, &refused)
	var badBound struct {
		ID string `json:"id"`
	}
	bad.wait(ev("bound")).decode(t, &badBound)
	if refused.ID != badBound.ID || refused.TriggerType != "gointerop::ticker" || !strings.Contains(refused.Message, "interval_ms") {
		t.Fatalf("refusal reported to %s as %+v; want binding %s and a message about interval_ms", sdk.name, refused, badBound.ID)
	}
	return badBound.ID
}

func TestGoTriggerProviderServesANodeBinder(t *testing.T) {
	eng := routingEngine(t)
	g := provideGoTicker(t, eng.URL, "Node", 4)
	binder := startTickedBinder(t, eng.URL, nodeSDK)
	var bound struct {
		ID string `json:"id"`
	}
	binder.wait(ev("bound")).decode(t, &bound)

	// The Go provider gets the Node binding, config decoded into its type;
	// fired from Go, it runs the Node function with the binding's metadata.
	g.requireBindingFires(t, binder, bound.ID, nodeSDK)

	// A config that does not decode into the provider's type is refused, and
	// the Node binder hears of it.
	requireBadConfigRefused(t, eng.URL, nodeSDK)

	// When the Node binder leaves, the Go provider is told to stop.
	if code := binder.stop(); code != 0 {
		t.Fatalf("binder exited with %d", code)
	}
	if u := recv(t, "unregistration", g.prov.unregistered); u.ID != bound.ID {
		t.Fatalf("Go provider unregistered %+v, want %s", u, bound.ID)
	}
}

// goBinder is a Go worker whose function gointerop::ticked (it returns
// {"go":true}; fires gets each call) is bound to the interop::ticker of a
// foreign trigger provider with config {"interval_ms":50} and metadata
// {"binder":"go"}.
type goBinder struct {
	w     *iii.III
	tr    *iii.Trigger
	fires chan goFire
}

// goFire is a call of a goBinder's function.
type goFire struct{ input, metadata json.RawMessage }

// bindGo connects a goBinder to the engine at url and checks that the
// trigger provider program provider of the SDK called who got its binding as
// made.
func bindGo(t *testing.T, url string, provider *proc, who string) goBinder {
	t.Helper()
	b := goBinder{w: goWorker(t, url, "interop-go-binder"), fires: make(chan goFire, 4)}
	if _, err := iii.RegisterFunction(b.w, "gointerop::ticked", func(ctx context.Context, in json.RawMessage) (map[string]any, error) {
		b.fires <- goFire{input: in, metadata: iii.MetadataFromContext(ctx)}
		return map[string]any{"go": true}, nil
	}); err != nil {
		t.Fatal(err)
	}
	tr, err := b.w.RegisterTrigger(iii.TriggerInput{Type: "interop::ticker", FunctionID: "gointerop::ticked",
		Config: map[string]any{"interval_ms": 50}, Metadata: map[string]any{"binder": "go"}})
	if err != nil {
		t.Fatal(err)
	}
	b.tr = tr
	var reg binding
	provider.wait(ev("registertrigger", "id", tr.ID())).decode(t, &reg)
	requireJSON(t, "binding as the "+who+" provider sees it", reg,
		json.RawMessage(`{"id":"`+tr.ID()+`","function_id":"gointerop::ticked","config":{"interval_ms":50},"metadata":{"binder":"go"}}`))
	return b
}

// requireFire checks that the provider's fire number tick, from the
// provider's connection providerID, ran the Go function with the binding's
// config and metadata.
func (b goBinder) requireFire(t *testing.T, tick int, providerID string) {
	t.Helper()
	f := recv(t, "fire", b.fires)
	requireJSON(t, "Go function input", f.input, json.RawMessage(fmt.Sprintf(
		`{"tick":%d,"trigger_id":"%s","config":{"interval_ms":50},"_caller_worker_id":"%s"}`, tick, b.tr.ID(), providerID)))
	requireJSON(t, "Go function metadata", f.metadata, json.RawMessage(`{"binder":"go"}`))
}

// requireFired checks the provider's "fired" events of the binding: n, each
// ok with the Go function's result.
func (b goBinder) requireFired(t *testing.T, provider *proc, n int) {
	t.Helper()
	for _, e := range provider.waitN(ev("fired", "id", b.tr.ID()), n) {
		var fired struct {
			OK     bool            `json:"ok"`
			Result json.RawMessage `json:"result"`
		}
		e.decode(t, &fired)
		if !fired.OK {
			t.Fatalf("fire seen by the provider: %s", e.Raw)
		}
		requireJSON(t, "fire result", fired.Result, json.RawMessage(`{"go":true}`))
	}
}

// requireRefusal makes a second binding, with config {"reject":true}, which
// the provider refuses: the Go binding gets a TriggerError whose message is
// prefix followed by the provider's.
func (b goBinder) requireRefusal(t *testing.T, prefix string) {
	t.Helper()
	rejected, err := b.w.RegisterTrigger(iii.TriggerInput{Type: "interop::ticker", FunctionID: "gointerop::ticked",
		Config: map[string]any{"reject": true}})
	if err != nil {
		t.Fatal(err)
	}
	err = rejected.WaitError(testCtx(t))
	var te *iii.TriggerError
	if !errors.As(err, &te) || te.TriggerID != rejected.ID() || te.TriggerType != "interop::ticker" ||
		te.Code != iii.CodeTriggerRegistrationFailed || te.Message != prefix+"binding "+rejected.ID()+" rejected by interop provider" {
		t.Fatalf("refusal: %v (%+v)", err, te)
	}
}

// unbind unregisters the binding from Go and checks that the provider's
// n-th unregistertrigger of it carries only the id (the SDKs fill
// function_id with "" and config with null).
func (b goBinder) unbind(t *testing.T, provider *proc, n int) {
	t.Helper()
	if err := b.tr.Unregister(); err != nil {
		t.Fatal(err)
	}
	var unreg binding
	provider.waitN(ev("unregistertrigger", "id", b.tr.ID()), n)[n-1].decode(t, &unreg)
	requireJSON(t, "unbinding", unreg, json.RawMessage(`{"id":"`+b.tr.ID()+`","function_id":"","config":null,"metadata":null}`))
}

func TestNodeTriggerProviderServesAGoBinder(t *testing.T) {
	eng := routingEngine(t)
	provider := startScript(t, eng.URL, "trigger-provider.mjs", "TRIGGER_TYPE=interop::ticker", "FIRE_COUNT=1")
	providerID := readyID(t, provider)

	// A Go binding reaches the Node provider as made, and its fire runs the
	// Go function with the binding's metadata.
	b := bindGo(t, eng.URL, provider, "Node")
	b.requireFire(t, 1, providerID)
	b.requireFired(t, provider, 1)

	// The Node provider's refusal reaches the Go binding as a TriggerError.
	b.requireRefusal(t, "")

	// Unregistering from Go tells the Node provider.
	b.unbind(t, provider, 1)
}

func TestGoCallerSeesInvocationStoppedWhenTheNodeHandlerDrops(t *testing.T) {
	eng := routingEngine(t)
	worker := startScript(t, eng.URL, "worker.mjs", "FUNCTIONS=interop::sleep", "SLEEP_MS=60000")
	workerID := readyID(t, worker)
	w := goWorker(t, eng.URL, "interop-go-caller")

	errc := make(chan error, 1)
	go func() {
		_, err := w.Trigger(context.Background(), iii.TriggerRequest{FunctionID: "interop::sleep", Payload: map[string]any{"nap": true}})
		errc <- err
	}()
	// Once the Node handler runs, its connection dies under it: the double
	// drops it; against an external engine the Node process is killed.
	worker.wait(ev("invoked", "function_id", "interop::sleep"))
	if eng.double == nil {
		if err := worker.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
	} else if !eng.double.DropWorker(workerID) {
		t.Fatalf("DropWorker(%s): not connected", workerID)
	}
	err := recv(t, "the call's end", errc)
	var re *iii.RemoteError
	if !errors.As(err, &re) || re.Code != iii.CodeInvocationStopped || re.FunctionID != "interop::sleep" {
		t.Fatalf("call whose handler dropped: %v; want invocation_stopped", err)
	}
}
