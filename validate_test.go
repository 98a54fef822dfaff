package iii_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/test/iiitest"
)

// placeOrder is a request type with schema rules in its tags.
type placeOrder struct {
	SKU   string   `json:"sku" jsonschema:"minLength=1"`
	Qty   int      `json:"qty" jsonschema:"minimum=1,maximum=100"`
	Email string   `json:"email,omitempty" jsonschema:"format=email"`
	Tags  []string `json:"tags,omitempty" jsonschema:"maxItems=2"`
	Note  *string  `json:"note,omitempty"`
}

func TestValidateInputRefusesPayloadsThatBreakTheSchema(t *testing.T) {
	eng, handler, caller := twoWorkers(t)
	var ran atomic.Int64
	h := func(ctx context.Context, o placeOrder) (int, error) {
		ran.Add(1)
		return o.Qty, nil
	}
	mustRegister(t, eng, handler, "orders::place", h, iii.ValidateInput())
	ctx := testCtx(t)
	cases := []struct {
		payload string
		want    []string // each must appear in the message
	}{
		{`{"sku":"A-1","qty":0}`, []string{"qty: minimum: got 0, want 1"}},
		{`{"sku":"A-1","qty":101}`, []string{"qty: maximum: got 101, want 100"}},
		{`{"qty":2}`, []string{"sku: required: missing"}},
		{`{"sku":"","qty":2}`, []string{"sku: minLength: got 0, want 1"}},
		{`{"sku":"A-1","qty":"two"}`, []string{"qty: type: got string, want integer"}},
		{`{"sku":"A-1","qty":1.5}`, []string{"qty: type: got number, want integer"}},
		{`{"sku":"A-1","qty":2,"colour":"red"}`, []string{"colour: additionalProperties: not allowed"}},
		{`{"sku":"A-1","qty":2,"email":"nope"}`, []string{"email: format:"}},
		{`{"sku":"A-1","qty":2,"tags":["a","b","c"]}`, []string{"tags: maxItems: got 3, want 2"}},
		{`{"qty":0}`, []string{"qty: minimum", "sku: required"}},
		{`"A-1"`, []string{"payload: type: got string, want object"}},
		{`null`, []string{"payload: type: got null, want object"}},
	}
	for _, c := range cases {
		_, err := caller.Trigger(ctx, iii.TriggerRequest{FunctionID: "orders::place", Payload: json.RawMessage(c.payload)})
		var re *iii.RemoteError
		if !errors.As(err, &re) || re.Code != iii.CodeInvalidRequest {
			t.Fatalf("%s: got %v, want an invalid_request error", c.payload, err)
		}
		for _, w := range c.want {
			if !strings.Contains(re.Message, w) {
				t.Errorf("%s: message %q does not contain %q", c.payload, re.Message, w)
			}
		}
		if strings.Contains(re.Message, "placeOrder") || strings.Contains(re.Message, "iii_test") {
			t.Errorf("%s: message %q names a Go type", c.payload, re.Message)
		}
	}
	if n := ran.Load(); n != 0 {
		t.Fatalf("the handler ran %d times on invalid payloads", n)
	}
	// A valid payload (with the _caller_worker_id the engine adds) runs.
	got, err := iii.Call[int](ctx, caller, "orders::place", placeOrder{SKU: "A-1", Qty: 3, Email: "a@example.com"})
	if err != nil || got != 3 || ran.Load() != 1 {
		t.Fatalf("valid payload: %v, %v (ran %d)", got, err, ran.Load())
	}
}

func TestWithoutValidateInputThePayloadOnlyHasToDecode(t *testing.T) {
	eng, handler, caller := twoWorkers(t)
	mustRegister(t, eng, handler, "orders::lax", func(ctx context.Context, o placeOrder) (int, error) {
		return o.Qty, nil
	})
	got, err := iii.Call[int](testCtx(t), caller, "orders::lax", json.RawMessage(`{"qty":0,"colour":"red"}`))
	if err != nil || got != 0 {
		t.Fatalf("got %v, %v", got, err)
	}
}

