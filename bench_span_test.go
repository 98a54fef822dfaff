package iii

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/iii-go/iii/connection/wire"
)

// benchTelemetry returns the telemetry of a worker whose engine and /otel
// endpoint never answer: the spans are recorded and batched as usual and
// their frames wait (bounded) for a connection that never comes.
func benchTelemetry(b *testing.B, o TelemetryOptions) *telemetry {
	b.Helper()
	o.Enabled = new(true)
	w := RegisterWorker("ws://127.0.0.1:1", InitOptions{Reconnect: &ReconnectConfig{MaxRetries: 1},
		Telemetry: &o})
	b.Cleanup(w.Shutdown)
	if w.tel == nil {
		b.Fatal("telemetry is off")
	}
	return w.tel
}

// reportCPU reports the process's CPU time per op since cpu0 (all
// goroutines: the batching goroutine's share too), which a loaded machine
// disturbs less than ns/op.
func reportCPU(b *testing.B, cpu0 time.Duration) {
	b.ReportMetric(float64((cpuNow()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
}

// BenchmarkSpanInvocation measures the telemetry of one handled invocation
// on the handler's goroutine: its server span (continuing the caller's
// traceparent) with its payload events (on by default; "-payloads-off"
// without them), its end and its metrics, successful or failed. The
// batching goroutine's share (encoding, one frame per 512 spans) runs
// beside it and is counted in allocs/op too.
//
//	go test -run '^$' -bench 'Span(Invocation|Call)' -benchmem
func BenchmarkSpanInvocation(b *testing.B) {
	b.Setenv("III_DISABLE_TRACE_PAYLOADS", "")
	tels := map[bool]*telemetry{false: benchTelemetry(b, TelemetryOptions{}), true: benchTelemetry(b, TelemetryOptions{DisableTracePayloads: true})}
	for _, bc := range []struct {
		name        string
		err         *wire.ErrorBody
		payloadsOff bool
	}{
		{"ok", nil, false},
		{"error", &wire.ErrorBody{Code: "bench_failed", Message: "it failed"}, false},
		{"ok-payloads-off", nil, true},
		{"error-payloads-off", &wire.ErrorBody{Code: "bench_failed", Message: "it failed"}, true},
	} {
		t := tels[bc.payloadsOff]
		b.Run(bc.name, func(b *testing.B) {
			// The engine adds the function id to the baggage of every traced call.
			m := &wire.InvokeFunction{FunctionID: "bench::echo", InvocationID: wire.NewUUID(), HasInvocationID: true,
				Traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", Baggage: "iii.function.id=bench::echo",
				Data: json.RawMessage(`{"sku":"A-1","qty":2}`)}
			res := &wire.InvocationResult{InvocationID: m.InvocationID, FunctionID: m.FunctionID, Error: bc.err}
			if bc.err == nil {
				res.Result = json.RawMessage(`{"ok":true}`)
			}
			ctx := &invocationContext{Context: context.Background(), inv: Invocation{m: m}, w: t.w}
			b.ReportAllocs()
			cpu := cpuNow()
			for b.Loop() {
				_, end := t.startInvocation(ctx, m)
				end(res)
			}
			reportCPU(b, cpu)
		})
	}
}

// BenchmarkSpanCall measures the telemetry of one awaited call on the
// caller's goroutine: its client span, the traceparent put into the frame,
// its end and its metrics. "root" is a call outside any span, "in-handler"
// one made from a handler (a child of the invocation's span).
func BenchmarkSpanCall(b *testing.B) {
	t := benchTelemetry(b, TelemetryOptions{})
	inv := &wire.InvokeFunction{FunctionID: "bench::outer", InvocationID: wire.NewUUID(), HasInvocationID: true,
		Traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
	hctx, endOuter := t.startInvocation(&invocationContext{Context: context.Background(), inv: Invocation{m: inv}, w: t.w}, inv)
	defer endOuter(&wire.InvocationResult{})
	for _, bc := range []struct {
		name string
		ctx  context.Context
		err  error
	}{
		{"root", context.Background(), nil},
		{"in-handler", hctx, nil},
		{"root-error", context.Background(), ErrTimeout},
	} {
		b.Run(bc.name, func(b *testing.B) {
			m := &wire.InvokeFunction{FunctionID: "bench::echo"}
			b.ReportAllocs()
			cpu := cpuNow()
			for b.Loop() {
				_, end := t.startCall(bc.ctx, m)
				end(bc.err)
			}
			reportCPU(b, cpu)
		})
	}
}
