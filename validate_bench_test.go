package iii

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/iii-go/iii/connection/wire"
)

// benchOrder is the request type of BenchmarkValidateInput.
type benchOrder struct {
	SKU   string   `json:"sku" jsonschema:"minLength=1,maxLength=32"`
	Qty   int      `json:"qty" jsonschema:"minimum=1,maximum=100"`
	Email string   `json:"email,omitempty" jsonschema:"format=email"`
	Tags  []string `json:"tags,omitempty" jsonschema:"maxItems=8"`
	Price float64  `json:"price" jsonschema:"exclusiveMinimum=0"`
}

// BenchmarkValidateInput measures what ValidateInput adds to an
// invocation: the registered handler of a typed function (decode, run,
// encode) is called directly, with and without validation, on a ~120-byte
// payload that carries the engine's _caller_worker_id. No network or
// engine is involved, so the difference between the two is the cost of
// validation per call.
//
//	go test -run '^$' -bench ValidateInput -benchmem
func BenchmarkValidateInput(b *testing.B) {
	payload := json.RawMessage(`{"sku":"A-12345","qty":3,"email":"buyer@example.com","tags":["gift","rush"],"price":12.5,"_caller_worker_id":"8c1f"}`)
	for _, bc := range []struct {
		name string
		opts []FunctionOption
	}{{"off", nil}, {"on", []FunctionOption{ValidateInput()}}} {
		b.Run(bc.name, func(b *testing.B) {
			// Registrations wait in the registry for a connection that
			// never comes; the handler is taken from it.
			w := RegisterWorker("ws://127.0.0.1:1", InitOptions{Reconnect: &ReconnectConfig{MaxRetries: 1}})
			defer w.Shutdown()
			_, err := RegisterFunction(w, "bench::order", func(ctx context.Context, o benchOrder) (int, error) {
				return o.Qty, nil
			}, bc.opts...)
			if err != nil {
				b.Fatal(err)
			}
			h := w.reg.Lookup("bench::order").Handler
			m := &wire.InvokeFunction{FunctionID: "bench::order", Data: payload}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := h(ctx, m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
