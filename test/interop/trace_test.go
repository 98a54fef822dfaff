package interop_test

import (
	"context"
	"encoding/json"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/connection/wire"
	"github.com/iii-go/iii/test/iiitest"
)

// traceSpanNamed waits until the double has received a span called name and
// returns it.
func traceSpanNamed(t *testing.T, eng *iiitest.Engine, name string) wire.Span {
	t.Helper()
	ctx := testCtx(t)
	for n := 1; ; n++ {
		spans, err := eng.WaitSpans(ctx, n)
		if err != nil {
			t.Fatalf("no span %q among %d received: %v", name, len(eng.Spans()), err)
		}
		for _, s := range spans {
			if s.Name == name {
				return s
			}
		}
		n = len(spans)
	}
}

func TestTraceStartedInNodeContinuesInGo(t *testing.T) {
	eng := doubleEngine(t)
	w := iii.RegisterWorker(eng.URL, iii.InitOptions{Metadata: &iii.WorkerMetadata{Name: "interop-go-traced"},
		Telemetry: &iii.TelemetryOptions{Enabled: new(true)}})
	t.Cleanup(w.Shutdown)
	seen := make(chan trace.SpanContext, 1)
	log := w.Logger()
	if _, err := iii.RegisterFunction(w, "interop::traced", func(ctx context.Context, in json.RawMessage) (string, error) {
		seen <- trace.SpanContextFromContext(ctx)
		log.Info(ctx, "traced call from node")
		return "traced", nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := eng.WaitFunction(testCtx(t), "interop::traced"); err != nil {
		t.Fatal(err)
	}

	node := startScript(t, eng.URL, "trace.mjs", "TRACE_FN=interop::traced")
	var traced struct {
		SpanName string          `json:"span_name"`
		TraceID  string          `json:"trace_id"`
		SpanID   string          `json:"span_id"`
		OK       bool            `json:"ok"`
		Result   json.RawMessage `json:"result"`
		Error    json.RawMessage `json:"error"`
	}
	node.wait(ev("traced")).decode(t, &traced)
	if !traced.OK || string(traced.Result) != `"traced"` {
		t.Fatalf("the Node call: %+v (error %s)", traced, traced.Error)
	}
	node.wait(ev("flushed"))

	// The Go handler ran in the Node span's trace, as its child.
	if sc := <-seen; sc.TraceID().String() != traced.TraceID {
		t.Fatalf("the Go handler's context is in trace %s, want Node's %s", sc.TraceID(), traced.TraceID)
	}
	goSpan := traceSpanNamed(t, eng, "execute interop::traced")
	if goSpan.TraceID != traced.TraceID || goSpan.ParentSpanID != traced.SpanID {
		t.Fatalf("the Go handler's span is %s/%s with parent %s, want trace %s and parent %s (the Node span)",
			goSpan.TraceID, goSpan.SpanID, goSpan.ParentSpanID, traced.TraceID, traced.SpanID)
	}
	// The Node SDK exported its client span to the same engine.
	nodeSpan := traceSpanNamed(t, eng, traced.SpanName)
	if nodeSpan.TraceID != traced.TraceID || nodeSpan.SpanID != traced.SpanID || nodeSpan.Kind != 3 {
		t.Fatalf("the Node span as the engine got it: %+v", nodeSpan)
	}
	// And the Go Logger's record carries the same trace.
	if err := w.FlushTelemetry(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	for n := 1; ; n++ {
		logs, err := eng.WaitLogs(ctx, n)
		if err != nil {
			t.Fatalf("no Go log record in Node's trace: %v (got %+v)", err, eng.Logs())
		}
		found := false
		for _, r := range logs {
			if r.Body.String() == "traced call from node" {
				if r.TraceID != traced.TraceID || r.SpanID != goSpan.SpanID {
					t.Fatalf("the Go log record is in %s/%s, want %s/%s", r.TraceID, r.SpanID, traced.TraceID, goSpan.SpanID)
				}
				found = true
			}
		}
		if found {
			break
		}
		n = len(logs)
	}
}
