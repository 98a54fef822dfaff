package iiitest

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iii-go/iii/connection/wire"
)

func TestSyncCallIsDispatchedToTheOwnerWithCallerIDInjected(t *testing.T) {
	e := NewEngine(t)
	h, c := dial(t, e), dial(t, e)
	h.register("orders::create")
	waitFn(t, e, "orders::create")
	id := wire.NewUUID()
	c.send(&wire.InvokeFunction{
		InvocationID: id, HasInvocationID: true, FunctionID: "orders::create",
		Data:        json.RawMessage(`{"sku":"A-1","qty":2}`),
		Traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		Baggage:     "iii.function.id=checkout::submit",
		Metadata:    json.RawMessage(`{"m":true}`),
	})
	inv := expectMsg[*wire.InvokeFunction](t, h)
	if inv.InvocationID != id || !inv.HasInvocationID {
		t.Fatalf("dispatched with id %s, want the caller's %s", inv.InvocationID, id)
	}
	if want := `{"_caller_worker_id":"` + c.id + `","sku":"A-1","qty":2}`; string(inv.Data) != want {
		t.Fatalf("data = %s, want %s", inv.Data, want)
	}
	if inv.Action.Kind != wire.ActionNone || string(inv.Metadata) != `{"m":true}` ||
		inv.Traceparent == "" || inv.Baggage != "iii.function.id=orders::create" || inv.FunctionID != "orders::create" {
		t.Fatalf("dispatch = %s", wire.Encode(inv))
	}
	h.send(&wire.InvocationResult{InvocationID: id, FunctionID: "whatever", Result: json.RawMessage(`{"order_id":"o-1"}`)})
	r := expectMsg[*wire.InvocationResult](t, c)
	if r.InvocationID != id || r.FunctionID != "orders::create" || string(r.Result) != `{"order_id":"o-1"}` || r.Error != nil {
		t.Fatalf("result = %s", wire.Encode(r))
	}
}

func TestCallerIDOverwritesAnExistingKey(t *testing.T) {
	e := NewEngine(t)
	h, c := dial(t, e), dial(t, e)
	h.register("f::g")
	waitFn(t, e, "f::g")
	c.call("f::g", `{"a":{"_caller_worker_id":"nested"},"_caller_worker_id":"forged","b":[1,"x"]}`)
	inv := expectMsg[*wire.InvokeFunction](t, h)
	var m map[string]any
	if err := json.Unmarshal(inv.Data, &m); err != nil {
		t.Fatalf("%s: %v", inv.Data, err)
	}
	if m["_caller_worker_id"] != c.id || m["a"].(map[string]any)["_caller_worker_id"] != "nested" || len(m) != 3 {
		t.Fatalf("data = %s", inv.Data)
	}
	if bytes.Count(inv.Data, []byte(`"_caller_worker_id"`)) != 2 {
		t.Fatalf("duplicate key left in %s", inv.Data)
	}
}

func TestNonObjectDataIsForwardedUnchanged(t *testing.T) {
	e := NewEngine(t)
	h, c := dial(t, e), dial(t, e)
	h.register("f::g")
	waitFn(t, e, "f::g")
	for _, d := range []string{`null`, `[1,2]`, `"s"`, `42`, `{}`} {
		c.call("f::g", d)
		inv := expectMsg[*wire.InvokeFunction](t, h)
		want := d
		if d == `{}` {
			want = `{"_caller_worker_id":"` + c.id + `"}`
		}
		if string(inv.Data) != want {
			t.Fatalf("data %s dispatched as %s", d, inv.Data)
		}
	}
}

