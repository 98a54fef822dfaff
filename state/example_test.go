package state_test

import (
	"context"
	"fmt"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/state"
	"github.com/iii-go/iii/test/iiitest"
	"github.com/iii-go/iii/update"
)

// A scope of typed values: set, get and update with update operations.
func ExampleScope() {
	eng, _ := iiitest.Start("127.0.0.1:0")
	defer eng.Close()
	w := iii.RegisterWorker(eng.URL, iii.InitOptions{})
	defer w.Shutdown()
	ctx := context.Background()

	type Counter struct {
		Name  string   `json:"name"`
		Count int      `json:"count"`
		Tags  []string `json:"tags"`
	}
	counters := state.New[Counter](w, "counters")

	// Append pushes onto an array; onto a missing or null field it puts a
	// string as it is, so Tags starts as an empty array.
	r, _ := counters.Set(ctx, "visits", Counter{Name: "visits", Tags: []string{}})
	fmt.Println("created:", r.Created())

	r, _ = counters.Update(ctx, "visits",
		update.Increment("count", 2),
		update.Append("tags", "home"),
		update.Increment("name", 1)) // not a number: skipped
	fmt.Printf("old %d, new %d %v\n", r.Old.Count, r.New.Count, r.New.Tags)
	fmt.Println(r.Err())

	c, found, _ := counters.Get(ctx, "visits")
	fmt.Println(found, c.Count)
	_, found, _ = counters.Get(ctx, "nothing")
	fmt.Println(found)
	// Output:
	// created: true
	// old 0, new 2 [home]
	// update: op 2: increment.not_number: Expected number at path 'name', got string.
	// true 2
	// false
}

// A function that receives the changes of a scope.
func ExampleOnChange() {
	eng, _ := iiitest.Start("127.0.0.1:0")
	defer eng.Close()
	w := iii.RegisterWorker(eng.URL, iii.InitOptions{})
	defer w.Shutdown()
	ctx := context.Background()

	changes := make(chan string, 3)
	sub, _ := state.OnChange(w, "orders::on-change", iii.StateConfig{Scope: "orders"},
		func(ctx context.Context, e state.Event[string]) error {
			changes <- fmt.Sprintf("%s %s: %v -> %v", e.Type, e.Key, deref(e.Old), deref(e.New))
			return nil
		})
	eng.WaitTrigger(ctx, sub.Trigger.ID()) // the double's hook: the binding is live

	orders := state.New[string](w, "orders")
	orders.Set(ctx, "o1", "placed")
	orders.Set(ctx, "o1", "shipped")
	orders.Delete(ctx, "o1")
	// The changes of different writes may arrive in any order.
	for range 3 {
		fmt.Println(<-changes)
	}
	// Unordered output:
	// state:created o1: <none> -> placed
	// state:updated o1: placed -> shipped
	// state:deleted o1: shipped -> <none>
}

func deref(s *string) string {
	if s == nil {
		return "<none>"
	}
	return *s
}
