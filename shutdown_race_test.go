package iii_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/test/iiitest"
)

// Shutdown racing every kind of call (registrations of functions and
// trigger types, bindings, awaited and void calls, channels, a burst of
// invocations growing the pool) returns without waiting out its timeout
// (an hour here), and leaves no goroutine behind (TestMain's goleak): each
// call ends, in success or in an error.
func TestShutdownRacingCallsReturnsAndLeavesNothingRunning(t *testing.T) {
	for round := range 10 {
		eng := iiitest.NewEngine(t)
		w := iii.RegisterWorker(eng.URL, fastOptions())
		iii.SetShutdownTimeout(w, time.Hour)
		if err := w.WaitConnected(testCtx(t)); err != nil {
			t.Fatal(err)
		}
		other := newWorker(t, eng, fastOptions())
		if _, err := iii.RegisterFunction(w, "race::echo", func(_ context.Context, in json.RawMessage) (json.RawMessage, error) { return in, nil }); err != nil {
			t.Fatal(err)
		}
		if err := eng.WaitFunction(testCtx(t), "race::echo"); err != nil {
			t.Fatal(err)
		}
		var seq atomic.Int64
		calls := []func(){
			func() {
				if ref, err := iii.RegisterFunction(w, fmt.Sprintf("race::fn%d", seq.Add(1)), func(context.Context, int) (int, error) { return 0, nil }); err == nil {
					_ = ref.Unregister()
				}
			},
			func() {
				if ref, err := iii.RegisterTriggerType[tickerConfig, tick](w, fmt.Sprintf("race::type%d", seq.Add(1)), "", newRecordingProvider()); err == nil {
					_ = ref.Unregister()
				}
			},
			func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				if ch, err := w.CreateChannel(ctx, 4); err == nil {
					_, _ = ch.Writer.Write([]byte("x"))
					_ = ch.Writer.Close()
					_ = ch.Reader.Close()
				}
			},
			func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_, _ = w.Trigger(ctx, iii.TriggerRequest{FunctionID: "race::echo", Payload: json.RawMessage(`1`)})
			},
			func() {
				// Invocations from another worker: the pool grows.
				_, _ = other.Trigger(context.Background(), iii.TriggerRequest{FunctionID: "race::echo", Payload: json.RawMessage(`1`), Action: iii.Void()})
			},
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for _, call := range calls {
			for range 3 {
				wg.Go(func() {
					for {
						select {
						case <-stop:
							return
						default:
						}
						call()
					}
				})
			}
		}
		time.Sleep(time.Duration(5+round*3) * time.Millisecond)
		done := make(chan struct{})
		go func() { w.Shutdown(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatalf("round %d: Shutdown racing calls did not return; actors still registered: %v", round, iii.LiveActors(w))
		}
		close(stop)
		wg.Wait()
	}
}
