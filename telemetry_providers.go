package iii

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"time"

	"go.opentelemetry.io/otel/attribute"
	otellog "go.opentelemetry.io/otel/log"
	"go.opentelemetry.io/otel/trace"
)

// ownSignals are the signals the worker exports itself, to /otel.
type ownSignals struct{ spans, metrics, logs bool }

func (o ownSignals) any() bool { return o.spans || o.metrics || o.logs }

// app reports whether the application gave a provider the worker uses.
func (t *telemetry) app() bool { return t.appTP != nil || t.appMP != nil || t.logger != nil }

// useProviders takes the application's providers from opts and returns
// the signals for which the worker must build its own.
func (t *telemetry) useProviders(opts *TelemetryOptions, metricsOn bool) ownSignals {
	own := ownSignals{spans: true, metrics: metricsOn, logs: !t.logsOff}
	if tp := opts.TracerProvider; tp != nil {
		t.appTP = tp
		t.tracer = tp.Tracer(scopeName, trace.WithInstrumentationVersion(Version))
		own.spans = false
	}
	if mp := opts.MeterProvider; mp != nil && metricsOn {
		t.appMP = mp
		own.metrics = false
	}
	if lp := opts.LoggerProvider; lp != nil && !t.logsOff {
		t.logger = lp.Logger(scopeName, otellog.WithInstrumentationVersion(Version))
		own.logs = false
	}
	return own
}

// emitLog sends a Logger record through the application's LoggerProvider,
// or the worker's own pipeline; false if it could not (the record then
// goes to slog.Default()).
func (t *telemetry) emitLog(ctx context.Context, r slog.Record, prefix string, attrs []slog.Attr) bool {
	if t.logger != nil {
		t.logger.Emit(ctx, otelRecord(r, prefix, attrs))
		return true
	}
	if t.pipe == nil {
		return false
	}
	return t.pipe.EmitLog(logRecord(ctx, r, prefix, attrs))
}

// otelRecord converts a slog record to an OpenTelemetry log record; the
// application's LoggerProvider takes the trace context from the context
// the record is emitted with.
func otelRecord(r slog.Record, prefix string, attrs []slog.Attr) otellog.Record {
	var rec otellog.Record
	ts := r.Time
	if ts.IsZero() {
		ts = time.Now()
	}
	rec.SetTimestamp(ts)
	rec.SetObservedTimestamp(time.Now())
	rec.SetSeverity(otellog.Severity(severity(r.Level)))
	rec.SetSeverityText(r.Level.String())
	rec.SetBody(attribute.StringValue(r.Message))
	kvs := make([]attribute.KeyValue, 0, len(attrs)+r.NumAttrs())
	for _, a := range attrs {
		kvs = appendOtelAttr(kvs, "", a)
	}
	r.Attrs(func(a slog.Attr) bool {
		kvs = appendOtelAttr(kvs, prefix, a)
		return true
	})
	rec.AddAttributes(kvs...)
	return rec
}

func appendOtelAttr(dst []attribute.KeyValue, prefix string, a slog.Attr) []attribute.KeyValue {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return dst
	}
	if a.Value.Kind() == slog.KindGroup && a.Key == "" { // inlined, as slog does
		for _, g := range a.Value.Group() {
			dst = appendOtelAttr(dst, prefix, g)
		}
		return dst
	}
	return append(dst, attribute.KeyValue{Key: attribute.Key(prefix + a.Key), Value: otelValue(a.Value)})
}

// otelValue converts a slog value as logValue does, to an attribute.Value.
func otelValue(v slog.Value) attribute.Value {
	v = v.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return attribute.StringValue(v.String())
	case slog.KindInt64:
		return attribute.Int64Value(v.Int64())
	case slog.KindUint64:
		if u := v.Uint64(); u <= math.MaxInt64 {
			return attribute.Int64Value(int64(u))
		}
		return attribute.Float64Value(float64(v.Uint64()))
	case slog.KindFloat64:
		return attribute.Float64Value(v.Float64())
	case slog.KindBool:
		return attribute.BoolValue(v.Bool())
	case slog.KindDuration:
		return attribute.StringValue(v.Duration().String())
	case slog.KindTime:
		return attribute.StringValue(v.Time().Format(time.RFC3339Nano))
	case slog.KindGroup:
		var kvs []attribute.KeyValue
		for _, a := range v.Group() {
			kvs = appendOtelAttr(kvs, "", a)
		}
		return attribute.MapValue(kvs...)
	}
	switch x := v.Any().(type) {
	case nil:
		return attribute.Value{}
	case error:
		return attribute.StringValue(x.Error())
	case []byte:
		return attribute.ByteSliceValue(x)
	case json.RawMessage:
		return otelJSON(x)
	case json.Marshaler:
	case fmt.Stringer:
		return attribute.StringValue(x.String())
	}
	b, err := json.Marshal(v.Any())
	if err != nil {
		return attribute.StringValue(fmt.Sprint(v.Any()))
	}
	return otelJSON(b)
}

// otelJSON converts JSON to an attribute.Value (object keys sorted).
func otelJSON(b []byte) attribute.Value {
	var x any
	if err := json.Unmarshal(b, &x); err != nil {
		return attribute.StringValue(string(b))
	}
	return otelAny(x)
}

func otelAny(x any) attribute.Value {
	switch x := x.(type) {
	case string:
		return attribute.StringValue(x)
	case bool:
		return attribute.BoolValue(x)
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return attribute.Int64Value(int64(x))
		}
		return attribute.Float64Value(x)
	case []any:
		vals := make([]attribute.Value, len(x))
		for i, e := range x {
			vals[i] = otelAny(e)
		}
		return attribute.SliceValue(vals...)
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		kvs := make([]attribute.KeyValue, len(keys))
		for i, k := range keys {
			kvs[i] = attribute.KeyValue{Key: attribute.Key(k), Value: otelAny(x[k])}
		}
		return attribute.MapValue(kvs...)
	}
	return attribute.Value{}
}
