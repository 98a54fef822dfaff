package interop_test

import (
	"context"
	"encoding/json"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/connection/wire"
)

// A trace started in Go runs through a Python handler and back into Go:
// the Python SDK continues the traceparent it was called with, and passes
// its handler span on to the call it makes from inside the handler.
func TestTraceStartedInGoContinuesThroughPythonBackIntoGo(t *testing.T) {
	eng := doubleEngine(t)
	w := iii.RegisterWorker(eng.URL, iii.InitOptions{Metadata: &iii.WorkerMetadata{Name: "interop-go-traced"},
		Telemetry: &iii.TelemetryOptions{Enabled: new(true)}})
	t.Cleanup(w.Shutdown)
	seen := make(chan trace.SpanContext, 1)
	if _, err := iii.RegisterFunction(w, "gointerop::traced-leaf", func(ctx context.Context, in json.RawMessage) (string, error) {
		seen <- trace.SpanContextFromContext(ctx)
		return "leaf", nil
	}); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	if err := eng.WaitFunction(ctx, "gointerop::traced-leaf"); err != nil {
		t.Fatal(err)
	}
	py := startPy(t, eng.URL, "worker.py", "FUNCTIONS=interop::relay", "RELAY_FN=gointerop::traced-leaf", "OTEL_ENABLED=true")
	readyID(t, py)

	// The caller's own trace: a remote parent the Go SDK's call span joins.
	root := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
		SpanID:     trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
		TraceFlags: trace.FlagsSampled,
		Remote:     true,
	})
	res, err := w.Trigger(trace.ContextWithRemoteSpanContext(ctx, root), iii.TriggerRequest{FunctionID: "interop::relay", Payload: map[string]any{"traced": true}})
	if err != nil {
		t.Fatalf("interop::relay: %v", err)
	}
	requireJSON(t, "relay result", res, json.RawMessage(`{"relayed":"leaf"}`))

	// Python's handler span is in the caller's trace; the Go leaf handler
	// ran in that trace too, as a child of Python's handler span.
	pySpan := traceSpanNamed(t, eng, "execute interop::relay")
	if pySpan.TraceID != root.TraceID().String() || pySpan.ParentSpanID == "" {
		t.Fatalf("Python's handler span %+v; want trace %s with a parent", pySpan, root.TraceID())
	}
	if sc := recv(t, "the leaf call", seen); sc.TraceID() != root.TraceID() {
		t.Fatalf("the Go leaf handler runs in trace %s, want %s", sc.TraceID(), root.TraceID())
	}
	leaf := traceSpanNamed(t, eng, "execute gointerop::traced-leaf")
	if leaf.TraceID != root.TraceID().String() || leaf.ParentSpanID != pySpan.SpanID {
		t.Fatalf("the Go leaf span is %s with parent %s; want trace %s and parent %s (Python's handler span)",
			leaf.TraceID, leaf.ParentSpanID, root.TraceID(), pySpan.SpanID)
	}
	// Python's span's parent is the Go SDK's call span, in the same trace.
	if err := w.FlushTelemetry(ctx); err != nil {
		t.Fatal(err)
	}
	var parent *wire.Span
	poll(t, "the Go worker's span "+pySpan.ParentSpanID, func() bool {
		for _, s := range eng.Spans() {
			if s.SpanID == pySpan.ParentSpanID {
				parent = &s
				return true
			}
		}
		return false
	})
	if parent.TraceID != root.TraceID().String() || parent.ParentSpanID != root.SpanID().String() || parent.Kind != 3 {
		t.Fatalf("Python's parent span %+v; want the Go client call span under the root %s", *parent, root.SpanID())
	}
}
