package otelws

import (
	"math"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/iii-go/iii/connection/wire"
)

// Resource converts an SDK resource to OTLP/JSON.
func Resource(r *resource.Resource) wire.Resource {
	if r == nil {
		return wire.Resource{}
	}
	return wire.Resource{Attributes: Attributes(r.Attributes())}
}

// Attributes converts attributes to OTLP/JSON.
func Attributes(kvs []attribute.KeyValue) wire.Attributes {
	if len(kvs) == 0 {
		return nil
	}
	out := make(wire.Attributes, len(kvs))
	for i, kv := range kvs {
		out[i] = wire.KeyValue{Key: string(kv.Key), Value: Value(kv.Value)}
	}
	return out
}

// Value converts an attribute value to an OTLP AnyValue.
func Value(v attribute.Value) wire.AnyValue {
	switch v.Type() {
	case attribute.BOOL:
		b := v.AsBool()
		return wire.AnyValue{BoolValue: &b}
	case attribute.INT64:
		i := wire.Int64(v.AsInt64())
		return wire.AnyValue{IntValue: &i}
	case attribute.FLOAT64:
		return Double(v.AsFloat64())
	case attribute.STRING:
		return String(v.AsString())
	case attribute.BYTESLICE:
		return wire.AnyValue{BytesValue: v.AsByteSlice()}
	case attribute.BOOLSLICE:
		return array(v.AsBoolSlice(), func(b bool) wire.AnyValue { return wire.AnyValue{BoolValue: &b} })
	case attribute.INT64SLICE:
		return array(v.AsInt64Slice(), func(n int64) wire.AnyValue { i := wire.Int64(n); return wire.AnyValue{IntValue: &i} })
	case attribute.FLOAT64SLICE:
		return array(v.AsFloat64Slice(), Double)
	case attribute.STRINGSLICE:
		return array(v.AsStringSlice(), String)
	case attribute.SLICE:
		return array(v.AsSlice(), Value)
	case attribute.MAP:
		return wire.AnyValue{KvlistValue: &wire.KeyValueList{Values: Attributes(v.AsMap())}}
	}
	return wire.AnyValue{}
}

func array[T any](s []T, conv func(T) wire.AnyValue) wire.AnyValue {
	vals := make([]wire.AnyValue, len(s))
	for i, x := range s {
		vals[i] = conv(x)
	}
	return wire.AnyValue{ArrayValue: &wire.ArrayValue{Values: vals}}
}

// String returns a string AnyValue.
func String(s string) wire.AnyValue { return wire.AnyValue{StringValue: &s} }

// Double returns a double AnyValue. NaN and infinities, which JSON cannot
// carry as numbers, become strings.
func Double(f float64) wire.AnyValue {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		s := "NaN"
		if math.IsInf(f, 1) {
			s = "Infinity"
		} else if math.IsInf(f, -1) {
			s = "-Infinity"
		}
		return wire.AnyValue{StringValue: &s}
	}
	return wire.AnyValue{DoubleValue: &f}
}

func nanos(t time.Time) wire.Uint64 {
	if t.IsZero() {
		return 0
	}
	return wire.Uint64(t.UnixNano())
}

// Span converts an ended span to OTLP/JSON.
func Span(s sdktrace.ReadOnlySpan) wire.Span {
	sc := s.SpanContext()
	out := wire.Span{
		TraceID:           sc.TraceID().String(),
		SpanID:            sc.SpanID().String(),
		TraceState:        sc.TraceState().String(),
		Name:              s.Name(),
		Kind:              int(s.SpanKind()), // the OTLP enum has the same values
		StartTimeUnixNano: nanos(s.StartTime()),
		EndTimeUnixNano:   nanos(s.EndTime()),
		Attributes:        Attributes(s.Attributes()),
	}
	if p := s.Parent(); p.IsValid() {
		out.ParentSpanID = p.SpanID().String()
	}
	for _, e := range s.Events() {
		out.Events = append(out.Events, wire.SpanEvent{TimeUnixNano: nanos(e.Time), Name: e.Name, Attributes: Attributes(e.Attributes)})
	}
	for _, l := range s.Links() {
		out.Links = append(out.Links, wire.SpanLink{TraceID: l.SpanContext.TraceID().String(),
			SpanID: l.SpanContext.SpanID().String(), Attributes: Attributes(l.Attributes)})
	}
	switch st := s.Status(); st.Code {
	case codes.Error:
		out.Status = wire.SpanStatus{Code: wire.StatusError, Message: st.Description}
	case codes.Ok:
		out.Status = wire.SpanStatus{Code: wire.StatusOK}
	}
	return out
}

