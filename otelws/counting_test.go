package otelws_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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
