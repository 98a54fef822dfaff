package iii

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"os"
	"slices"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/iii-go/iii/connection/wire"
	"github.com/iii-go/iii/otelws"
)

// Logger writes structured log records that travel to the engine as
// OpenTelemetry logs (LOGS frames on the worker's telemetry connection),
// correlated with the span of the context passed in: inside a handler, the
// invocation's trace and span ids are on every record. When the
// application gave its own TelemetryOptions.LoggerProvider, records are
// emitted through it instead (with the context, from which it takes the
// span), and none go to the engine. It is a small value,
// safe for concurrent use and cheap to copy, like the Rust SDK's Logger.
//
// Arguments after the message are attributes, as for log/slog: key-value
// pairs ("sku", "A-1", "qty", 2) or slog.Attr values. Levels map to
// OpenTelemetry severities (Debug 5, Info 9, Warn 13, Error 17).
//
// The zero Logger needs no setup: given a handler's context (or one
// derived from it), it sends its records through the worker serving that
// invocation; given any other context it writes to slog.Default(). It
// never picks some other worker of the process: with several workers
// (often for different teams or tenants) that would send one worker's
// records to another's engine. When the worker (the invocation's, or that
// of III.Logger) has telemetry or its logs off (TelemetryOptions.DisableLogs)
// or is shut down, records go to
// slog.Default() too, with the trace and span ids as attributes; by
// default that is the standard logger on stderr.
// Logging never blocks on the network: records that do not fit in the
// worker's log queue are dropped and counted (see III.TelemetryStats).
type Logger struct {
	w     *III
	attrs []slog.Attr
}

// Logger returns a Logger bound to this worker's telemetry.
func (w *III) Logger() Logger { return Logger{w: w} }

// With returns a Logger that adds attrs (key-value pairs or slog.Attr
// values, as for the logging methods) to every record.
func (l Logger) With(args ...any) Logger {
	if len(args) == 0 {
		return l
	}
	r := slog.NewRecord(time.Time{}, 0, "", 0)
	r.Add(args...)
	attrs := slices.Clip(l.attrs)
	r.Attrs(func(a slog.Attr) bool {
		attrs = append(attrs, a)
		return true
	})
	return Logger{w: l.w, attrs: attrs}
}

// Debug logs at slog.LevelDebug.
func (l Logger) Debug(ctx context.Context, msg string, args ...any) {
	l.Log(ctx, slog.LevelDebug, msg, args...)
}

// Info logs at slog.LevelInfo.
func (l Logger) Info(ctx context.Context, msg string, args ...any) {
	l.Log(ctx, slog.LevelInfo, msg, args...)
}

// Warn logs at slog.LevelWarn.
func (l Logger) Warn(ctx context.Context, msg string, args ...any) {
	l.Log(ctx, slog.LevelWarn, msg, args...)
}

// Error logs at slog.LevelError.
func (l Logger) Error(ctx context.Context, msg string, args ...any) {
	l.Log(ctx, slog.LevelError, msg, args...)
}

// Log logs at any level. ctx may be nil.
func (l Logger) Log(ctx context.Context, level slog.Level, msg string, args ...any) {
	if ctx == nil {
		ctx = context.Background()
	}
	r := slog.NewRecord(time.Now(), level, msg, 0)
	r.Add(args...)
	if t := l.target(ctx); t != nil && t.emitLog(ctx, r, "", l.attrs) {
		return
	}
	fallbackLog(ctx, r, l.attrs)
}

// target returns the telemetry the Logger's records go to, or nil: its
// worker's, or for the zero Logger that of the worker serving the
// invocation of ctx; nil when that worker's logs are off.
func (l Logger) target(ctx context.Context) *telemetry {
	w := l.w
	if w == nil {
		w = workerFrom(ctx)
	}
	if w != nil {
		if t := w.tel; t != nil && !t.logsOff && !t.closed.Load() {
			return t
		}
	}
	return nil
}

// fallbackKey marks a context on its way to the fallback handler, so that
// an iii handler installed as slog's default (directly or wrapped) does not
// send the record back around.
type fallbackKey struct{}

// stderrHandler is the fallback when slog's default handler is ours.
var stderrHandler slog.Handler = slog.NewTextHandler(os.Stderr, nil)

