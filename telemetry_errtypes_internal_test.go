package iii

import (
	"context"
	"fmt"
	"testing"

	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/metric/metricdata/metricdatatest"

	"github.com/iii-go/iii/connection/wire"
)

// Distinct error codes beyond MaxMetricErrorTypes share one error series
// per function, marked as an overflow, on both the worker's own
// aggregation and the SDK's instruments (an application's MeterProvider).
func TestErrorTypesOfMetricsAreBounded(t *testing.T) {
	const limit, codes = 4, 50
	sdkReader := sdkmetric.NewManualReader()
	sdkMP := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkReader))
	sdkTel := &telemetry{m: newInstruments(sdkMP.Meter(scopeName, metric.WithInstrumentationVersion(Version)))}
	ownTel := &telemetry{ownMetrics: true}
	for _, tel := range []*telemetry{sdkTel, ownTel} {
		tel.initFunctionLimit(&TelemetryOptions{MaxMetricErrorTypes: limit})
	}
	ownReader := sdkmetric.NewManualReader(sdkmetric.WithProducer(&metricsProducer{t: ownTel}))
	ownMP := sdkmetric.NewMeterProvider(sdkmetric.WithReader(ownReader))
	ctx := context.Background()
	defer sdkMP.Shutdown(ctx)
	defer ownMP.Shutdown(ctx)
	for _, tel := range []*telemetry{sdkTel, ownTel} {
		f := tel.fn("fn::a")
		for i := range codes {
			code := fmt.Sprintf("E_%d", i)
			tel.invocationMetrics(f, 0.001, &wire.ErrorBody{Code: code})
			tel.callMetrics(f, 0.001, &RemoteError{FunctionID: "fn::a", ErrorBody: ErrorBody{Code: code}})
		}
		tel.invocationMetrics(f, 0.001, &wire.ErrorBody{Code: "E_0"}) // a known type keeps its series
	}
	want, got := collectMetrics(ctx, t, sdkReader), collectMetrics(ctx, t, ownReader)
	metricdatatest.AssertEqual(t, want, got, metricdatatest.IgnoreTimestamp())
	for _, name := range []string{defInvocationErrors.name, defCallErrors.name} {
		var points []metricdata.DataPoint[int64]
		for _, m := range got.Metrics {
			if m.Name == name {
				points = m.Data.(metricdata.Sum[int64]).DataPoints
			}
		}
		if len(points) != limit+1 {
			t.Fatalf("%s: %d series for %d error codes, want %d", name, len(points), codes, limit+1)
		}
		var other, e0 int64
		for _, p := range points {
			typ, _ := p.Attributes.Value(attrErrorType)
			if v, ok := p.Attributes.Value(attrOverflow.Key); ok && v.AsBool() {
				if typ.AsString() != errTypeOther || !p.Attributes.HasValue(attrFunctionID) {
					t.Fatalf("%s: overflow series %v", name, p.Attributes.ToSlice())
				}
				other = p.Value
			}
			if typ.AsString() == "E_0" {
				e0 = p.Value
			}
		}
		if other != codes-limit {
			t.Fatalf("%s: the overflow series counts %d, want %d", name, other, codes-limit)
		}
		if wantE0 := map[string]int64{defInvocationErrors.name: 2, defCallErrors.name: 1}[name]; e0 != wantE0 {
			t.Fatalf("%s: E_0 counts %d, want %d", name, e0, wantE0)
		}
	}
}
