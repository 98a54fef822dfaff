package otelws

import (
	"context"
	"encoding/json"
	"math"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/iii-go/iii/connection/wire"
)

// tricky strings for the JSON encoder.
var tricky = []string{"", "plain", `quote " and \ backslash`, "new\nline\ttab\rcr", "\x00\x01\x1f\x7f",
	"ünïcödé ✓ 𝄞", "bad utf-8 \xff\xfe end", "<html>&amp;</html>", "\u2028\u2029"}

// normalize round-trips v through encoding/json into a fresh value of type T.
func normalize[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%v in %s", err, b)
	}
	return v
}

// sameJSON fails unless got and want encode alike, showing where they part.
func sameJSON(t *testing.T, got, want any) {
	t.Helper()
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if string(g) == string(w) {
		return
	}
	i := 0
	for i < len(g) && i < len(w) && g[i] == w[i] {
		i++
	}
	from := max(i-200, 0)
	t.Fatalf("hand-encoded and encoding/json differ at byte %d:\n got …%s\nwant …%s", i, g[from:min(i+100, len(g))], w[from:min(i+100, len(w))])
}

func TestHandEncodedSpansMatchTheWireTypes(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	res := resource.NewSchemaless(attribute.String("service.name", "svc \"q\""))
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithResource(res))
	ts, _ := trace.ParseTraceState("vendor=value")
	linked := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: 1})
	for i, s := range tricky {
		tr := tp.Tracer("scope-"+string(rune('a'+i%2)), trace.WithInstrumentationVersion("v"+s))
		ctx := trace.ContextWithSpanContext(context.Background(), trace.SpanContextFromContext(context.Background()).WithTraceState(ts))
		ctx, parent := tr.Start(ctx, "parent "+s, trace.WithSpanKind(trace.SpanKind(i%6)),
			trace.WithLinks(trace.Link{SpanContext: linked, Attributes: []attribute.KeyValue{attribute.String("l", s)}}))
		_, child := tr.Start(ctx, s)
		child.SetAttributes(
			attribute.String("s", s), attribute.Int64("i", -int64(i)), attribute.Float64("f", 1.5/float64(i+1)),
			attribute.Float64("nan", math.NaN()), attribute.Float64("inf", math.Inf(-1)), attribute.Bool("b", i%2 == 0),
			attribute.StringSlice("ss", []string{s, "x"}), attribute.Int64Slice("is", []int64{1, math.MaxInt64}),
			attribute.Float64Slice("fs", []float64{0.1, 1e300}), attribute.BoolSlice("bs", []bool{true, false}),
			attribute.ByteSlice("bytes", []byte(s)),
			attribute.Slice("mixed", attribute.StringValue(s), attribute.IntValue(3)),
			attribute.Map("map", attribute.String("k", s), attribute.Bool("t", true)),
		)
		child.AddEvent("event "+s, trace.WithAttributes(attribute.String("e", s)))
		switch i % 3 {
		case 0:
			child.SetStatus(codes.Error, "failed: "+s)
		case 1:
			child.SetStatus(codes.Ok, "")
		}
		child.End()
		parent.End()
	}
	spans := rec.Ended()
	wres := Resource(res)
	got := normalize[wire.TracesRequest](t, newEncoder(wres).traces(spans)[4:])
	want, _ := json.Marshal(Traces(wres, spans))
	sameJSON(t, got, normalize[wire.TracesRequest](t, want))
	if n := len(got.ResourceSpans[0].ScopeSpans); n != len(tricky) { // one scope version each
		t.Fatalf("%d scopes, want %d", n, len(tricky))
	}
}

func TestHandEncodedLogsMatchTheWireTypes(t *testing.T) {
	i, f, b := wire.Int64(-7), 2.5, true
	nan := math.NaN()
	var recs []wire.LogRecord
	for n, s := range tricky {
		recs = append(recs, wire.LogRecord{
			TimeUnixNano: wire.Uint64(n + 1), ObservedTimeUnixNano: wire.Uint64(n * 1000), SeverityNumber: n, SeverityText: s,
			Body: String(s), TraceID: s, SpanID: s, Flags: n % 2,
			Attributes: wire.Attributes{
				{Key: s, Value: String(s)}, {Key: "i", Value: wire.AnyValue{IntValue: &i}},
				{Key: "f", Value: wire.AnyValue{DoubleValue: &f}}, {Key: "nan", Value: Double(nan)},
				{Key: "b", Value: wire.AnyValue{BoolValue: &b}}, {Key: "bytes", Value: wire.AnyValue{BytesValue: []byte(s + "x")}},
				{Key: "empty", Value: wire.AnyValue{}},
				{Key: "arr", Value: wire.AnyValue{ArrayValue: &wire.ArrayValue{Values: []wire.AnyValue{String(s), Double(1)}}}},
				{Key: "kv", Value: wire.AnyValue{KvlistValue: &wire.KeyValueList{Values: []wire.KeyValue{{Key: s, Value: String(s)}}}}},
			},
		})
	}
	res := wire.Resource{Attributes: wire.Attributes{{Key: "service.name", Value: String("svc")}}}
	scope := wire.Scope{Name: "scope", Version: "1"}
	got := normalize[wire.LogsRequest](t, newEncoder(res).logs(scope, recs)[4:])
	want, _ := json.Marshal(Logs(res, scope, recs))
	sameJSON(t, got, normalize[wire.LogsRequest](t, want))
}

func FuzzAppendStringDecodesAsEncodingJSON(f *testing.F) {
	for _, s := range tricky {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var got, want string
		b := appendString(nil, s)
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("%q encoded as %s: %v", s, b, err)
		}
		j, _ := json.Marshal(s)
		_ = json.Unmarshal(j, &want)
		if got != want {
			t.Fatalf("%q: hand-encoded decodes as %q, encoding/json as %q", s, got, want)
		}
	})
}

// A span with its name, kind and attributes encoded beforehand encodes as
// the same span without.
func TestPreEncodedNameAndAttributesEncodeAlike(t *testing.T) {
	for i, s := range tricky {
		attrs := []attribute.KeyValue{attribute.String("k "+s, s), attribute.Int("n", i)}
		plain := SpanData{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, ParentSpanID: trace.SpanID{3}, Name: "name " + s,
			Kind: trace.SpanKind(i % 6), Attributes: attrs, IDAttribute: UUIDAttribute{Key: "id", Value: [16]byte{4}},
			MoreAttributes: []attribute.KeyValue{attribute.Bool("b", true)}}
		pre := plain
		pre.NameJSON = AppendNameJSON(nil, plain.Name, plain.Kind)
		pre.AttributesJSON = AppendAttributesJSON(nil, attrs)
		pre.Name, pre.Kind, pre.Attributes = "", 0, nil
		got := normalize[wire.Span](t, appendSpanData(nil, &pre))
		want := normalize[wire.Span](t, appendSpanData(nil, &plain))
		sameJSON(t, got, want)
		if id, _ := got.Attributes.Get("id"); id != `{"stringValue":"04000000-0000-0000-0000-000000000000"}` && id != "04000000-0000-0000-0000-000000000000" {
			t.Fatalf("id attribute %s", id)
		}
	}
}
