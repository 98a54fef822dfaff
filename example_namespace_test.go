package iii_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/test/iiitest"
)

// A worker in a namespace (engine v0.23): its functions live there, and its
// calls resolve there unless they name another namespace. The double speaks
// v0.23 with iiitest.WithNamespaces. The engine allows one live worker of a
// name per namespace, so workers of one process need names of their own.
func Example_namespace() {
	eng, err := iiitest.Start("127.0.0.1:0", iiitest.WithNamespaces())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer eng.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	quiet := slog.New(slog.DiscardHandler)
	start := func(name, namespace string) *iii.III {
		w := iii.RegisterWorker(eng.URL, iii.InitOptions{Namespace: namespace,
			Metadata: &iii.WorkerMetadata{Name: name}, Logger: quiet})
		if err := w.WaitConnected(ctx); err != nil {
			fmt.Println(err)
		}
		return w
	}
	greet := func(from string) func(context.Context, string) (string, error) {
		return func(_ context.Context, who string) (string, error) { return "hello " + who + " from " + from, nil }
	}

	orders := start("orders-api", "orders")
	defer orders.Shutdown()
	if _, err := iii.RegisterFunction(orders, "greet", greet("orders")); err != nil {
		fmt.Println(err)
	}
	plain := start("plain", "") // the default namespace
	defer plain.Shutdown()
	if _, err := iii.RegisterFunction(plain, "greet", greet("default")); err != nil {
		fmt.Println(err)
	}
	_ = eng.WaitFunctionIn(ctx, "orders", "greet")
	_ = eng.WaitFunction(ctx, "greet")

	// The worker's own namespace, then the default one by name.
	s, _ := iii.Call[string](ctx, orders, "greet", "ana")
	fmt.Println(s)
	s, _ = iii.Call[string](ctx, orders, "greet", "ana", iii.WithCallNamespace(iii.DefaultNamespace))
	fmt.Println(s)
	// A worker of the default namespace reaches "orders" by name.
	s, _ = iii.Call[string](ctx, plain, "greet", "bo", iii.WithCallNamespace("orders"))
	fmt.Println(s)

	// A second live "orders-api" in "orders" is refused for good. The
	// refusal answers engine::workers::register, which the worker sends
	// once connected: watch the state, not WaitConnected.
	failed := make(chan struct{})
	dup := iii.RegisterWorker(eng.URL, iii.InitOptions{Namespace: "orders",
		Metadata: &iii.WorkerMetadata{Name: "orders-api"}, Logger: quiet,
		OnStateChange: func(s iii.ConnectionState) {
			if s == iii.Failed {
				close(failed)
			}
		}})
	defer dup.Shutdown()
	select {
	case <-failed:
	case <-ctx.Done():
	}
	var rej *iii.RegistrationRejectedError
	if errors.As(dup.Err(), &rej) {
		fmt.Println(rej.Code, rej.Namespace, rej.WorkerName, dup.State())
	}
	// Output:
	// hello ana from orders
	// hello ana from default
	// hello bo from orders
	// WORKER_NAMESPACE_CONFLICT orders orders-api failed
}
