package iiitest

import (
	"context"
	"encoding/json"
	"sync"

	"github.com/iii-go/iii/connection/wire"
)

// telemetry keeps the spans, log records and metrics received in OTLP/JSON
// frames (bounded: the oldest are dropped first). Frames are kept raw and
// decoded only when a test looks, so that a worker exporting telemetry does
// not make the double spend its CPU on JSON it may never need (it shares the
// machine with the workers under test in cmd/bench).
type telemetry struct {
	mu       sync.Mutex
	limit    int
	spans    []wire.Span
	logs     []wire.LogRecord
	metrics  []wire.Metric
	frames   [4]int64
	raw      []rawFrame // received, not decoded yet, oldest first
	rawBytes int
	rawLimit int // bound of rawBytes; maxRawTelemetry if 0
}

type rawFrame struct {
	k     wire.TelemetryKind
	b     []byte // the payload, in frame
	frame []byte // the whole frame, reused once dropped undecoded
}

// maxRawTelemetry bounds the undecoded frames kept; the oldest go first.
const maxRawTelemetry = 64 << 20

func keepLast[T any](s []T, limit int) []T {
	if limit > 0 && len(s) > limit {
		n := copy(s, s[len(s)-limit:])
		clear(s[n:])
		s = s[:n]
	}
	return s
}

// ingest keeps one telemetry frame's payload, which lies in frame: it
// takes frame, and returns a buffer for the caller's next frame (one that
// fell out of the bound, if any, so that a stream of frames is read
// without allocating or copying them).
func (t *telemetry) ingest(e *Engine, k wire.TelemetryKind, payload, frame []byte) (next []byte) {
	t.mu.Lock()
	t.frames[k]++
	t.raw = append(t.raw, rawFrame{k: k, b: payload, frame: frame})
	t.rawBytes += len(payload)
	limit := t.rawLimit
	if limit == 0 {
		limit = maxRawTelemetry
	}
	for t.rawBytes > limit && len(t.raw) > 1 {
		old := t.raw[0]
		t.rawBytes -= len(old.b)
		t.raw[0] = rawFrame{}
		t.raw = t.raw[1:]
		if c := cap(old.frame); c >= len(frame) && c >= cap(next) && c <= 4<<20 {
			next = old.frame[:0] // room for a frame like this one: read without growing
		}
	}
	t.mu.Unlock()
	e.mu.Lock()
	e.notifyLocked()
	e.mu.Unlock()
	if k == wire.TelemetryLogs && e.hasLogBindings() {
		e.fireOTLPLogs(payload) // log triggers see the records at once
	}
	if next == nil {
		next = make([]byte, 0, min(max(len(frame)+len(frame)/4, 4096), 4<<20))
	}
	return next
}

// decodeLocked decodes the frames received since the last look. Parse
// errors are only logged, as in the engine.
func (t *telemetry) decodeLocked(e *Engine) {
	for i, f := range t.raw {
		t.raw[i] = rawFrame{}
		switch f.k {
		case wire.TelemetryTraces:
			var req wire.TracesRequest
			if err := json.Unmarshal(f.b, &req); err != nil {
				e.log.Debug("iiitest: bad OTLP traces frame", "err", err)
				continue
			}
			for _, rs := range req.ResourceSpans {
				for _, ss := range rs.ScopeSpans {
					t.spans = append(t.spans, ss.Spans...)
				}
			}
			t.spans = keepLast(t.spans, t.limit)
		case wire.TelemetryLogs:
			var req wire.LogsRequest
			if err := json.Unmarshal(f.b, &req); err != nil {
				e.log.Debug("iiitest: bad OTLP logs frame", "err", err)
				continue
			}
			for _, rl := range req.ResourceLogs {
				for _, sl := range rl.ScopeLogs {
					t.logs = append(t.logs, sl.LogRecords...)
				}
			}
			t.logs = keepLast(t.logs, t.limit)
		case wire.TelemetryMetrics:
			var req wire.MetricsRequest
			if err := json.Unmarshal(f.b, &req); err != nil {
				e.log.Debug("iiitest: bad OTLP metrics frame", "err", err)
				continue
			}
			for _, rm := range req.ResourceMetrics {
				for _, sm := range rm.ScopeMetrics {
					t.metrics = append(t.metrics, sm.Metrics...)
				}
			}
			t.metrics = keepLast(t.metrics, t.limit)
		}
	}
	t.raw, t.rawBytes = t.raw[:0], 0
}

// addLogs adds records logged through the engine::log::* builtins, after
// those of the frames that arrived before them.
func (t *telemetry) addLogs(e *Engine, recs []wire.LogRecord) {
	t.mu.Lock()
	t.decodeLocked(e)
	t.logs = keepLast(append(t.logs, recs...), t.limit)
	t.mu.Unlock()
	e.mu.Lock()
	e.notifyLocked()
	e.mu.Unlock()
}

// Spans returns the spans received in OTLP frames on "/" and "/otel", in
// arrival order.
func (e *Engine) Spans() []wire.Span {
	e.tel.mu.Lock()
	defer e.tel.mu.Unlock()
	e.tel.decodeLocked(e)
	return append([]wire.Span(nil), e.tel.spans...)
}

// Logs returns the log records received in LOGS frames, and those logged
// through the engine::log::* builtins, in arrival order.
func (e *Engine) Logs() []wire.LogRecord {
	e.tel.mu.Lock()
	defer e.tel.mu.Unlock()
	e.tel.decodeLocked(e)
	return append([]wire.LogRecord(nil), e.tel.logs...)
}

// Metrics returns the metrics received in MTRC frames, in arrival order.
func (e *Engine) Metrics() []wire.Metric {
	e.tel.mu.Lock()
	defer e.tel.mu.Unlock()
	e.tel.decodeLocked(e)
	return append([]wire.Metric(nil), e.tel.metrics...)
}

// TelemetryFrames returns how many telemetry frames of kind k arrived,
// whether or not they decoded.
func (e *Engine) TelemetryFrames(k wire.TelemetryKind) int64 {
	e.tel.mu.Lock()
	defer e.tel.mu.Unlock()
	if int(k) >= len(e.tel.frames) {
		return 0
	}
	return e.tel.frames[k]
}

// WaitSpans waits until at least n spans have been received and returns
// them all.
func (e *Engine) WaitSpans(ctx context.Context, n int) ([]wire.Span, error) {
	if err := e.waitTel(ctx, func(t *telemetry) bool { return len(t.spans) >= n }); err != nil {
		return nil, err
	}
	return e.Spans(), nil
}

// WaitLogs waits until at least n log records have been received and
// returns them all.
func (e *Engine) WaitLogs(ctx context.Context, n int) ([]wire.LogRecord, error) {
	if err := e.waitTel(ctx, func(t *telemetry) bool { return len(t.logs) >= n }); err != nil {
		return nil, err
	}
	return e.Logs(), nil
}

// WaitMetrics waits until at least n metrics have been received and returns
// them all.
func (e *Engine) WaitMetrics(ctx context.Context, n int) ([]wire.Metric, error) {
	if err := e.waitTel(ctx, func(t *telemetry) bool { return len(t.metrics) >= n }); err != nil {
		return nil, err
	}
	return e.Metrics(), nil
}

func (e *Engine) waitTel(ctx context.Context, cond func(*telemetry) bool) error {
	return e.waitFor(ctx, func() bool {
		e.tel.mu.Lock()
		defer e.tel.mu.Unlock()
		e.tel.decodeLocked(e)
		return cond(&e.tel)
	})
}
