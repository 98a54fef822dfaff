package iiitest

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/iii-go/iii/connection/wire"
)

// publish calls iii::durable::publish and returns its result; the
// deliveries that arrived first (the engine promises no order between
// them) are left in c.early.
type pubClient struct {
	*client
	early []wire.Message
}

func (c *pubClient) publish(data string) *wire.InvocationResult {
	c.t.Helper()
	return c.callEarly(durablePublish, data)
}

// callEarly calls fn and returns its result, keeping what arrived first.
func (c *pubClient) callEarly(fn, data string) *wire.InvocationResult {
	c.t.Helper()
	id := c.call(fn, data)
	for {
		m := c.nextMsg()
		if r, ok := m.(*wire.InvocationResult); ok && r.InvocationID == id {
			return r
		}
		c.early = append(c.early, m)
	}
}

// nextInvoke returns the next invokefunction, early ones first.
func (c *pubClient) nextInvoke() *wire.InvokeFunction {
	c.t.Helper()
	if len(c.early) > 0 {
		m := c.early[0]
		c.early = c.early[1:]
		inv, ok := m.(*wire.InvokeFunction)
		if !ok {
			c.t.Fatalf("got %s, want an invokefunction", wire.Encode(m))
		}
		return inv
	}
	return expectMsg[*wire.InvokeFunction](c.t, c.client)
}

func TestDurableSubscriberNeedsWithQueue(t *testing.T) {
	e := NewEngine(t)
	c := dial(t, e)
	c.register("orders::on")
	c.send(&wire.RegisterTrigger{ID: "s1", TriggerType: "durable:subscriber", FunctionID: "orders::on", Config: json.RawMessage(`{"topic":"orders"}`)})
	c.sync()
	if r := c.callSync(durablePublish, `{"topic":"orders","data":1}`); r.Error == nil || r.Error.Code != "function_not_found" {
		t.Fatalf("publish without the queue worker: %s", wire.Encode(r))
	}
	var tl struct {
		Triggers []triggerTypeSummary `json:"triggers"`
	}
	c.builtin("engine::triggers::list", `{}`, &tl)
	for _, tt := range tl.Triggers {
		if tt.ID == "durable:subscriber" {
			t.Fatal("durable:subscriber listed without WithQueue")
		}
	}
}

func TestDurablePublishFansOutPerFunctionAndSubscriptionsCompete(t *testing.T) {
	e := NewEngine(t, WithQueue(QueueConfig{}))
	c := &pubClient{client: dial(t, e)}
	c.register("orders::bill")
	c.register("orders::ship")
	c.send(&wire.RegisterTrigger{ID: "s1", TriggerType: "durable:subscriber", FunctionID: "orders::bill", Config: json.RawMessage(`{"topic":"orders"}`), Metadata: json.RawMessage(`{"m":1}`)})
	c.send(&wire.RegisterTrigger{ID: "s2", TriggerType: "durable:subscriber", FunctionID: "orders::bill", Config: json.RawMessage(`{"topic":"orders"}`)})
	c.send(&wire.RegisterTrigger{ID: "s3", TriggerType: "durable:subscriber", FunctionID: "orders::ship", Config: json.RawMessage(`{"topic":"orders"}`)})
	c.send(&wire.RegisterTrigger{ID: "s4", TriggerType: "durable:subscriber", FunctionID: "orders::ship", Config: json.RawMessage(`{"topic":""}`)})
	if got := c.sync(); len(got) != 0 { // no refusal, not even for the empty topic
		t.Fatalf("got %s", encodeAll(got))
	}
	r := c.publish(`{"topic":"orders","data":{"id":7}}`)
	if r.Error != nil || r.Result != nil {
		t.Fatalf("publish = %s", wire.Encode(r))
	}
	got := map[string]int{}
	for range 2 {
		inv := c.nextInvoke()
		if string(inv.Data) != `{"id":7}` || inv.Metadata != nil {
			t.Fatalf("delivery = %s", wire.Encode(inv))
		}
		got[inv.FunctionID]++
		c.send(&wire.InvocationResult{InvocationID: inv.InvocationID, FunctionID: inv.FunctionID, Result: json.RawMessage(`null`)})
	}
	if got["orders::bill"] != 1 || got["orders::ship"] != 1 {
		t.Fatalf("deliveries %v, want one per function", got)
	}
	c.expectQuiet()
	// A topic nobody consumes loses the message.
	if r := c.publish(`{"topic":"nobody","data":1}`); r.Error != nil {
		t.Fatal(wire.Encode(r))
	}
	c.expectQuiet()
	for _, tc := range []struct{ in, code, msg string }{
		{`{"data":1}`, "deserialization_error", "Failed to deserialize input for iii::durable::publish: missing field `topic`"},
		{`{"topic":"orders"}`, "deserialization_error", "Failed to deserialize input for iii::durable::publish: missing field `data`"},
		{`{"topic":"","data":1}`, "topic_not_set", "Topic is not set"},
	} {
		r := c.publish(tc.in)
		if r.Error == nil || r.Error.Code != tc.code || r.Error.Message != tc.msg {
			t.Fatalf("%s: %s", tc.in, wire.Encode(r))
		}
	}
}

