package iii_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/test/iiitest"
)

// PlaceOrder shows the struct tags the derived schema reads: json names
// the property (omitempty makes it optional; every other field is
// required), jsonschema adds rules.
type PlaceOrder struct {
	SKU   string `json:"sku" jsonschema:"minLength=1,description=Stock keeping unit"`
	Qty   int    `json:"qty" jsonschema:"minimum=1,maximum=100"`
	Email string `json:"email,omitempty" jsonschema:"format=email"`
	Rush  bool   `json:"rush,omitempty"`
}

// The request schema is derived from the Go type and published with the
// function; ValidateInput checks every payload against it before the
// handler runs, and answers a mismatch with invalid_request naming the
// field and the rule.
func ExampleValidateInput() {
	eng, _ := iiitest.Start("127.0.0.1:0")
	defer eng.Close()
	w := iii.RegisterWorker(eng.URL, iii.InitOptions{})
	defer w.Shutdown()
	ctx := context.Background()

	iii.RegisterFunction(w, "orders::place", func(ctx context.Context, o PlaceOrder) (int, error) {
		return 250 * o.Qty, nil
	}, iii.ValidateInput())

	// What the engine (and every other worker) sees of the schema.
	info, _ := w.FunctionInfo(ctx, "orders::place")
	var schema struct {
		Required   []string                   `json:"required"`
		Properties map[string]json.RawMessage `json:"properties"`
	}
	json.Unmarshal(info.RequestSchema, &schema)
	fmt.Println("required:", schema.Required)
	fmt.Println("qty:", string(schema.Properties["qty"]))

	total, err := iii.Call[int](ctx, w, "orders::place", PlaceOrder{SKU: "A-1", Qty: 2})
	fmt.Println(total, err)

	_, err = iii.Call[int](ctx, w, "orders::place", map[string]any{"qty": 0, "email": "nobody"})
	var re *iii.RemoteError
	if errors.As(err, &re) {
		fmt.Println(re.Code)
		fmt.Println(re.Message)
	}
	// Output:
	// required: [sku qty]
	// qty: {"type":"integer","maximum":100,"minimum":1}
	// 500 <nil>
	// invalid_request
	// payload of orders::place does not match its schema: email: format: 'nobody' is not valid email: missing @; qty: minimum: got 0, want 1; sku: required: missing
}
