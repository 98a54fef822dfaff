package iii_test

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/test/iiitest"
)

// BenchmarkRoundTrip measures awaited calls from one worker to another
// through the engine double, with 64 calls in flight and a ~100-byte
// payload. The double runs in this process, so ns/op and allocs/op include
// it; profile with -cpuprofile to see the SDK's share.
//
//	go test -run '^$' -bench RoundTrip -benchmem
func BenchmarkRoundTrip(b *testing.B) {
	eng, err := iiitest.Start("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer eng.Close()
	handler := iii.RegisterWorker(eng.URL, iii.InitOptions{})
	defer handler.Shutdown()
	caller := iii.RegisterWorker(eng.URL, iii.InitOptions{})
	defer caller.Shutdown()
	iii.RegisterFunction(handler, "bench::echo", func(ctx context.Context, in json.RawMessage) (json.RawMessage, error) {
		return in, nil
	})
	if err := eng.WaitFunction(context.Background(), "bench::echo"); err != nil {
		b.Fatal(err)
	}
	_, cpu := driveRoundTrips(b, caller, "bench::echo")
	b.ReportMetric(float64(cpu)/1e3/float64(b.N), "cpu-µs/op")
}

// benchPayload is the ~100-byte JSON payload of the round-trip benchmarks.
var benchPayload = json.RawMessage(`{"id":12345,"name":"benchmark payload","tags":["alpha","beta","gamma"],"nested":{"x":1.5,"y":true}}`)

// driveRoundTrips makes b.N awaited calls of fn with benchPayload, 64 in
// flight, after one warm-up call, and returns the wall and CPU time they
// took (the process's CPU: user and system).
func driveRoundTrips(b *testing.B, caller *iii.III, fn string) (elapsed, cpu time.Duration) {
	ctx := context.Background()
	req := iii.TriggerRequest{FunctionID: fn, Payload: benchPayload}
	if _, err := caller.Trigger(ctx, req); err != nil {
		b.Fatal(err)
	}
	const inFlight = 64
	work := make(chan struct{}, inFlight)
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	start, cpu0 := time.Now(), processCPU()
	for range inFlight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				if _, err := caller.Trigger(ctx, req); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	for range b.N {
		work <- struct{}{}
	}
	close(work)
	wg.Wait()
	elapsed, cpu = time.Since(start), processCPU()-cpu0
	b.StopTimer()
	return elapsed, cpu
}

// BenchmarkRegisterFunction registers b.N functions on one worker
// connected to the engine double: the cost of one registration must not
// grow with the number made before it.
//
//	go test -run '^$' -bench RegisterFunction -benchtime 20000x
func BenchmarkRegisterFunction(b *testing.B) {
	eng, err := iiitest.Start("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer eng.Close()
	w := iii.RegisterWorker(eng.URL, iii.InitOptions{})
	defer w.Shutdown()
	if err := w.WaitConnected(context.Background()); err != nil {
		b.Fatal(err)
	}
	h := func(ctx context.Context, in json.RawMessage) (json.RawMessage, error) { return in, nil }
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := iii.RegisterFunction(w, "bench::f"+strconv.Itoa(i), h); err != nil {
			b.Fatal(err)
		}
	}
}