// fallbackLog writes r, with attrs first, to slog.Default(), adding the
// trace and span ids of ctx.
func fallbackLog(ctx context.Context, r slog.Record, attrs []slog.Attr) {
	h := slog.Default().Handler()
	if _, ours := h.(*slogHandler); ours || ctx.Value(fallbackKey{}) != nil {
		h = stderrHandler
	}
	if !h.Enabled(ctx, r.Level) {
		return
	}
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	out.AddAttrs(attrs...)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(a)
		return true
	})
	if sc := spanContext(ctx); sc.IsValid() {
		out.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	_ = h.Handle(context.WithValue(ctx, fallbackKey{}, true), out)
}

// spanContext returns the span context of ctx: its span's, else the
// caller's trace context of the invocation it belongs to.
func spanContext(ctx context.Context) trace.SpanContext {
	sc := trace.SpanContextFromContext(ctx)
	if sc.IsValid() {
		return sc
	}
	if inv := invocationFrom(ctx); inv != nil && inv.Traceparent() != "" {
		return trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), &traceCarrier{traceparent: inv.Traceparent()}))
	}
	return sc
}

// logRecord converts a slog record to OTLP: attrs (already prefixed) come
// first, then the record's own attributes under prefix.
func logRecord(ctx context.Context, r slog.Record, prefix string, attrs []slog.Attr) wire.LogRecord {
	now := wire.Uint64(time.Now().UnixNano())
	ts := now
	if !r.Time.IsZero() {
		ts = wire.Uint64(r.Time.UnixNano())
	}
	rec := wire.LogRecord{TimeUnixNano: ts, ObservedTimeUnixNano: now,
		SeverityNumber: severity(r.Level), SeverityText: r.Level.String(), Body: otelws.String(r.Message)}
	n := len(attrs) + r.NumAttrs()
	sc := spanContext(ctx)
	if sc.IsValid() {
		n += 2
	}
	rec.Attributes = make(wire.Attributes, 0, n)
	for _, a := range attrs {
		rec.Attributes = appendAttr(rec.Attributes, "", a)
	}
	r.Attrs(func(a slog.Attr) bool {
		rec.Attributes = appendAttr(rec.Attributes, prefix, a)
		return true
	})
	if sc.IsValid() {
		rec.TraceID, rec.SpanID, rec.Flags = sc.TraceID().String(), sc.SpanID().String(), int(sc.TraceFlags())
		// As the Node SDK's Logger, which the engine's log views read.
		rec.Attributes = append(rec.Attributes, wire.KeyValue{Key: "trace_id", Value: otelws.String(rec.TraceID)},
			wire.KeyValue{Key: "span_id", Value: otelws.String(rec.SpanID)})
	}
	return rec
}

// severity maps a slog level to an OpenTelemetry severity number: Debug 5,
// Info 9, Warn 13, Error 17, and the levels between in between.
func severity(l slog.Level) int { return min(max(int(l)+9, 1), 24) }

func appendAttr(dst wire.Attributes, prefix string, a slog.Attr) wire.Attributes {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return dst
	}
	if a.Value.Kind() == slog.KindGroup && a.Key == "" { // inlined, as slog does
		for _, g := range a.Value.Group() {
			dst = appendAttr(dst, prefix, g)
		}
		return dst
	}
	return append(dst, wire.KeyValue{Key: prefix + a.Key, Value: logValue(a.Value)})
}

// logValue converts a slog value to an OTLP AnyValue. Groups become
// key-value lists; other values of kind Any are encoded through JSON into
// lists, key-value lists and scalars (errors and fmt.Stringers as text).
func logValue(v slog.Value) wire.AnyValue {
	v = v.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return otelws.String(v.String())
	case slog.KindInt64:
		i := wire.Int64(v.Int64())
		return wire.AnyValue{IntValue: &i}
	case slog.KindUint64:
		if u := v.Uint64(); u <= math.MaxInt64 {
			i := wire.Int64(u)
			return wire.AnyValue{IntValue: &i}
		}
		return otelws.Double(float64(v.Uint64()))
	case slog.KindFloat64:
		return otelws.Double(v.Float64())
	case slog.KindBool:
		b := v.Bool()
		return wire.AnyValue{BoolValue: &b}
	case slog.KindDuration:
		return otelws.String(v.Duration().String())
	case slog.KindTime:
		return otelws.String(v.Time().Format(time.RFC3339Nano))
	case slog.KindGroup:
		kv := &wire.KeyValueList{}
		for _, a := range v.Group() {
			kv.Values = appendAttr(kv.Values, "", a)
		}
		return wire.AnyValue{KvlistValue: kv}
	}
	switch x := v.Any().(type) {
	case nil:
		return wire.AnyValue{}
	case error:
		return otelws.String(x.Error())
	case []byte:
		return wire.AnyValue{BytesValue: x}
	case json.RawMessage:
		return jsonValue(x)
	case json.Marshaler:
	case fmt.Stringer:
		return otelws.String(x.String())
	}
	b, err := json.Marshal(v.Any())
	if err != nil {
		return otelws.String(fmt.Sprint(v.Any()))
	}
	return jsonValue(b)
}

