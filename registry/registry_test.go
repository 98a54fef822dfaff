package registry

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/iii-go/iii/actors"
	"github.com/iii-go/iii/connection/wire"
)

// TestMain fails the run if any test leaves a goroutine behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newRegistry starts a registry on an actor system of its own, stopped at
// the end of the test.
func newRegistry(tb testing.TB) *Registry {
	tb.Helper()
	sys := actors.NewSystem(nil)
	ctx, cancel := context.WithCancel(context.Background())
	r, err := New(ctx, sys, nil, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		cancel()
		sys.Stop(time.Second)
		r.Wait()
	})
	return r
}

func testCtx(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

func fn(id string) *Function {
	return &Function{Frame: &wire.RegisterFunction{ID: id}}
}

func TestFunctionsAddLookupRemove(t *testing.T) {
	r := newRegistry(t)
	ctx := testCtx(t)
	for _, id := range []string{"b::1", "a::2", "c::3"} {
		if err := r.AddFunction(ctx, fn(id)); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.AddFunction(ctx, fn("a::2")); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("duplicate: %v", err)
	}
	if got := r.Functions(ctx); !slices.Equal(got, []string{"b::1", "a::2", "c::3"}) {
		t.Fatalf("Functions %q, want registration order", got)
	}
	if f := r.Lookup("a::2"); f == nil || f.Frame.ID != "a::2" {
		t.Fatalf("Lookup a::2: %+v", f)
	}
	if err := r.RemoveFunction(ctx, "a::2"); err != nil {
		t.Fatal(err)
	}
	if err := r.RemoveFunction(ctx, "a::2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second remove: %v", err)
	}
	if f := r.Lookup("a::2"); f != nil {
		t.Fatalf("Lookup after remove: %+v", f)
	}
	if got := r.Functions(ctx); !slices.Equal(got, []string{"b::1", "c::3"}) {
		t.Fatalf("Functions %q", got)
	}
	// Registered again, it goes last.
	if err := r.AddFunction(ctx, fn("a::2")); err != nil {
		t.Fatal(err)
	}
	if got := r.Functions(ctx); !slices.Equal(got, []string{"b::1", "c::3", "a::2"}) {
		t.Fatalf("Functions %q", got)
	}
}

func TestTriggersAddRemove(t *testing.T) {
	r := newRegistry(t)
	ctx := testCtx(t)
	tr := &Trigger{Frame: &wire.RegisterTrigger{ID: "t1", TriggerType: "cron", FunctionID: "f"}}
	if err := r.AddTrigger(ctx, tr); err != nil {
		t.Fatal(err)
	}
	if err := r.AddTrigger(ctx, tr); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("duplicate: %v", err)
	}
	if err := r.RemoveTrigger(ctx, "t1"); err != nil {
		t.Fatal(err)
	}
	if err := r.RemoveTrigger(ctx, "t1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second remove: %v", err)
	}
	if err := r.RemoveTriggerType(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown type: %v", err)
	}
}

// A restart of the actor keeps every registration and the Lookup view.
func TestRestartKeepsFunctions(t *testing.T) {
	r := newRegistry(t)
	ctx := testCtx(t)
	for i := range 3 {
		if err := r.AddFunction(ctx, fn(fmt.Sprint("f::", i))); err != nil {
			t.Fatal(err)
		}
	}
	r.sys.Send(r.pid, &crash{})
	if err := r.AddFunction(ctx, fn("f::3")); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if r.Lookup(fmt.Sprint("f::", i)) == nil {
			t.Fatalf("f::%d lost in the restart", i)
		}
	}
	if got := len(r.Functions(ctx)); got != 4 {
		t.Fatalf("%d functions", got)
	}
}

// BenchmarkAddFunction registers b.N functions on one registry: the cost
// of each must not grow with the number registered before it.
func BenchmarkAddFunction(b *testing.B) {
	r := newRegistry(b)
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := r.AddFunction(ctx, fn(fmt.Sprint("bench::", i))); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLookup is the inbound hot path: finding the handler of an id.
func BenchmarkLookup(b *testing.B) {
	r := newRegistry(b)
	ctx := context.Background()
	for i := range 1000 {
		if err := r.AddFunction(ctx, fn(fmt.Sprint("bench::", i))); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if r.Lookup("bench::500") == nil {
			b.Fatal("not found")
		}
	}
}

// Registering one more function must not copy what is registered already:
// the bytes allocated per registration stay small with 10,000 registered
// (a copy of the lookup map would be hundreds of kilobytes each).
func TestAddFunctionCostDoesNotGrow(t *testing.T) {
	r := newRegistry(t)
	ctx := testCtx(t)
	const before, measured = 10000, 50
	for i := range before {
		if err := r.AddFunction(ctx, fn(fmt.Sprint("f::", i))); err != nil {
			t.Fatal(err)
		}
	}
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	for i := range measured {
		if err := r.AddFunction(ctx, fn(fmt.Sprint("g::", i))); err != nil {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&m1)
	if per := (m1.TotalAlloc - m0.TotalAlloc) / measured; per > 32<<10 {
		t.Fatalf("%d bytes allocated per registration with %d registered", per, before)
	}
}
