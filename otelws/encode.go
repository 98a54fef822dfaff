package otelws

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"math"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/iii-go/iii/connection/wire"
)

// The batches of spans and log records are encoded here by hand, straight
// from the SDK's spans into the frame: going through the wire types and
// encoding/json cost 3-4 µs per span. The output decodes into the same
// wire types (see the tests); metrics, exported once a minute, use
// encoding/json.

// encoder appends OTLP/JSON to a buffer it reuses.
type encoder struct {
	buf []byte
	res []byte // the resource, encoded once
}

func newEncoder(res wire.Resource) *encoder {
	b, err := json.Marshal(res)
	if err != nil {
		b = []byte("{}")
	}
	return &encoder{res: b}
}

// frame returns a copy of the buffer, the caller's to keep.
func (e *encoder) frame() []byte {
	f := make([]byte, len(e.buf))
	copy(f, e.buf)
	if cap(e.buf) > 4<<20 {
		e.buf = nil // do not pin a huge batch's buffer
	}
	return f
}

// spanBatch holds encoded spans, grouped by instrumentation scope (there
// are few scopes, so a linear scan for each span beats a map).
type spanBatch struct {
	scopes []scopeSpans
	n      int // spans
}

type scopeSpans struct {
	scope instrumentation.Scope
	buf   []byte // encoded spans, comma-separated
}

// add appends one encoded span of scope sc.
func (sb *spanBatch) add(sc *instrumentation.Scope, span []byte) {
	i := 0
	for i < len(sb.scopes) && sb.scopes[i].scope != *sc {
		i++
	}
	if i == len(sb.scopes) {
		sb.scopes = append(sb.scopes, scopeSpans{scope: *sc})
	}
	s := &sb.scopes[i]
	if len(s.buf) > 0 {
		s.buf = append(s.buf, ',')
	}
	s.buf = append(s.buf, span...)
	sb.n++
}

// reset empties the batch. Scopes that had spans keep their buffers for
// the next batch (unless they grew huge); the others are forgotten.
func (sb *spanBatch) reset() {
	k := 0
	for _, s := range sb.scopes {
		if len(s.buf) > 0 && cap(s.buf) <= 4<<20 {
			sb.scopes[k] = scopeSpans{scope: s.scope, buf: s.buf[:0]}
			k++
		}
	}
	clear(sb.scopes[k:])
	sb.scopes = sb.scopes[:k]
	sb.n = 0
}

// traces encodes an OTLP traces frame ("OTLP" + ExportTraceServiceRequest)
// of the spans.
func (e *encoder) traces(spans []sdktrace.ReadOnlySpan) []byte {
	var sb spanBatch
	for _, s := range spans {
		sc := s.InstrumentationScope()
		sb.add(&sc, appendSpan(nil, s))
	}
	return e.tracesFrame(&sb)
}

// tracesFrame encodes an OTLP traces frame of a batch, in a buffer of its
// own (a written frame's, reused).
func (e *encoder) tracesFrame(sb *spanBatch) []byte {
	size := 64 + len(e.res)
	for _, s := range sb.scopes {
		size += 64 + len(s.scope.Name) + len(s.scope.Version) + len(s.buf)
	}
	b := getFrame(size)
	b = append(b, wire.TelemetryTraces.Prefix()...)
	b = append(b, `{"resourceSpans":[{"resource":`...)
	b = append(b, e.res...)
	b = append(b, `,"scopeSpans":[`...)
	first := true
	for _, s := range sb.scopes {
		if len(s.buf) == 0 {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, `{"scope":`...)
		b = appendScope(b, s.scope.Name, s.scope.Version)
		b = append(b, `,"spans":[`...)
		b = append(b, s.buf...)
		b = append(b, "]}"...)
	}
	return append(b, "]}]}"...)
}

