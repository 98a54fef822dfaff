package iii

import (
	"context"
	"errors"
	"testing"

	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/metric/metricdata/metricdatatest"

	"github.com/iii-go/iii/connection/wire"
)

// The worker's own aggregation of its per-call and per-invocation metrics
// exports what the SDK's instruments export for the same measurements,
// the overflow series of the function ids beyond MaxMetricFunctions too.
func TestOwnMetricsMatchTheSDKs(t *testing.T) {
	sdkReader := sdkmetric.NewManualReader()
	sdkMP := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkReader))
	sdkTel := &telemetry{m: newInstruments(sdkMP.Meter(scopeName, metric.WithInstrumentationVersion(Version)))}
	ownTel := &telemetry{ownMetrics: true}
	for _, tel := range []*telemetry{sdkTel, ownTel} {
		tel.initFunctionLimit(&TelemetryOptions{MaxMetricFunctions: 2})
	}
	ownReader := sdkmetric.NewManualReader(sdkmetric.WithProducer(&metricsProducer{t: ownTel}))
	ownMP := sdkmetric.NewMeterProvider(sdkmetric.WithReader(ownReader))
	ctx := context.Background()
	defer sdkMP.Shutdown(ctx)
	defer ownMP.Shutdown(ctx)

	for _, tel := range []*telemetry{sdkTel, ownTel} {
		a, b := tel.fn("fn::a"), tel.fn("fn::b")
		for i, d := range []float64{0, 0.0001, 0.00011, 0.003, 0.7, 29, 30, 31, 1e6} {
			tel.invocationMetrics(a, d, nil)
			if i%3 == 0 {
				tel.invocationMetrics(b, d/2, &wire.ErrorBody{Code: "E_ONE"})
				tel.callMetrics(a, d, ErrTimeout)
			}
			if i%4 == 1 {
				tel.invocationMetrics(a, d, &wire.ErrorBody{Code: "E_TWO"})
				tel.callMetrics(b, d, &RemoteError{FunctionID: "fn::b", ErrorBody: ErrorBody{Code: "E_REMOTE", Message: "m"}})
			}
			tel.callMetrics(b, d*3, nil)
			// Beyond the limit: both ids share the overflow series.
			tel.invocationMetrics(tel.fn("fn::c"), d, nil)
			tel.callMetrics(tel.fn("fn::d"), d, ErrTimeout)
		}
	}
	want, got := collectMetrics(ctx, t, sdkReader), collectMetrics(ctx, t, ownReader)
	if len(want.Metrics) != 6 {
		t.Fatalf("the SDK exported %d metrics, want 6", len(want.Metrics))
	}
	metricdatatest.AssertEqual(t, want, got, metricdatatest.IgnoreTimestamp())
	overflow := 0
	for _, m := range got.Metrics {
		switch d := m.Data.(type) {
		case metricdata.Sum[int64]:
			for _, p := range d.DataPoints {
				if v, ok := p.Attributes.Value(attrOverflow.Key); ok && v.AsBool() {
					if p.Attributes.HasValue(attrFunctionID) {
						t.Fatalf("%s: an overflow series with a function id: %v", m.Name, p.Attributes)
					}
					overflow++
				}
			}
		}
	}
	if overflow != 3 { // iii.invocations ok, iii.calls error, iii.call.errors timeout
		t.Fatalf("%d overflow series of sums, want 3", overflow)
	}
}

func TestCallErrorTypesOfOwnMetrics(t *testing.T) {
	tel := &telemetry{ownMetrics: true}
	tel.initFunctionLimit(&TelemetryOptions{})
	f := tel.fn("f")
	tel.callMetrics(f, 1, errors.Join(ErrTimeout))
	if n := f.call.errs["timeout"]; n != 1 {
		t.Fatalf("errors by type: %v", f.call.errs)
	}
}

// collectMetrics collects r's metrics, all scopes in one.
func collectMetrics(ctx context.Context, t *testing.T, r sdkmetric.Reader) metricdata.ScopeMetrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	var all metricdata.ScopeMetrics
	for _, sm := range rm.ScopeMetrics {
		all.Scope = sm.Scope
		all.Metrics = append(all.Metrics, sm.Metrics...)
	}
	return all
}
