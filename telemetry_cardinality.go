package iii

import (
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// DefaultMaxMetricFunctions is the default of
// TelemetryOptions.MaxMetricFunctions: the distinct function ids that get
// metric series of their own.
const DefaultMaxMetricFunctions = 1000

// attrOverflow replaces iii.function.id on the metric series shared by the
// function ids beyond TelemetryOptions.MaxMetricFunctions: the attribute
// the OpenTelemetry SDKs put on the series beyond their own cardinality
// limits, so it can collide with no function's id.
var attrOverflow = attribute.Bool("otel.metric.overflow", true)

// initFunctionLimit sets the bound on per-function metric series.
func (t *telemetry) initFunctionLimit(o *TelemetryOptions) {
	t.fnLimit = int64(o.MaxMetricFunctions)
	if t.fnLimit <= 0 {
		t.fnLimit = DefaultMaxMetricFunctions
	}
	t.other = &fnTelemetry{fn: attrOverflow,
		ok:     metric.WithAttributeSet(attribute.NewSet(attrOverflow, attrOutcome.String("ok"))),
		failed: metric.WithAttributeSet(attribute.NewSet(attrOverflow, attrOutcome.String("error")))}
}

// newFnTelemetry builds the per-function data of id.
func newFnTelemetry(id string) *fnTelemetry {
	fa := attrFunctionID.String(id)
	return &fnTelemetry{execName: "execute " + id, callName: "trigger " + id, fn: fa, fnOpt: trace.WithAttributes(fa),
		ok:     metric.WithAttributeSet(attribute.NewSet(fa, attrOutcome.String("ok"))),
		failed: metric.WithAttributeSet(attribute.NewSet(fa, attrOutcome.String("error")))}
}

// overflowFn returns the per-call data of a function id beyond the limit:
// its spans carry the id, its metrics are the shared overflow series. It is not kept, so the worker's memory does not grow
// with the ids either.
func (t *telemetry) overflowFn(id string) *fnTelemetry {
	fa := attrFunctionID.String(id)
	return &fnTelemetry{execName: "execute " + id, callName: "trigger " + id,
		fn: t.other.fn, fnOpt: trace.WithAttributes(fa), ok: t.other.ok, failed: t.other.failed}
}
