package iii_test

import (
	"context"
	"testing"

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