func TestVoidAndIDlessCallsGetFreshIDsAndNoReply(t *testing.T) {
	e := NewEngine(t)
	h, c := dial(t, e), dial(t, e)
	h.register("f::g")
	waitFn(t, e, "f::g")
	callerID := wire.NewUUID()
	c.send(&wire.InvokeFunction{InvocationID: callerID, HasInvocationID: true, FunctionID: "f::g", Data: json.RawMessage(`{}`), Action: wire.TriggerAction{Kind: wire.ActionVoid}})
	c.send(&wire.InvokeFunction{FunctionID: "f::g", Data: json.RawMessage(`{}`)})
	seen := map[wire.UUID]bool{}
	for range 2 {
		inv := expectMsg[*wire.InvokeFunction](t, h)
		if !inv.HasInvocationID || inv.InvocationID == callerID || seen[inv.InvocationID] || inv.Action.Kind != wire.ActionNone {
			t.Fatalf("dispatch = %s", wire.Encode(inv))
		}
		seen[inv.InvocationID] = true
		h.send(&wire.InvocationResult{InvocationID: inv.InvocationID, FunctionID: "f::g", Result: json.RawMessage(`1`)})
	}
	h.sync()
	c.expectQuiet()
	// Void calls of a missing function get nothing either.
	c.send(&wire.InvokeFunction{FunctionID: "missing::fn", Data: json.RawMessage(`{}`), Action: wire.TriggerAction{Kind: wire.ActionVoid}})
	c.expectQuiet()
}

func TestSyncCallOfAMissingFunctionGetsFunctionNotFound(t *testing.T) {
	e := NewEngine(t)
	c := dial(t, e)
	r := c.callSync("missing::fn", `{}`)
	if r.Error == nil || r.Error.Code != "function_not_found" || r.Error.Message != "Function missing::fn not found" || r.FunctionID != "missing::fn" {
		t.Fatalf("result = %s", wire.Encode(r))
	}
}

func TestHandlerErrorsAreRelayedUnchanged(t *testing.T) {
	e := NewEngine(t)
	h, c := dial(t, e), dial(t, e)
	h.register("f::g")
	waitFn(t, e, "f::g")
	id := c.call("f::g", `{}`)
	expectMsg[*wire.InvokeFunction](t, h)
	h.send(&wire.InvocationResult{InvocationID: id, FunctionID: "f::g", Result: json.RawMessage(`"ignored"`),
		Error: &wire.ErrorBody{Code: "invocation_failed", Message: "boom", Stacktrace: "at x"}})
	r := expectMsg[*wire.InvocationResult](t, c)
	if r.Error == nil || *r.Error != (wire.ErrorBody{Code: "invocation_failed", Message: "boom", Stacktrace: "at x"}) || r.Result != nil {
		t.Fatalf("result = %s", wire.Encode(r))
	}
}

func TestNullResultIsRelayedAsNoResult(t *testing.T) {
	e := NewEngine(t)
	h, c := dial(t, e), dial(t, e)
	h.register("f::g")
	waitFn(t, e, "f::g")
	id := c.call("f::g", `{}`)
	expectMsg[*wire.InvokeFunction](t, h)
	h.sendRaw(`{"type":"invocationresult","invocation_id":"` + id.String() + `","function_id":"f::g","result":null}`)
	f := c.next()
	if want := `{"type":"invocationresult","invocation_id":"` + id.String() + `","function_id":"f::g"}`; string(f.data) != want {
		t.Fatalf("got %s, want %s", f.data, want)
	}
}

func TestResultsWithUnknownIDsAreIgnored(t *testing.T) {
	e := NewEngine(t)
	h, c := dial(t, e), dial(t, e)
	h.register("f::g")
	waitFn(t, e, "f::g")
	h.send(&wire.InvocationResult{InvocationID: wire.NewUUID(), FunctionID: "f::g", Result: json.RawMessage(`1`)})
	id := c.call("f::g", `{}`)
	expectMsg[*wire.InvokeFunction](t, h)
	h.send(&wire.InvocationResult{InvocationID: id, FunctionID: "f::g", Result: json.RawMessage(`2`)})
	h.send(&wire.InvocationResult{InvocationID: id, FunctionID: "f::g", Result: json.RawMessage(`3`)}) // duplicate
	h.sync()
	r := expectMsg[*wire.InvocationResult](t, c)
	if string(r.Result) != `2` {
		t.Fatalf("result = %s", wire.Encode(r))
	}
	c.expectQuiet()
}