// logs encodes an OTLP logs frame ("LOGS" + ExportLogsServiceRequest).
func (e *encoder) logs(scope wire.Scope, recs []wire.LogRecord) []byte {
	b := append(e.buf[:0], wire.TelemetryLogs.Prefix()...)
	b = append(b, `{"resourceLogs":[{"resource":`...)
	b = append(b, e.res...)
	b = append(b, `,"scopeLogs":[{"scope":`...)
	b = appendScope(b, scope.Name, scope.Version)
	b = append(b, `,"logRecords":[`...)
	for i := range recs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendLogRecord(b, &recs[i])
	}
	b = append(b, "]}]}]}"...)
	e.buf = b
	return e.frame()
}

func appendScope(b []byte, name, version string) []byte {
	b = append(b, '{')
	if name != "" {
		b = append(b, `"name":`...)
		b = appendString(b, name)
	}
	if version != "" {
		if name != "" {
			b = append(b, ',')
		}
		b = append(b, `"version":`...)
		b = appendString(b, version)
	}
	return append(b, '}')
}

// SpanData is an ended span as the encoder takes it: the fields of an
// sdktrace.ReadOnlySpan, for spans recorded without the SDK (the worker's
// own invocation and call spans, see Pipeline.ExportSpan).
type SpanData struct {
	TraceID      trace.TraceID
	SpanID       trace.SpanID
	ParentSpanID trace.SpanID // zero for a root span
	TraceState   trace.TraceState
	Name         string
	Kind         trace.SpanKind
	Start, End   time.Time
	// NameJSON, if set, is Name and Kind encoded once (AppendNameJSON)
	// for spans that share them, and replaces them.
	NameJSON []byte
	// Attributes come first; IDAttribute, if its Key is set, follows them
	// (a UUID attribute encoded without building its string), then
	// MoreAttributes. AttributesJSON, if set, is Attributes encoded once
	// (AppendAttributesJSON), and replaces them.
	Attributes     []attribute.KeyValue
	AttributesJSON []byte
	IDAttribute    UUIDAttribute
	MoreAttributes []attribute.KeyValue
	Events         []sdktrace.Event
	// EventsBefore and EventsAfter, if set, are events encoded already:
	// complete OTLP event objects, comma-separated, which go before and
	// after Events.
	EventsBefore, EventsAfter []byte
	Links                     []sdktrace.Link
	Status                    sdktrace.Status
}

// UUIDAttribute is a string attribute whose value is a UUID, encoded in
// its canonical text form.
type UUIDAttribute struct {
	Key   attribute.Key
	Value [16]byte
}

// spanData fills d with the fields of s (slices shared, not copied).
func spanData(d *SpanData, s sdktrace.ReadOnlySpan) {
	sc := s.SpanContext()
	*d = SpanData{TraceID: sc.TraceID(), SpanID: sc.SpanID(), TraceState: sc.TraceState(), Name: s.Name(), Kind: s.SpanKind(),
		Start: s.StartTime(), End: s.EndTime(), Attributes: s.Attributes(), Events: s.Events(), Links: s.Links(), Status: s.Status()}
	if p := s.Parent(); p.IsValid() {
		d.ParentSpanID = p.SpanID()
	}
}

func appendSpan(b []byte, s sdktrace.ReadOnlySpan) []byte {
	var d SpanData
	spanData(&d, s)
	return appendSpanData(b, &d)
}