func TestValidateInputChecksAGivenSchemaOnARawFunction(t *testing.T) {
	eng, handler, caller := twoWorkers(t)
	ref, err := handler.RegisterFunctionRaw("raw::checked", func(ctx context.Context, p json.RawMessage) (any, error) {
		return p, nil
	}, iii.WithRequestSchema(json.RawMessage(`{"type":"object","properties":{"items":{"type":"array","items":{"type":"object","properties":{"n":{"type":"integer","minimum":0}}}}}}`)),
		iii.ValidateInput())
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.WaitFunction(testCtx(t), ref.ID()); err != nil {
		t.Fatal(err)
	}
	_, err = caller.Trigger(testCtx(t), iii.TriggerRequest{FunctionID: "raw::checked", Payload: json.RawMessage(`{"items":[{"n":1},{"n":-1}]}`)})
	if iii.ErrorCode(err) != iii.CodeInvalidRequest || !strings.Contains(err.Error(), "items[1].n: minimum: got -1, want 0") {
		t.Fatalf("got %v", err)
	}
}

func TestValidateInputWithoutASchemaFailsRegistration(t *testing.T) {
	eng := iiitest.NewEngine(t)
	w := newWorker(t, eng, fastOptions())
	h := func(context.Context, placeOrder) (int, error) { return 0, nil }
	if _, err := iii.RegisterFunction(w, "v::none", h, iii.WithoutSchemas(), iii.ValidateInput()); !errors.Is(err, iii.ErrInvalidSchema) {
		t.Errorf("WithoutSchemas: got %v, want ErrInvalidSchema", err)
	}
	if _, err := iii.RegisterFunction(w, "v::bad", h, iii.WithRequestSchema(json.RawMessage(`{"type":"no-such-type"}`)), iii.ValidateInput()); !errors.Is(err, iii.ErrInvalidSchema) {
		t.Errorf("bad schema: got %v, want ErrInvalidSchema", err)
	}
	raw := func(context.Context, json.RawMessage) (any, error) { return nil, nil }
	if _, err := w.RegisterFunctionRaw("v::raw", raw, iii.ValidateInput()); !errors.Is(err, iii.ErrInvalidSchema) {
		t.Errorf("raw: got %v, want ErrInvalidSchema", err)
	}
}

// A payload that does not decode into the request type is answered in
// JSON terms: the field and the JSON types, never the Go type's name.
func TestDecodeErrorsNameTheFieldNotTheGoType(t *testing.T) {
	eng, handler, caller := twoWorkers(t)
	mustRegister(t, eng, handler, "orders::decode", func(ctx context.Context, o placeOrder) (int, error) {
		return o.Qty, nil
	}, iii.WithoutSchemas())
	cases := []struct{ payload, want string }{
		{`{"qty":"two"}`, "payload of orders::decode does not decode: qty: type: got string, want integer"},
		{`{"tags":"a"}`, "tags: type: got string, want array"},
		{`[1]`, "payload: type: got array, want object"},
	}
	for _, c := range cases {
		_, err := caller.Trigger(testCtx(t), iii.TriggerRequest{FunctionID: "orders::decode", Payload: json.RawMessage(c.payload)})
		var re *iii.RemoteError
		if !errors.As(err, &re) || re.Code != iii.CodeInvalidRequest {
			t.Fatalf("%s: got %v", c.payload, err)
		}
		if !strings.Contains(re.Message, c.want) || strings.Contains(re.Message, "placeOrder") || strings.Contains(re.Message, "Go ") {
			t.Errorf("%s: message %q, want it to contain %q and no Go type", c.payload, re.Message, c.want)
		}
	}
}

// A recursive type's schema is a $ref into $defs; it validates all the same.
func TestValidateInputFollowsTheReferencesOfARecursiveType(t *testing.T) {
	eng, handler, caller := twoWorkers(t)
	mustRegister(t, eng, handler, "list::checked", func(ctx context.Context, n listNode) (int, error) {
		return n.Value, nil
	}, iii.ValidateInput())
	_, err := caller.Trigger(testCtx(t), iii.TriggerRequest{FunctionID: "list::checked", Payload: json.RawMessage(`{"value":1,"next":{"value":"two"}}`)})
	if iii.ErrorCode(err) != iii.CodeInvalidRequest || !strings.Contains(err.Error(), "next.value: type: got string, want integer") {
		t.Fatalf("got %v", err)
	}
	if got, err := iii.Call[int](testCtx(t), caller, "list::checked", listNode{Value: 7, Next: &listNode{}}); err != nil || got != 7 {
		t.Fatalf("valid: %v, %v", got, err)
	}
}