// jsonValue converts JSON to an AnyValue (object keys in order of
// appearance are not kept: Go maps sort them).
func jsonValue(b []byte) wire.AnyValue {
	var x any
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&x); err != nil {
		return otelws.String(string(b))
	}
	return anyValue(x)
}

func anyValue(x any) wire.AnyValue {
	switch x := x.(type) {
	case string:
		return otelws.String(x)
	case bool:
		return wire.AnyValue{BoolValue: &x}
	case json.Number:
		if i, err := x.Int64(); err == nil {
			iv := wire.Int64(i)
			return wire.AnyValue{IntValue: &iv}
		}
		f, _ := x.Float64()
		return otelws.Double(f)
	case []any:
		vals := make([]wire.AnyValue, len(x))
		for i, e := range x {
			vals[i] = anyValue(e)
		}
		return wire.AnyValue{ArrayValue: &wire.ArrayValue{Values: vals}}
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		kv := &wire.KeyValueList{Values: make([]wire.KeyValue, len(keys))}
		for i, k := range keys {
			kv.Values[i] = wire.KeyValue{Key: k, Value: anyValue(x[k])}
		}
		return wire.AnyValue{KvlistValue: kv}
	}
	return wire.AnyValue{}
}

// NewSlogHandler returns a log/slog handler that sends records the way l
// does, so that code logging through slog reaches the engine too:
//
//	slog.SetDefault(slog.New(iii.NewSlogHandler(w.Logger(), nil)))
//
// Records below level are discarded; nil means slog.LevelInfo. Attributes
// under WithGroup get dotted keys ("req.id"); slog.Group values become
// OTLP key-value lists.
func NewSlogHandler(l Logger, level slog.Leveler) slog.Handler {
	if level == nil {
		level = slog.LevelInfo
	}
	return &slogHandler{l: l, level: level}
}

// SlogHandler returns NewSlogHandler(w.Logger(), nil).
func (w *III) SlogHandler() slog.Handler { return NewSlogHandler(w.Logger(), nil) }

type slogHandler struct {
	l      Logger
	level  slog.Leveler
	prefix string      // of the open groups, "a.b."
	attrs  []slog.Attr // from WithAttrs, keys prefixed
}

func (h *slogHandler) Enabled(_ context.Context, level slog.Level) bool {
	return level >= h.level.Level()
}

func (h *slogHandler) Handle(ctx context.Context, r slog.Record) error {
	if ctx == nil {
		ctx = context.Background()
	}
	attrs := h.attrs
	if len(h.l.attrs) > 0 {
		attrs = append(slices.Clip(h.l.attrs), h.attrs...)
	}
	if t := h.l.target(ctx); t != nil && ctx.Value(fallbackKey{}) == nil && t.emitLog(ctx, r, h.prefix, attrs) {
		return nil
	}
	if h.prefix != "" {
		pr := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
		r.Attrs(func(a slog.Attr) bool {
			if a.Key != "" {
				a.Key = h.prefix + a.Key
			}
			pr.AddAttrs(a)
			return true
		})
		r = pr
	}
	fallbackLog(ctx, r, attrs)
	return nil
}

func (h *slogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	if len(as) == 0 {
		return h
	}
	c := *h
	c.attrs = slices.Clip(h.attrs)
	for _, a := range as {
		if a.Key != "" {
			a.Key = h.prefix + a.Key
		}
		c.attrs = append(c.attrs, a)
	}
	return &c
}

func (h *slogHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := *h
	c.prefix = h.prefix + name + "."
	return &c
}
