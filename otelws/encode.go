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

// traces encodes an OTLP traces frame ("OTLP" + ExportTraceServiceRequest).
func (e *encoder) traces(spans []sdktrace.ReadOnlySpan) []byte {
	b := append(e.buf[:0], wire.TelemetryTraces.Prefix()...)
	b = append(b, `{"resourceSpans":[{"resource":`...)
	b = append(b, e.res...)
	b = append(b, `,"scopeSpans":[`...)
	// Spans of one scope go together; there are few scopes, so a linear
	// scan for each beats a map.
	var scopes []instrumentation.Scope
	for _, s := range spans {
		sc := s.InstrumentationScope()
		seen := false
		for _, x := range scopes {
			if x == sc {
				seen = true
				break
			}
		}
		if !seen {
			scopes = append(scopes, sc)
		}
	}
	for i, sc := range scopes {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"scope":`...)
		b = appendScope(b, sc.Name, sc.Version)
		b = append(b, `,"spans":[`...)
		first := true
		for _, s := range spans {
			if s.InstrumentationScope() != sc {
				continue
			}
			if !first {
				b = append(b, ',')
			}
			first = false
			b = appendSpan(b, s)
		}
		b = append(b, "]}"...)
	}
	b = append(b, "]}]}"...)
	e.buf = b
	return e.frame()
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

func appendSpan(b []byte, s sdktrace.ReadOnlySpan) []byte {
	sc := s.SpanContext()
	tid, sid := sc.TraceID(), sc.SpanID()
	b = append(b, `{"traceId":"`...)
	b = hex.AppendEncode(b, tid[:])
	b = append(b, `","spanId":"`...)
	b = hex.AppendEncode(b, sid[:])
	b = append(b, '"')
	if ts := sc.TraceState().String(); ts != "" {
		b = append(b, `,"traceState":`...)
		b = appendString(b, ts)
	}
	if p := s.Parent(); p.IsValid() {
		psid := p.SpanID()
		b = append(b, `,"parentSpanId":"`...)
		b = hex.AppendEncode(b, psid[:])
		b = append(b, '"')
	}
	b = append(b, `,"name":`...)
	b = appendString(b, s.Name())
	if k := s.SpanKind(); k != 0 {
		b = append(b, `,"kind":`...)
		b = strconv.AppendInt(b, int64(k), 10)
	}
	b = append(b, `,"startTimeUnixNano":`...)
	b = appendNanos(b, s.StartTime())
	b = append(b, `,"endTimeUnixNano":`...)
	b = appendNanos(b, s.EndTime())
	if attrs := s.Attributes(); len(attrs) > 0 {
		b = append(b, `,"attributes":`...)
		b = appendAttributes(b, attrs)
	}
	if events := s.Events(); len(events) > 0 {
		b = append(b, `,"events":[`...)
		for i, ev := range events {
			if i > 0 {
				b = append(b, ',')
			}
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
		b = append(b, ']')
	}
	if links := s.Links(); len(links) > 0 {
		b = append(b, `,"links":[`...)
		for i, l := range links {
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
	switch st := s.Status(); st.Code {
	case codes.Error:
		b = append(b, `"code":2`...) // OTLP's STATUS_CODE_ERROR
		if st.Description != "" {
			b = append(b, `,"message":`...)
			b = appendString(b, st.Description)
		}
	case codes.Ok:
		b = append(b, `"code":1`...)
	}
	return append(b, "}}"...)
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
	for i, kv := range attrs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"key":`...)
		b = appendString(b, string(kv.Key))
		b = append(b, `,"value":`...)
		b = appendValue(b, kv.Value)
		b = append(b, '}')
	}
	return append(b, ']')
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
		b = append(b, `{"kvlistValue":{"values":`...)
		b = appendAttributes(b, v.AsMap())
		return append(b, "}}"...)
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
