package iiitest

import (
	"fmt"
	"testing"

	"github.com/iii-go/iii/connection/wire"
)

// TestTelemetryFramesAreKeptWithoutACopy reads frames the way the /otel
// loop does, into the buffer ingest returns: past the bound, the oldest
// frame's buffer comes back for the next frame, and the frames kept still
// decode to their own spans (no buffer is both kept and reused).
func TestTelemetryFramesAreKeptWithoutACopy(t *testing.T) {
	e := NewEngine(t)
	e.tel.mu.Lock()
	e.tel.rawLimit = 3 * 200
	e.tel.mu.Unlock()
	frame := func(i int) []byte {
		f := []byte(wire.TelemetryTraces.Prefix())
		f = fmt.Appendf(f, `{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":"span %03d"}]}]}]}`, i)
		for len(f) < 200+len(wire.TelemetryTraces.Prefix()) {
			f = append(f, ' ')
		}
		return f
	}
	buf := make([]byte, 0, 4096)
	reused := 0
	for i := range 20 {
		b := append(buf[:0], frame(i)...) // as readMessage fills buf
		k, payload := wire.SplitTelemetry(b)
		if k != wire.TelemetryTraces {
			t.Fatalf("frame %d: kind %v", i, k)
		}
		next := e.tel.ingest(e, k, payload, b)
		if cap(next) == 0 || &next[:1][0] == &b[:1][0] {
			t.Fatalf("frame %d: ingest returned the frame it keeps as the next buffer", i)
		}
		e.tel.mu.Lock()
		for _, f := range e.tel.raw {
			if &f.frame[:1][0] == &next[:1][0] {
				t.Fatalf("frame %d: the next buffer is a frame still kept", i)
			}
		}
		if i >= 3 && cap(next) == cap(e.tel.raw[0].frame) {
			reused++
		}
		e.tel.mu.Unlock()
		buf = next
	}
	if reused == 0 {
		t.Errorf("no dropped frame's buffer was reused")
	}
	spans := e.Spans()
	if len(spans) != 3 {
		t.Fatalf("%d spans kept, want the last 3 frames' (bound of 600 bytes)", len(spans))
	}
	for i, s := range spans {
		if want := fmt.Sprintf("span %03d", 17+i); s.Name != want {
			t.Errorf("span %d is %q, want %q", i, s.Name, want)
		}
	}
}