func TestDurableRetriesWithBackoffThenDeadLetter(t *testing.T) {
	clock := NewFakeClock(mustTime(t, "2026-12-03T10:00:00Z"))
	e := NewEngine(t, WithQueue(QueueConfig{}), WithClock(clock))
	c := &pubClient{client: dial(t, e)}
	c.register("orders::bill")
	c.send(&wire.RegisterTrigger{ID: "s1", TriggerType: "durable:subscriber", FunctionID: "orders::bill", Config: json.RawMessage(`{"topic":"orders"}`)})
	c.publish(`{"topic":"orders","data":{"id":7}}`)
	fail := &wire.ErrorBody{Code: "E", Message: "boom"}
	start := clock.Now()
	for attempt := 1; attempt <= 3; attempt++ {
		inv := c.nextInvoke()
		c.send(&wire.InvocationResult{InvocationID: inv.InvocationID, FunctionID: inv.FunctionID, Error: fail})
		if attempt == 3 {
			break
		}
		if err := clock.WaitTimers(ctxT(t), 1); err != nil {
			t.Fatal(err)
		}
		// 1 s after the first failure, 2 s after the second.
		at, _ := clock.NextTimer()
		if want := start.Add(time.Duration(1<<(attempt-1)) * time.Second); !at.Equal(want) {
			t.Fatalf("retry %d due %s, want %s", attempt, at, want)
		}
		clock.Advance(at.Sub(clock.Now()))
		start = clock.Now()
	}
	dl, err := e.WaitDeadLetters(ctxT(t), 1)
	if err != nil {
		t.Fatal(err)
	}
	if d := dl[0]; d.Topic != "orders" || d.Queue != "" || d.FunctionID != "orders::bill" || d.Attempts != 3 || string(d.Data) != `{"id":7}` || d.Error.Code != "E" {
		t.Fatalf("dead letter = %+v", d)
	}
	// maxRetries 0: one attempt only.
	c.send(&wire.RegisterTrigger{ID: "s2", TriggerType: "durable:subscriber", FunctionID: "orders::bill", Config: json.RawMessage(`{"topic":"once","queue_config":{"maxRetries":0}}`)})
	c.publish(`{"topic":"once","data":2}`)
	inv := c.nextInvoke()
	c.send(&wire.InvocationResult{InvocationID: inv.InvocationID, FunctionID: inv.FunctionID, Error: fail})
	if dl, err = e.WaitDeadLetters(ctxT(t), 2); err != nil || dl[1].Topic != "once" || dl[1].Attempts != 1 {
		t.Fatalf("dead letters = %+v %v", dl, err)
	}
}

func TestDurableConditionFunction(t *testing.T) {
	e := NewEngine(t, WithQueue(QueueConfig{}))
	c := &pubClient{client: dial(t, e)}
	c.register("orders::bill")
	c.register("orders::big")
	c.send(&wire.RegisterTrigger{ID: "s1", TriggerType: "durable:subscriber", FunctionID: "orders::bill", Config: json.RawMessage(`{"topic":"orders","condition_function_id":"orders::big"}`)})
	for _, answer := range []string{`false`, `true`} {
		c.publish(`{"topic":"orders","data":{"n":1}}`)
		cond := c.nextInvoke()
		if cond.FunctionID != "orders::big" || string(cond.Data) != `{"n":1}` {
			t.Fatalf("condition call = %s", wire.Encode(cond))
		}
		c.send(&wire.InvocationResult{InvocationID: cond.InvocationID, FunctionID: cond.FunctionID, Result: json.RawMessage(answer)})
	}
	inv := c.nextInvoke()
	if inv.FunctionID != "orders::bill" {
		t.Fatalf("handler call = %s", wire.Encode(inv))
	}
}

func TestDurableFIFOSubscriptionDeliversOneAtATimeAndRetriesInline(t *testing.T) {
	clock := NewFakeClock(mustTime(t, "2026-12-03T10:00:00Z"))
	e := NewEngine(t, WithQueue(QueueConfig{}), WithClock(clock))
	c := &pubClient{client: dial(t, e)}
	c.register("ledger::post")
	c.send(&wire.RegisterTrigger{ID: "s1", TriggerType: "durable:subscriber", FunctionID: "ledger::post", Config: json.RawMessage(`{"topic":"ledger","queue_config":{"type":"fifo","backoffDelayMs":500}}`)})
	c.publish(`{"topic":"ledger","data":1}`)
	c.publish(`{"topic":"ledger","data":2}`)
	inv := c.nextInvoke()
	if string(inv.Data) != "1" || len(c.early) != 0 {
		t.Fatalf("first delivery %s, early %s", inv.Data, encodeAll(c.early))
	}
	c.expectQuiet() // 2 waits for 1
	c.send(&wire.InvocationResult{InvocationID: inv.InvocationID, FunctionID: inv.FunctionID, Error: &wire.ErrorBody{Code: "E", Message: "x"}})
	if err := clock.WaitTimers(ctxT(t), 1); err != nil {
		t.Fatal(err)
	}
	c.expectQuiet() // the retry of 1 still blocks 2
	if at, _ := clock.NextTimer(); !at.Equal(clock.Now().Add(500 * time.Millisecond)) {
		t.Fatalf("retry due %s", at)
	}
	clock.Advance(500 * time.Millisecond)
	inv = c.nextInvoke()
	if string(inv.Data) != "1" {
		t.Fatalf("retry delivered %s", inv.Data)
	}
	c.send(&wire.InvocationResult{InvocationID: inv.InvocationID, FunctionID: inv.FunctionID, Result: json.RawMessage(`null`)})
	if inv = c.nextInvoke(); string(inv.Data) != "2" {
		t.Fatalf("then %s", inv.Data)
	}
}