func TestResultsAreRoutedByIDFromAnyConnection(t *testing.T) {
	e := NewEngine(t)
	h, c, other := dial(t, e), dial(t, e), dial(t, e)
	h.register("f::g")
	waitFn(t, e, "f::g")
	id := c.call("f::g", `{}`)
	expectMsg[*wire.InvokeFunction](t, h)
	other.send(&wire.InvocationResult{InvocationID: id, FunctionID: "f::g", Result: json.RawMessage(`"from other"`)})
	if r := expectMsg[*wire.InvocationResult](t, c); string(r.Result) != `"from other"` {
		t.Fatalf("result = %s", wire.Encode(r))
	}
}

func TestHandlerDisconnectStopsEveryPendingInvocation(t *testing.T) {
	e := NewEngine(t)
	h, c1, c2 := dial(t, e), dial(t, e), dial(t, e)
	h.register("f::g")
	waitFn(t, e, "f::g")
	id1 := c1.call("f::g", `{}`)
	id2 := c2.call("f::g", `{}`)
	expectMsg[*wire.InvokeFunction](t, h)
	expectMsg[*wire.InvokeFunction](t, h)
	if !e.DropWorker(h.id) {
		t.Fatal("DropWorker: not connected")
	}
	for _, x := range []struct {
		c  *client
		id wire.UUID
	}{{c1, id1}, {c2, id2}} {
		r := expectMsg[*wire.InvocationResult](t, x.c)
		if r.InvocationID != x.id || r.Error == nil || *r.Error != (wire.ErrorBody{Code: "invocation_stopped", Message: "Invocation stopped"}) || r.FunctionID != "f::g" {
			t.Fatalf("result = %s", wire.Encode(r))
		}
	}
	if _, ok := e.Functions()["f::g"]; ok {
		t.Fatal("the dropped handler's function survived")
	}
	if r := c1.callSync("f::g", `{}`); r.Error == nil || r.Error.Code != "function_not_found" {
		t.Fatalf("after disconnect: %s", wire.Encode(r))
	}
}

func TestCallerDisconnectHaltsTheCallButTheHandlerKeepsItInFlight(t *testing.T) {
	e := NewEngine(t)
	h, c := dial(t, e), dial(t, e)
	h.register("f::g")
	waitFn(t, e, "f::g")
	id := c.call("f::g", `{}`)
	expectMsg[*wire.InvokeFunction](t, h)
	c.ws.Close()
	if err := e.waitFor(ctxT(t), func() bool { return len(e.st.workers) == 1 }); err != nil {
		t.Fatal(err)
	}
	active := func() int {
		e.mu.Lock()
		defer e.mu.Unlock()
		return e.st.activeInvocations(e.st.workers[h.id])
	}
	if n := active(); n != 1 {
		t.Fatalf("handler's active invocations %d, want 1 until it replies", n)
	}
	h.send(&wire.InvocationResult{InvocationID: id, FunctionID: "f::g", Result: json.RawMessage(`1`)})
	h.expectQuiet() // the handler is not told anything
	if n := active(); n != 0 {
		t.Fatalf("handler's active invocations %d after its reply", n)
	}
}

func TestLastRegistrationWinsAndOwnerChecksRemoval(t *testing.T) {
	e := NewEngine(t)
	a, b, c := dial(t, e), dial(t, e), dial(t, e)
	a.register("f::g")
	a.sync()
	b.register("f::g")
	b.sync()
	if owner := e.Functions()["f::g"]; owner != b.id {
		t.Fatalf("owner %s, want the newest registrant %s", owner, b.id)
	}
	c.call("f::g", `{}`)
	expectMsg[*wire.InvokeFunction](t, b)
	a.expectQuiet()
	// The older registrant's unregister does not remove the newer one's.
	a.send(&wire.UnregisterFunction{ID: "f::g"})
	a.sync()
	if owner := e.Functions()["f::g"]; owner != b.id {
		t.Fatalf("owner %s after the old owner's unregister", owner)
	}
	// Nor does its disconnect.
	a.close()
	if err := e.waitFor(ctxT(t), func() bool { return len(e.st.workers) == 2 }); err != nil {
		t.Fatal(err)
	}
	if owner := e.Functions()["f::g"]; owner != b.id {
		t.Fatalf("owner %s after the old owner's disconnect", owner)
	}
	// The newest owner's unregister removes the function entirely.
	b.send(&wire.UnregisterFunction{ID: "f::g"})
	b.sync()
	if _, ok := e.Functions()["f::g"]; ok {
		t.Fatal("function still registered")
	}
}

