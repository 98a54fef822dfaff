package iiitest

import (
	"context"
	"encoding/json"
	"sync"

	"github.com/iii-go/iii/connection/wire"
)

// telemetry keeps the spans, log records and metrics received in OTLP/JSON
// frames (bounded: the oldest are dropped first).
type telemetry struct {
	mu      sync.Mutex
	limit   int
	spans   []wire.Span
	logs    []wire.LogRecord
	metrics []wire.Metric
	frames  [4]int64
}

func keepLast[T any](s []T, limit int) []T {
	if limit > 0 && len(s) > limit {
		n := copy(s, s[len(s)-limit:])
		clear(s[n:])
		s = s[:n]
	}
	return s
}

// ingest decodes one telemetry frame's payload. Parse errors are only
// logged, as in the engine.
func (t *telemetry) ingest(e *Engine, k wire.TelemetryKind, payload []byte) {
	t.mu.Lock()
	t.frames[k]++
	t.mu.Unlock()
	defer func() {
		e.mu.Lock()
		e.notifyLocked()
		e.mu.Unlock()
	}()
	switch k {
	case wire.TelemetryTraces:
		var req wire.TracesRequest
		if err := json.Unmarshal(payload, &req); err != nil {
			e.log.Debug("iiitest: bad OTLP traces frame", "err", err)
			return
		}
		var spans []wire.Span
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				spans = append(spans, ss.Spans...)
			}
		}
		t.mu.Lock()
		t.spans = keepLast(append(t.spans, spans...), t.limit)
		t.mu.Unlock()
	case wire.TelemetryLogs:
		var req wire.LogsRequest
		if err := json.Unmarshal(payload, &req); err != nil {
			e.log.Debug("iiitest: bad OTLP logs frame", "err", err)
			return
		}
		var recs []wire.LogRecord
		for _, rl := range req.ResourceLogs {
			for _, sl := range rl.ScopeLogs {
				recs = append(recs, sl.LogRecords...)
			}
		}
		t.addLogs(e, recs)
	case wire.TelemetryMetrics:
		var req wire.MetricsRequest
		if err := json.Unmarshal(payload, &req); err != nil {
			e.log.Debug("iiitest: bad OTLP metrics frame", "err", err)
			return
		}
		var ms []wire.Metric
		for _, rm := range req.ResourceMetrics {
			for _, sm := range rm.ScopeMetrics {
				ms = append(ms, sm.Metrics...)
			}
		}
		t.mu.Lock()
		t.metrics = keepLast(append(t.metrics, ms...), t.limit)
		t.mu.Unlock()
	}
}

func (t *telemetry) addLogs(e *Engine, recs []wire.LogRecord) {
	t.mu.Lock()
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
	return append([]wire.Span(nil), e.tel.spans...)
}

// Logs returns the log records received in LOGS frames, and those logged
// through the engine::log::* builtins, in arrival order.
func (e *Engine) Logs() []wire.LogRecord {
	e.tel.mu.Lock()
	defer e.tel.mu.Unlock()
	return append([]wire.LogRecord(nil), e.tel.logs...)
}

// Metrics returns the metrics received in MTRC frames, in arrival order.
func (e *Engine) Metrics() []wire.Metric {
	e.tel.mu.Lock()
	defer e.tel.mu.Unlock()
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
		return cond(&e.tel)
	})
}
