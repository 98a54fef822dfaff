package iii_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/test/iiitest"
)

// stopFromHandler registers id on w with a handler that runs stop, and
// invokes it; it returns once the handler has returned from stop.
func stopFromHandler(t *testing.T, eng *iiitest.Engine, w *iii.III, id string, stop func(ctx context.Context)) {
	t.Helper()
	done := make(chan struct{})
	mustRegister(t, eng, w, id, func(ctx context.Context, _ any) (any, error) {
		defer close(done)
		stop(ctx)
		return nil, nil
	})
	go func() { _, _, _ = eng.Invoke(context.Background(), id, nil) }()
	select {
	case <-done:
	case <-testCtx(t).Done():
		t.Fatalf("%s: the stop called from the handler did not return", id)
	}
}

// Shutdown called from a handler waits for the worker's other handlers,
// not for the calling one (which cannot return before it does), however
// long ShutdownTimeout is.
func TestShutdownFromAHandlerWaitsForTheOthersOnly(t *testing.T) {
	eng := iiitest.NewEngine(t)
	w := newWorker(t, eng, fastOptions())
	iii.SetShutdownTimeout(w, time.Hour)
	otherStarted := make(chan struct{})
	var otherReturned atomic.Bool
	mustRegister(t, eng, w, "other::block", func(ctx context.Context, _ any) (any, error) {
		close(otherStarted)
		<-ctx.Done()
		time.Sleep(20 * time.Millisecond) // cleaning up after the cancel
		otherReturned.Store(true)
		return nil, nil
	})
	go func() { _, _, _ = eng.Invoke(context.Background(), "other::block", nil) }()
	<-otherStarted
	stopFromHandler(t, eng, w, "stop::me", func(context.Context) {
		w.Shutdown()
		if !otherReturned.Load() {
			t.Error("Shutdown from a handler returned before the other handler did")
		}
	})
	waitFor(t, "no handler running", func() bool { return w.Stats().Running == 0 })
}

// Drain from a handler with a context that is not the handler's own does
// not wait for that handler either (it waited for ever).
func TestDrainFromAHandlerWithAnotherContext(t *testing.T) {
	eng := iiitest.NewEngine(t)
	w := newWorker(t, eng, fastOptions())
	iii.SetShutdownTimeout(w, time.Hour)
	var err error
	stopFromHandler(t, eng, w, "drain::me", func(context.Context) { err = w.Drain(context.Background()) })
	if err != nil {
		t.Fatalf("Drain: %v", err)
	}
	if !errors.Is(w.Err(), iii.ErrShutdown) {
		t.Fatalf("Err after Drain: %v", w.Err())
	}
}

// The stop that Shutdown leaves to run after the calling handler returns
// ends with the last telemetry flush, which carries that handler's span.
func TestShutdownFromAHandlerExportsItsSpan(t *testing.T) {
	eng := iiitest.NewEngine(t)
	sink := newFrameSink(t)
	w := newWorker(t, eng, telemetryOptions(iii.TelemetryOptions{Endpoint: sink.url(), DisableMetrics: true}))
	iii.SetShutdownTimeout(w, time.Hour)
	stopFromHandler(t, eng, w, "stop::traced", func(context.Context) { w.Shutdown() })
	sink.waitSpan(t, "execute stop::traced")
	if s := w.TelemetryStats(); s.SpansDropped != 0 {
		t.Fatalf("stats %+v: a span was dropped", s)
	}
}