func TestNewestOwnerDisconnectRemovesTheFunctionEntirely(t *testing.T) {
	e := NewEngine(t)
	a, b, c := dial(t, e), dial(t, e), dial(t, e)
	a.register("f::g")
	a.sync()
	b.register("f::g")
	b.sync()
	b.close()
	if err := e.WaitFunctionGone(ctxT(t), "f::g"); err != nil {
		t.Fatal("the older registration must not be restored")
	}
	if r := c.callSync("f::g", `{}`); r.Error == nil || r.Error.Code != "function_not_found" {
		t.Fatalf("result = %s", wire.Encode(r))
	}
}

func TestAWorkerCanShadowABuiltinUntilItLeaves(t *testing.T) {
	e := NewEngine(t)
	w, c := dial(t, e), dial(t, e)
	w.register("engine::functions::list")
	w.sync()
	c.call("engine::functions::list", `{}`)
	expectMsg[*wire.InvokeFunction](t, w)
	w.close()
	if err := e.WaitFunctionGone(ctxT(t), "engine::functions::list"); err != nil {
		t.Fatal("a shadowed builtin must disappear with its shadow")
	}
}

func TestInFlightCallsToAReplacedOwnerStillComplete(t *testing.T) {
	e := NewEngine(t)
	a, b, c := dial(t, e), dial(t, e), dial(t, e)
	a.register("f::g")
	waitFn(t, e, "f::g")
	id := c.call("f::g", `{}`)
	expectMsg[*wire.InvokeFunction](t, a)
	b.register("f::g")
	b.sync()
	a.send(&wire.InvocationResult{InvocationID: id, FunctionID: "f::g", Result: json.RawMessage(`"old"`)})
	if r := expectMsg[*wire.InvocationResult](t, c); string(r.Result) != `"old"` {
		t.Fatalf("result = %s", wire.Encode(r))
	}
}

func TestEngineInvokeHasNoCallerWorkerID(t *testing.T) {
	e := NewEngine(t)
	h := dial(t, e)
	h.register("f::g")
	waitFn(t, e, "f::g")
	type out struct {
		res  json.RawMessage
		errb *wire.ErrorBody
		err  error
	}
	done := make(chan out, 1)
	go func() {
		r, eb, err := e.Invoke(ctxT(t), "f::g", json.RawMessage(`{"x":1}`))
		done <- out{r, eb, err}
	}()
	inv := expectMsg[*wire.InvokeFunction](t, h)
	if string(inv.Data) != `{"x":1}` || !inv.HasInvocationID {
		t.Fatalf("dispatch = %s", wire.Encode(inv))
	}
	h.send(&wire.InvocationResult{InvocationID: inv.InvocationID, FunctionID: "f::g", Result: json.RawMessage(`{"ok":true}`)})
	o := <-done
	if o.err != nil || o.errb != nil || string(o.res) != `{"ok":true}` {
		t.Fatalf("Invoke = %s %v %v", o.res, o.errb, o.err)
	}
	_, eb, err := e.Invoke(ctxT(t), "missing::fn", nil)
	if err != nil || eb == nil || eb.Code != "function_not_found" {
		t.Fatalf("Invoke(missing) = %v %v", eb, err)
	}
	res, eb, err := e.Invoke(ctxT(t), "engine::functions::list", json.RawMessage(`{}`))
	if err != nil || eb != nil || !strings.Contains(string(res), `"f::g"`) {
		t.Fatalf("Invoke(builtin) = %s %v %v", res, eb, err)
	}
}

func enqueue(c *client, id wire.UUID, fn, queue, data string) {
	c.send(&wire.InvokeFunction{InvocationID: id, HasInvocationID: !id.IsZero(), FunctionID: fn, Data: json.RawMessage(data),
		Action: wire.TriggerAction{Kind: wire.ActionEnqueue, Queue: queue}})
}

