package iii_test

import (
	"context"
	"testing"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/test/iiitest"
)

// The bound on per-function metric series holds for the worker's own
// metrics too (aggregated without the SDK's instruments): the ids beyond
// MaxMetricFunctions reach the engine in one overflow series per
// instrument and outcome, marked otel.metric.overflow=true, beside the
// worker's gauges.
func TestOwnMetricSeriesPerFunctionAreBounded(t *testing.T) {
	eng := iiitest.NewEngine(t)
	w := newWorker(t, eng, telemetryOptions(iii.TelemetryOptions{MaxMetricFunctions: 1}))
	mustRegister(t, eng, w, "card::a", func(context.Context, any) (any, error) { return nil, nil })
	for _, id := range []string{"card::b", "card::c"} {
		mustRegister(t, eng, w, id, func(context.Context, any) (any, error) {
			return nil, iii.NewInvocationError("E_CARD", "no")
		})
	}
	for _, id := range []string{"card::a", "card::b", "card::c", "card::c"} {
		if _, _, err := eng.Invoke(testCtx(t), id, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.FlushTelemetry(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	waitMetric(t, eng, "iii.invocations", map[string]string{"iii.function.id": "card::a", "iii.outcome": "ok"}, 1)
	waitMetric(t, eng, "iii.invocations", map[string]string{"otel.metric.overflow": "true", "iii.outcome": "error"}, 3)
	waitMetric(t, eng, "iii.invocation.errors", map[string]string{"otel.metric.overflow": "true", "error.type": "E_CARD"}, 3)
	waitMetric(t, eng, "iii.invocation.duration", map[string]string{"otel.metric.overflow": "true", "iii.outcome": "error"}, 3)
	waitMetric(t, eng, "iii.invocations.active", nil, 0)
	for _, id := range []string{"card::b", "card::c"} {
		if _, ok := metricPoint(eng.Metrics(), "iii.invocations", map[string]string{"iii.function.id": id}); ok {
			t.Fatalf("a series of its own for %s beyond the limit", id)
		}
	}
}
