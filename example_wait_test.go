package iii_test

import (
	"context"
	"fmt"
	"time"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/test/iiitest"
)

// Waiting for another worker's function instead of failing with
// function_not_found: the wait ends on the engine's functions-available
// notification (the double is told to look for changes every 10 ms; the
// engine looks every 5 s).
func ExampleIII_WaitForFunction() {
	eng, _ := iiitest.Start("127.0.0.1:0", iiitest.WithFunctionsPollInterval(10*time.Millisecond))
	defer eng.Close()
	caller := iii.RegisterWorker(eng.URL, iii.InitOptions{})
	defer caller.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	_, err := iii.Call[string](ctx, caller, "stock::level", "A-1")
	fmt.Println(iii.ErrorCode(err))

	stopped := make(chan struct{})
	go func() { // another worker, starting later
		defer close(stopped)
		stock := iii.RegisterWorker(eng.URL, iii.InitOptions{})
		iii.RegisterFunction(stock, "stock::level", func(ctx context.Context, sku string) (string, error) {
			return sku + ": 12 in stock", nil
		})
		<-ctx.Done()
		stock.Shutdown()
	}()

	if err := caller.WaitForFunction(ctx, "stock::level"); err != nil {
		fmt.Println(err)
		return
	}
	level, err := iii.Call[string](ctx, caller, "stock::level", "A-1")
	fmt.Println(level, err)
	cancel()
	<-stopped
	// Output:
	// function_not_found
	// A-1: 12 in stock <nil>
}