// Logs builds the OTLP/JSON request of a batch of log records.
func Logs(res wire.Resource, scope wire.Scope, recs []wire.LogRecord) wire.LogsRequest {
	return wire.LogsRequest{ResourceLogs: []wire.ResourceLogs{{Resource: res,
		ScopeLogs: []wire.ScopeLogs{{Scope: scope, LogRecords: recs}}}}}
}

// Metrics converts a metric collection to OTLP/JSON. Exponential
// histograms and summaries, which the SDK only produces when configured to,
// are left out.
func Metrics(rm *metricdata.ResourceMetrics) wire.MetricsRequest {
	out := wire.ResourceMetrics{Resource: Resource(rm.Resource)}
	for _, sm := range rm.ScopeMetrics {
		ws := wire.ScopeMetrics{Scope: wire.Scope{Name: sm.Scope.Name, Version: sm.Scope.Version}}
		for _, m := range sm.Metrics {
			wm := wire.Metric{Name: m.Name, Description: m.Description, Unit: m.Unit}
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				wm.Sum = &wire.Sum{DataPoints: numberPoints(d.DataPoints), AggregationTemporality: temporality(d.Temporality), IsMonotonic: d.IsMonotonic}
			case metricdata.Sum[float64]:
				wm.Sum = &wire.Sum{DataPoints: numberPoints(d.DataPoints), AggregationTemporality: temporality(d.Temporality), IsMonotonic: d.IsMonotonic}
			case metricdata.Gauge[int64]:
				wm.Gauge = &wire.Gauge{DataPoints: numberPoints(d.DataPoints)}
			case metricdata.Gauge[float64]:
				wm.Gauge = &wire.Gauge{DataPoints: numberPoints(d.DataPoints)}
			case metricdata.Histogram[int64]:
				wm.Histogram = &wire.Histogram{DataPoints: histogramPoints(d.DataPoints), AggregationTemporality: temporality(d.Temporality)}
			case metricdata.Histogram[float64]:
				wm.Histogram = &wire.Histogram{DataPoints: histogramPoints(d.DataPoints), AggregationTemporality: temporality(d.Temporality)}
			default:
				continue
			}
			ws.Metrics = append(ws.Metrics, wm)
		}
		if len(ws.Metrics) == 0 {
			continue
		}
		// A producer's metrics of a scope the SDK reports too join them.
		i := 0
		for i < len(out.ScopeMetrics) && out.ScopeMetrics[i].Scope != ws.Scope {
			i++
		}
		if i < len(out.ScopeMetrics) {
			out.ScopeMetrics[i].Metrics = append(out.ScopeMetrics[i].Metrics, ws.Metrics...)
		} else {
			out.ScopeMetrics = append(out.ScopeMetrics, ws)
		}
	}
	return wire.MetricsRequest{ResourceMetrics: []wire.ResourceMetrics{out}}
}

func temporality(t metricdata.Temporality) int {
	if t == metricdata.DeltaTemporality {
		return wire.TemporalityDelta
	}
	return wire.TemporalityCumulative
}

func numberPoints[N int64 | float64](dps []metricdata.DataPoint[N]) []wire.NumberDataPoint {
	out := make([]wire.NumberDataPoint, len(dps))
	for i, dp := range dps {
		p := wire.NumberDataPoint{Attributes: Attributes(dp.Attributes.ToSlice()),
			StartTimeUnixNano: nanos(dp.StartTime), TimeUnixNano: nanos(dp.Time)}
		switch v := any(dp.Value).(type) {
		case int64:
			iv := wire.Int64(v)
			p.AsInt = &iv
		case float64:
			p.AsDouble = &v
		}
		out[i] = p
	}
	return out
}

func histogramPoints[N int64 | float64](dps []metricdata.HistogramDataPoint[N]) []wire.HistogramDataPoint {
	out := make([]wire.HistogramDataPoint, len(dps))
	for i, dp := range dps {
		sum := float64(dp.Sum)
		p := wire.HistogramDataPoint{Attributes: Attributes(dp.Attributes.ToSlice()),
			StartTimeUnixNano: nanos(dp.StartTime), TimeUnixNano: nanos(dp.Time),
			Count: wire.Uint64(dp.Count), Sum: &sum, ExplicitBounds: dp.Bounds}
		p.BucketCounts = make([]wire.Uint64, len(dp.BucketCounts))
		for j, c := range dp.BucketCounts {
			p.BucketCounts[j] = wire.Uint64(c)
		}
		if v, ok := dp.Min.Value(); ok {
			f := float64(v)
			p.Min = &f
		}
		if v, ok := dp.Max.Value(); ok {
			f := float64(v)
			p.Max = &f
		}
		out[i] = p
	}
	return out
}
