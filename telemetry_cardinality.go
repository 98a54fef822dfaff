package iii

import (
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/iii-go/iii/otelws"
)

// DefaultMaxMetricFunctions is the default of
// TelemetryOptions.MaxMetricFunctions: the distinct function ids that get
// metric series of their own.
const DefaultMaxMetricFunctions = 1000

// DefaultMaxMetricErrorTypes is the default of
// TelemetryOptions.MaxMetricErrorTypes: the distinct error.type values of a
// function's error metrics that get series of their own.
const DefaultMaxMetricErrorTypes = 32

// errTypeOther is the error.type of the error series shared by the error
// types beyond TelemetryOptions.MaxMetricErrorTypes (the OpenTelemetry
// semantic conventions' fallback value of error.type); the series also
// has otel.metric.overflow=true, which tells it from an error whose code
// is "_OTHER".
const errTypeOther = "_OTHER"

// errorOverflowAttrs are the attributes of the error series of fn (its
// iii.function.id, or otel.metric.overflow=true) shared by the error types
// beyond the limit.
func errorOverflowAttrs(fn attribute.KeyValue) []attribute.KeyValue {
	return []attribute.KeyValue{fn, attrErrorType.String(errTypeOther), attrOverflow}
}

// attrOverflow replaces iii.function.id on the metric series shared by the
// function ids beyond TelemetryOptions.MaxMetricFunctions: the attribute
// the OpenTelemetry SDKs put on the series beyond their own cardinality
// limits, so it can collide with no function's id.
var attrOverflow = attribute.Bool("otel.metric.overflow", true)

// initFunctionLimit sets the bounds on per-function metric series: the
// function ids, and the error types of each.
func (t *telemetry) initFunctionLimit(o *TelemetryOptions) {
	t.fnLimit = int64(o.MaxMetricFunctions)
	if t.fnLimit <= 0 {
		t.fnLimit = DefaultMaxMetricFunctions
	}
	t.errLimit = o.MaxMetricErrorTypes
	if t.errLimit <= 0 {
		t.errLimit = DefaultMaxMetricErrorTypes
	}
	t.other = &fnTelemetry{t: t}
	t.other.initMetrics(attrOverflow)
}

// errorAttrs returns the measurement option of an error of type errType on
// the error instrument of m (the SDK's, when the worker does not aggregate
// its metrics itself), counting the type against the limit.
func (f *fnTelemetry) errorAttrs(m *opMetrics, errType string) metric.MeasurementOption {
	if m.countError(errType) {
		return metric.WithAttributes(f.fn, attrErrorType.String(errType))
	}
	return metric.WithAttributes(errorOverflowAttrs(f.fn)...)
}

// initMetrics sets the metric part of f: its series are those of attr.
func (f *fnTelemetry) initMetrics(attr attribute.KeyValue) {
	f.fn = attr
	f.okSet, f.failedSet = attribute.NewSet(attr, attrOutcome.String("ok")), attribute.NewSet(attr, attrOutcome.String("error"))
	f.ok, f.failed = metric.WithAttributeSet(f.okSet), metric.WithAttributeSet(f.failedSet)
	ops := new([2]opMetrics)
	ops[0].init(f.t.errLimit)
	ops[1].init(f.t.errLimit)
	f.inv, f.call = &ops[0], &ops[1]
}

// newFnTelemetry builds the per-function data of id, kept for its later
// invocations and calls: names and attributes encoded once, metric series
// of its own.
func (t *telemetry) newFnTelemetry(id string) *fnTelemetry {
	f := t.spanFn(id)
	f.execJSON = otelws.AppendNameJSON(nil, f.execName, trace.SpanKindServer)
	f.callJSON = otelws.AppendNameJSON(nil, f.callName, trace.SpanKindClient)
	f.attrsJSON = otelws.AppendAttributesJSON(nil, f.attrs)
	f.initMetrics(f.attrs[0])
	return f
}

// spanFn returns the span part of the per-function data of id.
func (t *telemetry) spanFn(id string) *fnTelemetry {
	fa := attrFunctionID.String(id)
	return &fnTelemetry{t: t, execName: "execute " + id, callName: "trigger " + id, attrs: []attribute.KeyValue{fa}, fnOpt: trace.WithAttributes(fa)}
}

// overflowFn returns the per-call data of a function id beyond the limit:
// its spans carry the id, its metrics are the shared overflow series. It
// is not kept, so the worker's memory does not grow with the ids either
// (nor is anything encoded ahead for it).
func (t *telemetry) overflowFn(id string) *fnTelemetry {
	f := t.spanFn(id)
	o := t.other
	f.fn, f.okSet, f.failedSet, f.ok, f.failed, f.inv, f.call = o.fn, o.okSet, o.failedSet, o.ok, o.failed, o.inv, o.call
	return f
}
