package iii_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/test/iiitest"
)

// A handler's error text goes to the caller as written, and the caller may
// be another team's worker. Log the detail locally and return an error that
// says only what the caller may know.
func ExampleRegisterFunction_safeErrors() {
	eng, _ := iiitest.Start("127.0.0.1:0") // an engine double
	defer eng.Close()
	w := iii.RegisterWorker(eng.URL, iii.InitOptions{})
	defer w.Shutdown()

	lookup := func(sku string) (int, error) {
		return 0, errors.New("dial postgres://orders:hunter2@10.0.0.7/orders: connection refused")
	}
	iii.RegisterFunction(w, "stock::level", func(ctx context.Context, sku string) (int, error) {
		n, err := lookup(sku)
		if err != nil {
			slog.Default().Debug("stock lookup failed", "sku", sku, "err", err) // stays here
			return 0, &iii.InvocationError{Code: "E_UNAVAILABLE", Message: "stock levels are unavailable; try again later"}
		}
		return n, nil
	})

	_, err := iii.Call[int](context.Background(), w, "stock::level", "A-1")
	var re *iii.RemoteError
	if errors.As(err, &re) {
		fmt.Println(re.Code, re.Message)
	}
	// Output: E_UNAVAILABLE stock levels are unavailable; try again later
}
