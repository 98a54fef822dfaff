package iii_test

import (
	"context"
	"encoding/json"
	"sync"
	"syscall"
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
	ctx := context.Background()
	if err := eng.WaitFunction(ctx, "bench::echo"); err != nil {
		b.Fatal(err)
	}
	payload := json.RawMessage(`{"id":12345,"name":"benchmark payload","tags":["alpha","beta","gamma"],"nested":{"x":1.5,"y":true}}`)
	req := iii.TriggerRequest{FunctionID: "bench::echo", Payload: payload}
	if _, err := caller.Trigger(ctx, req); err != nil {
		b.Fatal(err)
	}
	const inFlight = 64
	work := make(chan struct{}, inFlight)
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	c0 := cpuTime()
	defer func() { b.ReportMetric(float64(cpuTime()-c0)/1e3/float64(b.N), "cpu-µs/op") }()
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
}

// cpuTime is the process's CPU time (user+system) so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
