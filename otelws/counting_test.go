package otelws_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/trace"

	"github.com/iii-go/iii/connection/wire"
	"github.com/iii-go/iii/otelws"
)

// A record EmitLog accepts while Close runs is exported or counted as
// dropped, never lost uncounted: Close waits for the EmitLog calls under
// way before its last drain.
func TestPipelineCountsEveryLogRecordAcceptedWhileClosing(t *testing.T) {
	c := otelws.Dial(otelws.Config{URL: refusing(t), Backoff: fast, MaxPendingFrames: 1 << 20, MaxPendingBytes: 1 << 30})
	defer c.Close(context.Background())
	for i := range 50 {
		p := otelws.NewPipeline(otelws.PipelineConfig{Conn: c, MaxQueuedLogs: 64, LogFlushInterval: time.Hour})
		var accepted atomic.Uint64
		var started, done sync.WaitGroup
		for range 4 {
			started.Add(1)
			done.Add(1)
			go func() {
				defer done.Done()
				started.Done()
				for p.EmitLog(wire.LogRecord{Body: otelws.String("x")}) {
					accepted.Add(1)
				}
			}()
		}
		started.Wait()
		p.Close()
		done.Wait()
		s := p.Stats()
		if s.LogsExported+s.LogsDropped != accepted.Load() || s.LogsQueued != 0 {
			t.Fatalf("iteration %d: %d records accepted, stats %+v", i, accepted.Load(), s)
		}
	}
}

// A frame the Conn refuses is counted once: as the Pipeline's dropped spans
// or log records, not again as a dropped frame. Send's own refusals (the
// metric exporter's) count as dropped frames.
func TestRefusedFramesOfThePipelineCountTheirItemsOnly(t *testing.T) {
	c := otelws.Dial(otelws.Config{URL: refusing(t), Backoff: fast})
	c.Close(context.Background()) // refuses every frame from now on
	p := otelws.NewPipeline(otelws.PipelineConfig{Conn: c})
	defer p.Close()
	sc := instrumentation.Scope{Name: "s"}
	for i := range 3 {
		p.ExportSpan(&sc, &otelws.SpanData{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{byte(i + 1)}, Name: "s"})
	}
	p.EmitLog(wire.LogRecord{Body: otelws.String("x")})
	if err := p.ForceFlush(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	ps, cs := p.Stats(), c.Stats()
	if ps.SpansDropped != 3 || ps.SpansExported != 0 || ps.LogsDropped != 1 || ps.LogsExported != 0 || cs.Dropped != 0 {
		t.Fatalf("pipeline %+v, conn %+v: want the 3 spans and the record dropped, no frame", ps, cs)
	}
	if c.Send([]byte("MTRC{}")) {
		t.Fatal("a closed Conn queued a frame")
	}
	if cs := c.Stats(); cs.Dropped != 1 {
		t.Fatalf("conn %+v after a refused Send, want 1 dropped", cs)
	}
}
