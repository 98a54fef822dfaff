package iii_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/test/iiitest"
)

// A worker that registers a typed function and calls it. Outside tests the
// address is the engine's, e.g. "ws://127.0.0.1:49134".
func Example() {
	eng, _ := iiitest.Start("127.0.0.1:0") // an engine double
	defer eng.Close()

	w := iii.RegisterWorker(eng.URL, iii.InitOptions{})
	defer w.Shutdown()
	iii.RegisterFunction(w, "greet::hello", func(ctx context.Context, name string) (string, error) {
		return "hello, " + name, nil
	})

	msg, err := iii.Call[string](context.Background(), w, "greet::hello", "world")
	fmt.Println(msg, err)
	// Output: hello, world <nil>
}

type Order struct {
	SKU string `json:"sku"`
	Qty int    `json:"qty"`
}

type Receipt struct {
	OrderID string `json:"order_id"`
	Total   int    `json:"total"`
}

// Typed functions: the payload is decoded into the request type, the
// result encoded from the response type, and JSON Schemas of both are sent
// with the registration. Per-call metadata reaches the handler's context.
func ExampleRegisterFunction() {
	eng, _ := iiitest.Start("127.0.0.1:0")
	defer eng.Close()
	w := iii.RegisterWorker(eng.URL, iii.InitOptions{})
	defer w.Shutdown()

	iii.RegisterFunction(w, "orders::create", func(ctx context.Context, o Order) (Receipt, error) {
		tenant := iii.MetadataFromContext(ctx)
		fmt.Printf("creating %d × %s for %s\n", o.Qty, o.SKU, tenant)
		return Receipt{OrderID: "o-1", Total: 250 * o.Qty}, nil
	}, iii.WithDescription("Create an order"))

	raw, err := w.Trigger(context.Background(), iii.TriggerRequest{
		FunctionID: "orders::create",
		Payload:    Order{SKU: "A-1", Qty: 2},
		Metadata:   map[string]string{"tenant": "acme"},
	})
	fmt.Println(string(raw), err)
	// Output:
	// creating 2 × A-1 for {"tenant":"acme"}
	// {"order_id":"o-1","total":500} <nil>
}

// Errors: a handler chooses its error code with an InvocationError; the
// caller gets a *RemoteError. Calls to missing functions fail with the
// engine's function_not_found.
func ExampleRemoteError() {
	eng, _ := iiitest.Start("127.0.0.1:0")
	defer eng.Close()
	w := iii.RegisterWorker(eng.URL, iii.InitOptions{})
	defer w.Shutdown()
	ctx := context.Background()

	iii.RegisterFunction(w, "stock::reserve", func(ctx context.Context, sku string) (any, error) {
		return nil, iii.NewInvocationError("OUT_OF_STOCK", sku+" is out of stock")
	})

	_, err := iii.Call[any](ctx, w, "stock::reserve", "A-1")
	var re *iii.RemoteError
	if errors.As(err, &re) {
		fmt.Println(re.Code, "-", re.Message)
	}
	_, err = iii.Call[any](ctx, w, "stock::missing", nil)
	fmt.Println(iii.ErrorCode(err))
	// Output:
	// OUT_OF_STOCK - A-1 is out of stock
	// function_not_found
}

// Fire-and-forget and queued calls: Void returns at once; Enqueue returns
// the engine's receipt once the queue has the job.
func ExampleVoid() {
	// Enqueue needs a queue provider: the engine's queue worker, or the
	// double's in-memory one.
	eng, _ := iiitest.Start("127.0.0.1:0", iiitest.WithQueue(iiitest.QueueConfig{Queues: []string{"audit"}}))
	defer eng.Close()
	w := iii.RegisterWorker(eng.URL, iii.InitOptions{})
	defer w.Shutdown()
	ctx := context.Background()

	done := make(chan string, 2)
	iii.RegisterFunction(w, "audit::log", func(ctx context.Context, event string) (any, error) {
		done <- event
		return nil, nil
	})

	w.Trigger(ctx, iii.TriggerRequest{FunctionID: "audit::log", Payload: "login", Action: iii.Void()})
	fmt.Println(<-done)

	receipt, err := w.Enqueue(ctx, "audit", "audit::log", "logout")
	fmt.Println(len(receipt.MessageReceiptID), err)
	fmt.Println(<-done)
	// Output:
	// login
	// 36 <nil>
	// logout
}
