package iii_test

import (
	"context"
	"fmt"
	"time"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/test/iiitest"
)

// Call options: a timeout for this call alone, and metadata the handler
// reads from its context.
func ExampleCall_options() {
	eng, _ := iiitest.Start("127.0.0.1:0")
	defer eng.Close()
	w := iii.RegisterWorker(eng.URL, iii.InitOptions{})
	defer w.Shutdown()

	iii.RegisterFunction(w, "orders::count", func(ctx context.Context, _ any) (string, error) {
		return "counted for " + string(iii.MetadataFromContext(ctx)), nil
	})

	msg, err := iii.Call[string](context.Background(), w, "orders::count", nil,
		iii.WithCallTimeout(5*time.Second),
		iii.WithCallMetadata(map[string]string{"tenant": "acme"}))
	fmt.Println(msg, err)
	// Output: counted for {"tenant":"acme"} <nil>
}