func TestEnqueueAnswersAReceiptAndRunsTheJob(t *testing.T) {
	e := NewEngine(t, WithQueue(QueueConfig{Queues: []string{"q"}}))
	c, h := dial(t, e), dial(t, e)
	h.register("jobs::run")
	waitFn(t, e, "jobs::run")
	id := wire.NewUUID()
	c.send(&wire.InvokeFunction{InvocationID: id, HasInvocationID: true, FunctionID: "jobs::run", Data: json.RawMessage(`{"n":1}`),
		Action: wire.TriggerAction{Kind: wire.ActionEnqueue, Queue: "q"}, Metadata: json.RawMessage(`{"dropped":true}`), Traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"})
	r := expectMsg[*wire.InvocationResult](t, c)
	var receipt struct {
		ID string `json:"messageReceiptId"`
	}
	if r.InvocationID != id || r.Error != nil || json.Unmarshal(r.Result, &receipt) != nil || receipt.ID == "" || r.FunctionID != "jobs::run" {
		t.Fatalf("result = %s", wire.Encode(r))
	}
	if _, err := wire.ParseUUID(receipt.ID); err != nil {
		t.Fatalf("receipt %q is not a UUID", receipt.ID)
	}
	inv := expectMsg[*wire.InvokeFunction](t, h)
	if string(inv.Data) != `{"n":1}` || inv.Metadata != nil || inv.Traceparent == "" {
		t.Fatalf("job dispatch = %s", wire.Encode(inv))
	}
	h.send(&wire.InvocationResult{InvocationID: inv.InvocationID, FunctionID: "jobs::run"})
	// Enqueue without an id: still enqueued, no answer.
	enqueue(c, wire.UUID{}, "jobs::run", "default", `{"n":2}`)
	if inv := expectMsg[*wire.InvokeFunction](t, h); string(inv.Data) != `{"n":2}` {
		t.Fatalf("job dispatch = %s", wire.Encode(inv))
	}
	c.expectQuiet()
}

// As on an engine without the queue worker, the double has no queue
// provider unless WithQueue installs one.
func TestEnqueueWithoutWithQueueFailsWithEnqueueError(t *testing.T) {
	e := NewEngine(t)
	c := dial(t, e)
	id := wire.NewUUID()
	enqueue(c, id, "jobs::run", "default", `{}`)
	r := expectMsg[*wire.InvocationResult](t, c)
	if r.InvocationID != id || r.Error == nil || r.Error.Code != "enqueue_error" || !strings.Contains(r.Error.Message, "iii worker add queue") {
		t.Fatalf("result = %s", wire.Encode(r))
	}
	if e.Functions()[enqueueProvider] != "" {
		t.Fatal("provider listed")
	}
}

func TestEnqueueToAnUnknownQueueFails(t *testing.T) {
	e := NewEngine(t, WithQueue(QueueConfig{}))
	c := dial(t, e)
	id := wire.NewUUID()
	enqueue(c, id, "jobs::run", "nope", `{}`)
	r := expectMsg[*wire.InvocationResult](t, c)
	if r.Error == nil || r.Error.Code != "enqueue_error" || !strings.Contains(r.Error.Message, "Queue 'nope' not found") {
		t.Fatalf("result = %s", wire.Encode(r))
	}
}

// A failed job is tried MaxAttempts times in total, then kept as a dead
// letter; a job for a function nobody registered fails rather than waits.
func TestEnqueueRetriesThenDeadLetters(t *testing.T) {
	e := NewEngine(t, WithQueue(QueueConfig{Backoff: time.Millisecond}))
	c, h := dial(t, e), dial(t, e)
	h.register("jobs::fail")
	waitFn(t, e, "jobs::fail")
	enqueue(c, wire.UUID{}, "jobs::fail", "default", `{"n":1}`)
	seen := map[wire.UUID]bool{}
	for range DefaultQueueMaxAttempts {
		inv := expectMsg[*wire.InvokeFunction](t, h)
		if seen[inv.InvocationID] || string(inv.Data) != `{"n":1}` {
			t.Fatalf("attempt = %s", wire.Encode(inv))
		}
		seen[inv.InvocationID] = true
		h.send(&wire.InvocationResult{InvocationID: inv.InvocationID, FunctionID: "jobs::fail", Error: &wire.ErrorBody{Code: "boom", Message: "no"}})
	}
	dl, err := e.WaitDeadLetters(ctxT(t), 1)
	if err != nil {
		t.Fatal(err)
	}
	if dl[0].FunctionID != "jobs::fail" || dl[0].Queue != "default" || dl[0].Attempts != 3 || dl[0].Error.Code != "boom" {
		t.Fatalf("dead letter = %+v", dl[0])
	}
	h.expectQuiet()

	enqueue(c, wire.UUID{}, "jobs::missing", "default", `{}`)
	dl, err = e.WaitDeadLetters(ctxT(t), 2)
	if err != nil {
		t.Fatal(err)
	}
	if dl[1].FunctionID != "jobs::missing" || dl[1].Error.Code != "function_not_found" {
		t.Fatalf("dead letter = %+v", dl[1])
	}
}

func TestEnqueueThroughAWorkerProviderWaitsForIt(t *testing.T) {
	e := NewEngine(t)
	q, c := dial(t, e), dial(t, e)
	q.register(enqueueProvider)
	q.sync()
	id := wire.NewUUID()
	c.send(&wire.InvokeFunction{InvocationID: id, HasInvocationID: true, FunctionID: "jobs::run", Data: json.RawMessage(`{"n":1}`), Action: wire.TriggerAction{Kind: wire.ActionEnqueue, Queue: "q"}})
	inv := expectMsg[*wire.InvokeFunction](t, q)
	in := mustJSON(t, inv.Data)
	if in["queue"] != "q" || in["function_id"] != "jobs::run" || in["messageReceiptId"] == nil || in["_caller_worker_id"] != nil {
		t.Fatalf("provider input = %s", inv.Data)
	}
	q.send(&wire.InvocationResult{InvocationID: inv.InvocationID, FunctionID: enqueueProvider, Error: &wire.ErrorBody{Code: "queue_full", Message: "no room"}})
	r := expectMsg[*wire.InvocationResult](t, c)
	if r.Error == nil || r.Error.Code != "enqueue_error" || r.Error.Message != "queue_full: no room" {
		t.Fatalf("result = %s", wire.Encode(r))
	}
}

// The handler gets the caller's trace context with iii.function.id naming
// the target, even when the caller sent only a traceparent; the result goes
// back with the caller's own headers.
func TestHandlerBaggageNamesTheTargetFunction(t *testing.T) {
	e := NewEngine(t)
	c, h := dial(t, e), dial(t, e)
	h.register("orders::create")
	waitFn(t, e, "orders::create")
	tp := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	c.send(&wire.InvokeFunction{InvocationID: wire.NewUUID(), HasInvocationID: true, FunctionID: "orders::create", Data: json.RawMessage(`{}`), Traceparent: tp})
	inv := expectMsg[*wire.InvokeFunction](t, h)
	if inv.Baggage != "iii.function.id=orders::create" || inv.Traceparent != tp {
		t.Fatalf("dispatch = %s", wire.Encode(inv))
	}
	h.send(&wire.InvocationResult{InvocationID: inv.InvocationID, FunctionID: "orders::create"})
	if r := expectMsg[*wire.InvocationResult](t, c); r.Baggage != "" || r.Traceparent != tp {
		t.Fatalf("result = %s", wire.Encode(r))
	}
	// No trace context at all: none is invented.
	c.send(&wire.InvokeFunction{InvocationID: wire.NewUUID(), HasInvocationID: true, FunctionID: "orders::create", Data: json.RawMessage(`{}`)})
	if inv := expectMsg[*wire.InvokeFunction](t, h); inv.Baggage != "" || inv.Traceparent != "" {
		t.Fatalf("dispatch = %s", wire.Encode(inv))
	}
}

// Reusing the id of a pending call fails the earlier call with
// invocation_error "channel closed", as the engine's pending map does.
func TestReusedPendingInvocationIDFailsTheEarlierCall(t *testing.T) {
	e := NewEngine(t)
	c, h := dial(t, e), dial(t, e)
	h.register("slow::fn")
	waitFn(t, e, "slow::fn")
	id := wire.NewUUID()
	c.send(&wire.InvokeFunction{InvocationID: id, HasInvocationID: true, FunctionID: "slow::fn", Data: json.RawMessage(`{"n":1}`)})
	expectMsg[*wire.InvokeFunction](t, h)
	c.send(&wire.InvokeFunction{InvocationID: id, HasInvocationID: true, FunctionID: "slow::fn", Data: json.RawMessage(`{"n":2}`)})
	r := expectMsg[*wire.InvocationResult](t, c)
	if r.InvocationID != id || r.Error == nil || r.Error.Code != "invocation_error" || r.Error.Message != "channel closed" {
		t.Fatalf("result = %s", wire.Encode(r))
	}
	inv := expectMsg[*wire.InvokeFunction](t, h)
	h.send(&wire.InvocationResult{InvocationID: inv.InvocationID, FunctionID: "slow::fn", Result: json.RawMessage(`2`)})
	if r := expectMsg[*wire.InvocationResult](t, c); r.Error != nil || string(r.Result) != "2" {
		t.Fatalf("result = %s", wire.Encode(r))
	}
}

// With WithUnorderedDispatch, calls from one caller reach the handler in
// no particular order, as on the engine.
func TestUnorderedDispatchReordersCalls(t *testing.T) {
	e := NewEngine(t, WithUnorderedDispatch())
	c, h := dial(t, e), dial(t, e)
	h.register("seq::fn")
	waitFn(t, e, "seq::fn")
	const n = 100
	for round := 0; ; round++ {
		if round == 20 {
			t.Fatal("calls always arrived in order")
		}
		for i := range n {
			c.send(&wire.InvokeFunction{FunctionID: "seq::fn", Data: json.RawMessage(strconv.Itoa(i)), Action: wire.TriggerAction{Kind: wire.ActionVoid}})
		}
		reordered := false
		for i := range n {
			inv := expectMsg[*wire.InvokeFunction](t, h)
			if string(inv.Data) != strconv.Itoa(i) {
				reordered = true
			}
		}
		if reordered {
			return
		}
	}
}

// A call routed to a handler whose connection is already closed (before
// its cleanup ran) fails at once with channel_send_failed.
func TestCallToAClosedHandlerFailsWithChannelSendFailed(t *testing.T) {
	e := NewEngine(t)
	c, h := dial(t, e), dial(t, e)
	h.register("gone::fn")
	waitFn(t, e, "gone::fn")
	e.mu.Lock()
	hs := e.st.workers[h.id].sock
	e.mu.Unlock()
	hs.mu.Lock()
	hs.closed = true // what kill does first; the cleanup has not run yet
	hs.mu.Unlock()
	id := wire.NewUUID()
	c.send(&wire.InvokeFunction{InvocationID: id, HasInvocationID: true, FunctionID: "gone::fn", Data: json.RawMessage(`{}`)})
	r := expectMsg[*wire.InvocationResult](t, c)
	if r.InvocationID != id || r.Error == nil || r.Error.Code != "channel_send_failed" || r.Error.Message != "channel closed" {
		t.Fatalf("result = %s", wire.Encode(r))
	}
	_, errb, err := e.Invoke(ctxT(t), "gone::fn", nil)
	if err != nil || errb == nil || errb.Code != "channel_send_failed" {
		t.Fatalf("Invoke = %v %v", errb, err)
	}
}

// A queue delivers at most Concurrency jobs at a time; the others wait.
func TestQueueConcurrencyLimitsDeliveries(t *testing.T) {
	e := NewEngine(t, WithQueue(QueueConfig{Concurrency: 1}))
	c, h := dial(t, e), dial(t, e)
	h.register("jobs::slow")
	waitFn(t, e, "jobs::slow")
	enqueue(c, wire.UUID{}, "jobs::slow", "default", `1`)
	enqueue(c, wire.UUID{}, "jobs::slow", "default", `2`)
	first := expectMsg[*wire.InvokeFunction](t, h)
	if err := e.waitFor(ctxT(t), func() bool { return e.st.queueWaiting == 1 }); err != nil {
		t.Fatal("the second job did not wait for a slot")
	}
	h.send(&wire.InvocationResult{InvocationID: first.InvocationID, FunctionID: "jobs::slow"})
	second := expectMsg[*wire.InvokeFunction](t, h)
	if string(first.Data)+string(second.Data) != "12" && string(first.Data)+string(second.Data) != "21" {
		t.Fatalf("jobs %s %s", first.Data, second.Data)
	}
}

// The engine puts the rewritten iii.function.id last (seen on engine
// v0.22.1: "user=x,iii.function.id=<target>" for "iii.function.id=caller::fn,user=x").
func TestHandlerBaggageKeepsOtherMembersAndPutsTheFunctionIDLast(t *testing.T) {
	e := NewEngine(t)
	c, h := dial(t, e), dial(t, e)
	h.register("orders::create")
	waitFn(t, e, "orders::create")
	c.send(&wire.InvokeFunction{InvocationID: wire.NewUUID(), HasInvocationID: true, FunctionID: "orders::create", Data: json.RawMessage(`{}`),
		Traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", Baggage: "iii.function.id=caller::fn,user=x"})
	if inv := expectMsg[*wire.InvokeFunction](t, h); inv.Baggage != "user=x,iii.function.id=orders::create" {
		t.Fatalf("baggage %q", inv.Baggage)
	}
}

// The handler gets the caller's traceparent as the engine re-injects it:
// normalised or dropped. Each case is what engine v0.22.1 forwarded.
func TestHandlerTraceparentIsNormalisedOrDroppedAsTheEngineDoes(t *testing.T) {
	e := NewEngine(t)
	c, h := dial(t, e), dial(t, e)
	h.register("orders::create")
	waitFn(t, e, "orders::create")
	const tr, sp = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	for _, tc := range []struct{ sent, got string }{
		{"00-" + tr + "-" + sp + "-01", "00-" + tr + "-" + sp + "-01"},
		{"00-" + tr + "-" + sp + "-00", "00-" + tr + "-" + sp + "-00"},
		{"00-" + tr + "-" + sp + "-02", "00-" + tr + "-" + sp + "-00"}, // only the sampled flag is kept
		{"00-" + tr + "-" + sp + "-03", ""},                            // version 00 allows flags up to 02
		{"00-4BF92F3577B34DA6A3CE929D0E0E4736-" + sp + "-01", ""},      // uppercase
		{"00-00000000000000000000000000000000-" + sp + "-01", ""},      // invalid trace id
		{"00-" + tr + "-0000000000000000-01", ""},                      // invalid span id
		{"01-" + tr + "-" + sp + "-01", "00-" + tr + "-" + sp + "-01"},
		{"01-" + tr + "-" + sp + "-09-extra", "00-" + tr + "-" + sp + "-01"}, // a later version may have more parts
		{"00-" + tr + "-" + sp + "-01-extra", ""},                            // version 00 may not
		{"ff-" + tr + "-" + sp + "-01", ""},
		{" 00-" + tr + "-" + sp + "-01 ", "00-" + tr + "-" + sp + "-01"},
		{"00-4bf92f3577b34da6a3ce929d0e0e473-" + sp + "-01", "00-04bf92f3577b34da6a3ce929d0e0e473-" + sp + "-01"}, // padded
		{"0-" + tr + "-" + sp + "-1", "00-" + tr + "-" + sp + "-01"},
		{"garbage", ""},
	} {
		c.send(&wire.InvokeFunction{InvocationID: wire.NewUUID(), HasInvocationID: true, FunctionID: "orders::create", Data: json.RawMessage(`{}`), Traceparent: tc.sent})
		inv := expectMsg[*wire.InvokeFunction](t, h)
		// The baggage names the target even when the traceparent is dropped.
		if inv.Traceparent != tc.got || inv.Baggage != "iii.function.id=orders::create" {
			t.Errorf("traceparent %q: handler got %q with baggage %q, want %q", tc.sent, inv.Traceparent, inv.Baggage, tc.got)
		}
	}
}
