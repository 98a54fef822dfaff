package iii_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/test/iiitest"
)

// A queue consumer: a function bound to the engine's durable queue trigger
// with a typed QueueConfig receives each message published to its topic
// (through iii::durable::publish), as it was published. A delivery that
// fails is retried; here the first attempt fails and the retry, one second
// later on the engine double's fake clock, succeeds.
func ExampleQueueConfig() {
	clock := iiitest.NewFakeClock(time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC))
	eng, _ := iiitest.Start("127.0.0.1:0", iiitest.WithQueue(iiitest.QueueConfig{}), iiitest.WithClock(clock))
	defer eng.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	w := iii.RegisterWorker(eng.URL, iii.InitOptions{})
	defer w.Shutdown()
	type Order struct {
		ID int `json:"id"`
	}
	attempts := make(chan int, 2)
	var n atomic.Int32
	iii.RegisterFunction(w, "billing::on-order", func(ctx context.Context, o Order) (any, error) {
		attempts <- o.ID
		if n.Add(1) == 1 {
			return nil, fmt.Errorf("payment service unavailable")
		}
		return nil, nil
	})
	sub, _ := w.RegisterTrigger(iii.TriggerInput{Type: iii.TriggerTypeQueue, FunctionID: "billing::on-order",
		Config: iii.QueueConfig{Topic: "orders"}})
	if err := eng.WaitTrigger(ctx, sub.ID()); err != nil {
		fmt.Println(err)
		return
	}

	// The producer publishes to the topic.
	if _, err := iii.Call[any](ctx, w, "iii::durable::publish", map[string]any{"topic": "orders", "data": Order{ID: 42}}); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("attempt 1, order", <-attempts)
	clock.WaitTimers(ctx, 1) // the retry is scheduled
	clock.Advance(time.Second)
	fmt.Println("attempt 2, order", <-attempts)
	// Output:
	// attempt 1, order 42
	// attempt 2, order 42
}