func appendSpanData(b []byte, s *SpanData) []byte {
	b = append(b, `{"traceId":"`...)
	b = hex.AppendEncode(b, s.TraceID[:])
	b = append(b, `","spanId":"`...)
	b = hex.AppendEncode(b, s.SpanID[:])
	b = append(b, '"')
	if s.TraceState.Len() > 0 {
		b = append(b, `,"traceState":`...)
		b = appendString(b, s.TraceState.String())
	}
	if s.ParentSpanID.IsValid() {
		b = append(b, `,"parentSpanId":"`...)
		b = hex.AppendEncode(b, s.ParentSpanID[:])
		b = append(b, '"')
	}
	if s.NameJSON != nil {
		b = append(b, s.NameJSON...)
	} else {
		b = AppendNameJSON(b, s.Name, s.Kind)
	}
	b = append(b, `,"startTimeUnixNano":`...)
	b = appendNanos(b, s.Start)
	b = append(b, `,"endTimeUnixNano":`...)
	b = appendNanos(b, s.End)
	first := len(s.Attributes) > 0 || len(s.AttributesJSON) > 0
	if first || s.IDAttribute.Key != "" || len(s.MoreAttributes) > 0 {
		b = append(b, `,"attributes":[`...)
		if s.AttributesJSON != nil {
			b = append(b, s.AttributesJSON...)
		} else {
			b = appendKVs(b, s.Attributes)
		}
		if s.IDAttribute.Key != "" {
			if first {
				b = append(b, ',')
			}
			b = append(b, `{"key":`...)
			b = appendString(b, string(s.IDAttribute.Key))
			b = append(b, `,"value":{"stringValue":"`...)
			b = appendUUID(b, &s.IDAttribute.Value)
			b = append(b, `"}}`...)
		}
		if len(s.MoreAttributes) > 0 {
			if first || s.IDAttribute.Key != "" {
				b = append(b, ',')
			}
			b = appendKVs(b, s.MoreAttributes)
		}
		b = append(b, ']')
	}
	if len(s.Events) > 0 || len(s.EventsBefore) > 0 || len(s.EventsAfter) > 0 {
		b = append(b, `,"events":`...)
		sep := byte('[')
		if len(s.EventsBefore) > 0 {
			b = append(append(b, sep), s.EventsBefore...)
			sep = ','
		}
		for i := range s.Events {
			ev := &s.Events[i]
			b = append(b, sep)
			sep = ','

			b = append(b, `{"timeUnixNano":`...)
			b = appendNanos(b, ev.Time)
			b = append(b, `,"name":`...)
			b = appendString(b, ev.Name)
			if len(ev.Attributes) > 0 {
				b = append(b, `,"attributes":`...)
				b = appendAttributes(b, ev.Attributes)
			}
			b = append(b, '}')
		}
		if len(s.EventsAfter) > 0 {
			b = append(append(b, sep), s.EventsAfter...)
		}
		b = append(b, ']')
	}
	if len(s.Links) > 0 {
		b = append(b, `,"links":[`...)
		for i := range s.Links {
			l := &s.Links[i]
			if i > 0 {
				b = append(b, ',')
			}
			ltid, lsid := l.SpanContext.TraceID(), l.SpanContext.SpanID()
			b = append(b, `{"traceId":"`...)
			b = hex.AppendEncode(b, ltid[:])
			b = append(b, `","spanId":"`...)
			b = hex.AppendEncode(b, lsid[:])
			b = append(b, '"')
			if len(l.Attributes) > 0 {
				b = append(b, `,"attributes":`...)
				b = appendAttributes(b, l.Attributes)
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = append(b, `,"status":{`...)
	switch s.Status.Code {
	case codes.Error:
		b = append(b, `"code":2`...) // OTLP's STATUS_CODE_ERROR
		if s.Status.Description != "" {
			b = append(b, `,"message":`...)
			b = appendString(b, s.Status.Description)
		}
	case codes.Ok:
		b = append(b, `"code":1`...)
	}
	return append(b, "}}"...)
}

// AppendNameJSON appends a span's name and kind as SpanData.NameJSON
// holds them.
func AppendNameJSON(b []byte, name string, kind trace.SpanKind) []byte {
	b = append(b, `,"name":`...)
	b = appendString(b, name)
	if kind != 0 {
		b = append(b, `,"kind":`...)
		b = strconv.AppendInt(b, int64(kind), 10)
	}
	return b
}

// AppendAttributesJSON appends attributes as SpanData.AttributesJSON holds
// them.
func AppendAttributesJSON(b []byte, attrs []attribute.KeyValue) []byte { return appendKVs(b, attrs) }

// appendUUID appends the canonical text form of a UUID.
func appendUUID(b []byte, u *[16]byte) []byte {
	b = hex.AppendEncode(b, u[0:4])
	b = append(b, '-')
	b = hex.AppendEncode(b, u[4:6])
	b = append(b, '-')
	b = hex.AppendEncode(b, u[6:8])
	b = append(b, '-')
	b = hex.AppendEncode(b, u[8:10])
	b = append(b, '-')
	return hex.AppendEncode(b, u[10:16])
}

func appendNanos(b []byte, t time.Time) []byte {
	var n int64
	if !t.IsZero() {
		n = t.UnixNano()
	}
	b = append(b, '"')
	b = strconv.AppendInt(b, n, 10)
	return append(b, '"')
}

func appendAttributes(b []byte, attrs []attribute.KeyValue) []byte {
	b = append(b, '[')
	b = appendKVs(b, attrs)
	return append(b, ']')
}

// appendKVs appends attributes without the brackets of their array.
func appendKVs(b []byte, attrs []attribute.KeyValue) []byte {
	for i, kv := range attrs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"key":`...)
		b = appendString(b, string(kv.Key))
		b = append(b, `,"value":`...)
		switch kv.Value.Type() {
		case attribute.STRING:
			b = append(b, `{"stringValue":`...)
			b = appendString(b, kv.Value.AsString())
			b = append(b, '}')
		case attribute.INT64:
			b = appendInt(b, kv.Value.AsInt64())
		case attribute.BOOL:
			b = append(b, `{"boolValue":`...)
			b = strconv.AppendBool(b, kv.Value.AsBool())
			b = append(b, '}')
		case attribute.FLOAT64:
			b = appendDouble(b, kv.Value.AsFloat64())
		default:
			// Slices and maps recurse; a buffer of their own keeps b
			// out of the recursion, where escape analysis would move a
			// caller's stack buffer to the heap.
			b = append(b, appendValue(nil, kv.Value)...)
		}
		b = append(b, '}')
	}
	return b
}

// appendValue appends an attribute value as an OTLP AnyValue.
func appendValue(b []byte, v attribute.Value) []byte {
	switch v.Type() {
	case attribute.BOOL:
		b = append(b, `{"boolValue":`...)
		b = strconv.AppendBool(b, v.AsBool())
		return append(b, '}')
	case attribute.INT64:
		return appendInt(b, v.AsInt64())
	case attribute.FLOAT64:
		return appendDouble(b, v.AsFloat64())
	case attribute.STRING:
		b = append(b, `{"stringValue":`...)
		b = appendString(b, v.AsString())
		return append(b, '}')
	case attribute.BYTESLICE:
		return appendBytes(b, v.AsByteSlice())
	case attribute.BOOLSLICE:
		return appendArray(b, v.AsBoolSlice(), func(b []byte, x bool) []byte {
			b = append(b, `{"boolValue":`...)
			b = strconv.AppendBool(b, x)
			return append(b, '}')
		})
	case attribute.INT64SLICE:
		return appendArray(b, v.AsInt64Slice(), appendInt)
	case attribute.FLOAT64SLICE:
		return appendArray(b, v.AsFloat64Slice(), appendDouble)
	case attribute.STRINGSLICE:
		return appendArray(b, v.AsStringSlice(), func(b []byte, s string) []byte {
			b = append(b, `{"stringValue":`...)
			b = appendString(b, s)
			return append(b, '}')
		})
	case attribute.SLICE:
		return appendArray(b, v.AsSlice(), appendValue)
	case attribute.MAP:
		b = append(b, `{"kvlistValue":{"values":[`...)
		for i, kv := range v.AsMap() {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"key":`...)
			b = appendString(b, string(kv.Key))
			b = append(b, `,"value":`...)
			b = appendValue(b, kv.Value)
			b = append(b, '}')
		}
		return append(b, "]}}"...)
	}
	return append(b, "{}"...)
}

func appendArray[T any](b []byte, s []T, each func([]byte, T) []byte) []byte {
	b = append(b, `{"arrayValue":{"values":[`...)
	for i, x := range s {
		if i > 0 {
			b = append(b, ',')
		}
		b = each(b, x)
	}
	return append(b, "]}}"...)
}

func appendInt(b []byte, i int64) []byte {
	b = append(b, `{"intValue":"`...)
	b = strconv.AppendInt(b, i, 10)
	return append(b, `"}`...)
}

// appendDouble appends a double AnyValue; NaN and infinities, which JSON
// numbers cannot carry, become strings (as Double does).
func appendDouble(b []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, `{"stringValue":"NaN"}`...)
	case math.IsInf(f, 1):
		return append(b, `{"stringValue":"Infinity"}`...)
	case math.IsInf(f, -1):
		return append(b, `{"stringValue":"-Infinity"}`...)
	}
	b = append(b, `{"doubleValue":`...)
	b = strconv.AppendFloat(b, f, 'g', -1, 64)
	return append(b, '}')
}

func appendBytes(b []byte, p []byte) []byte {
	b = append(b, `{"bytesValue":"`...)
	b = base64.StdEncoding.AppendEncode(b, p)
	return append(b, `"}`...)
}

func appendLogRecord(b []byte, r *wire.LogRecord) []byte {
	b = append(b, '{')
	if r.TimeUnixNano != 0 {
		b = append(b, `"timeUnixNano":"`...)
		b = strconv.AppendUint(b, uint64(r.TimeUnixNano), 10)
		b = append(b, `",`...)
	}
	if r.ObservedTimeUnixNano != 0 {
		b = append(b, `"observedTimeUnixNano":"`...)
		b = strconv.AppendUint(b, uint64(r.ObservedTimeUnixNano), 10)
		b = append(b, `",`...)
	}
	if r.SeverityNumber != 0 {
		b = append(b, `"severityNumber":`...)
		b = strconv.AppendInt(b, int64(r.SeverityNumber), 10)
		b = append(b, ',')
	}
	if r.SeverityText != "" {
		b = append(b, `"severityText":`...)
		b = appendString(b, r.SeverityText)
		b = append(b, ',')
	}
	b = append(b, `"body":`...)
	b = appendAnyValue(b, &r.Body)
	if len(r.Attributes) > 0 {
		b = append(b, `,"attributes":`...)
		b = appendKeyValues(b, r.Attributes)
	}
	if r.TraceID != "" {
		b = append(b, `,"traceId":`...)
		b = appendString(b, r.TraceID)
	}
	if r.SpanID != "" {
		b = append(b, `,"spanId":`...)
		b = appendString(b, r.SpanID)
	}
	if r.Flags != 0 {
		b = append(b, `,"flags":`...)
		b = strconv.AppendInt(b, int64(r.Flags), 10)
	}
	return append(b, '}')
}

func appendKeyValues(b []byte, kvs []wire.KeyValue) []byte {
	b = append(b, '[')
	for i := range kvs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"key":`...)
		b = appendString(b, kvs[i].Key)
		b = append(b, `,"value":`...)
		b = appendAnyValue(b, &kvs[i].Value)
		b = append(b, '}')
	}
	return append(b, ']')
}

// appendAnyValue appends a wire.AnyValue as encoding/json would.
func appendAnyValue(b []byte, v *wire.AnyValue) []byte {
	switch {
	case v.StringValue != nil:
		b = append(b, `{"stringValue":`...)
		b = appendString(b, *v.StringValue)
		return append(b, '}')
	case v.BoolValue != nil:
		b = append(b, `{"boolValue":`...)
		b = strconv.AppendBool(b, *v.BoolValue)
		return append(b, '}')
	case v.IntValue != nil:
		return appendInt(b, int64(*v.IntValue))
	case v.DoubleValue != nil:
		return appendDouble(b, *v.DoubleValue)
	case v.ArrayValue != nil:
		b = append(b, `{"arrayValue":{"values":[`...)
		for i := range v.ArrayValue.Values {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendAnyValue(b, &v.ArrayValue.Values[i])
		}
		return append(b, "]}}"...)
	case v.KvlistValue != nil:
		b = append(b, `{"kvlistValue":{"values":`...)
		b = appendKeyValues(b, v.KvlistValue.Values)
		return append(b, "}}"...)
	case v.BytesValue != nil:
		return appendBytes(b, v.BytesValue)
	}
	return append(b, "{}"...)
}

// appendString appends s as a JSON string (the codec's escaping: any valid
// JSON does for OTLP).
func appendString(b []byte, s string) []byte { return wire.AppendString(b, s) }
