package iii_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/test/iiitest"
)

// A span whose frame the /otel connection refuses (larger than
// MaxPendingBytes) counts once, in SpansDropped, not also in FramesDropped.
func TestTelemetryStatsCountARefusedFramesSpansOnce(t *testing.T) {
	eng := iiitest.NewEngine(t)
	w := newWorker(t, eng, telemetryOptions(iii.TelemetryOptions{MaxPendingBytes: 16, DisableMetrics: true}))
	mustRegister(t, eng, w, "count::echo", func(ctx context.Context, s string) (string, error) { return s, nil })
	const n = 3
	for range n {
		if _, _, err := eng.Invoke(testCtx(t), "count::echo", []byte(`"x"`)); err != nil {
			t.Fatal(err)
		}
	}
	// The spans end just after the results are sent.
	waitFor(t, "the spans counted", func() bool {
		if err := w.FlushTelemetry(testCtx(t)); err != nil {
			t.Fatal(err)
		}
		s := w.TelemetryStats()
		return s.SpansDropped+s.SpansExported >= n
	})
	if s := w.TelemetryStats(); s.SpansDropped != n || s.SpansExported != 0 || s.FramesDropped != 0 || s.FramesSent != 0 {
		t.Fatalf("stats %+v: want %d spans dropped and no frame", s, n)
	}
}

// Handlers failing with ever new error codes do not grow the error
// metric's series without bound: beyond MaxMetricErrorTypes codes of a
// function, errors count on one series marked as an overflow.
func TestErrorCodesBeyondTheLimitShareAnOverflowSeries(t *testing.T) {
	eng := iiitest.NewEngine(t)
	w := newWorker(t, eng, telemetryOptions(iii.TelemetryOptions{MaxMetricErrorTypes: 2}))
	mustRegister(t, eng, w, "count::fail", func(ctx context.Context, code string) (any, error) {
		return nil, iii.NewInvocationError(code, "failed")
	})
	const codes = 6
	for i := range codes {
		if _, _, err := eng.Invoke(testCtx(t), "count::fail", []byte(fmt.Sprintf(`"E_%d"`, i))); err != nil {
			t.Fatal(err)
		}
	}
	// The metrics are recorded as the results are sent.
	waitFor(t, "the failures counted", func() bool {
		if err := w.FlushTelemetry(testCtx(t)); err != nil {
			t.Fatal(err)
		}
		v, ok := metricPoint(eng.Metrics(), "iii.invocations", map[string]string{"iii.function.id": "count::fail", "iii.outcome": "error"})
		return ok && v == codes
	})
	waitMetric(t, eng, "iii.invocation.errors", map[string]string{"iii.function.id": "count::fail", "error.type": "_OTHER", "otel.metric.overflow": "true"}, codes-2)
	types := map[string]bool{}
	for _, m := range eng.Metrics() {
		if m.Name != "iii.invocation.errors" || m.Sum == nil {
			continue
		}
		for _, p := range m.Sum.DataPoints {
			if attr(p.Attributes, "iii.function.id") == "count::fail" {
				types[attr(p.Attributes, "error.type")] = true
			}
		}
	}
	if len(types) != 3 || !types["E_0"] || !types["E_1"] {
		t.Fatalf("error types of iii.invocation.errors: %v, want E_0, E_1 and the overflow", types)
	}
}

// The span of a handler that Shutdown cancels ends before the last flush:
// it reaches the /otel endpoint, counted exported, not dropped.
func TestShutdownExportsTheSpansOfTheHandlersItCancels(t *testing.T) {
	eng := iiitest.NewEngine(t)
	sink := newFrameSink(t)
	w := newWorker(t, eng, telemetryOptions(iii.TelemetryOptions{Endpoint: sink.url(), DisableMetrics: true}))
	started := make(chan struct{})
	mustRegister(t, eng, w, "count::block", func(ctx context.Context, _ any) (any, error) {
		close(started)
		<-ctx.Done()
		// Cleaning up takes a moment: without the wait for the handlers,
		// Shutdown closes the pipeline meanwhile.
		time.Sleep(50 * time.Millisecond)
		return nil, ctx.Err()
	})
	invoked := make(chan struct{})
	go func() {
		defer close(invoked)
		_, _, _ = eng.Invoke(testCtx(t), "count::block", nil) // fails: the worker goes away
	}()
	<-started
	w.Shutdown()
	if s := w.TelemetryStats(); s.SpansExported != 1 || s.SpansDropped != 0 {
		t.Fatalf("stats after Shutdown %+v: want the handler's span exported", s)
	}
	sink.waitSpan(t, "execute count::block")
	<-invoked
}
