package iii_test

import (
	"context"
	"fmt"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/connection/wire"
	"github.com/iii-go/iii/test/iiitest"
)

// An application with an OpenTelemetry pipeline of its own hands the
// worker its providers: the worker's spans and metrics go there, and
// nothing of those signals is sent to the engine. (A LoggerProvider of
// go.opentelemetry.io/otel/log does the same for Logger records.)
func ExampleTelemetryOptions_applicationProviders() {
	eng, err := iiitest.Start("127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer eng.Close()

	// The application's providers; here they keep everything in memory.
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	defer tp.Shutdown(context.Background())
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())

	w := iii.RegisterWorker(eng.URL, iii.InitOptions{Telemetry: &iii.TelemetryOptions{
		Enabled:        new(true),
		TracerProvider: tp,
		MeterProvider:  mp,
		DisableLogs:    true, // or LoggerProvider: lp
	}})
	iii.RegisterFunction(w, "stock::check", func(ctx context.Context, sku string) (int, error) {
		_, span := iii.Tracer(ctx).Start(ctx, "look up "+sku) // a child of the invocation's span
		defer span.End()
		return 3, nil
	})
	ctx := context.Background()
	if err := eng.WaitFunction(ctx, "stock::check"); err != nil {
		panic(err)
	}
	if _, _, err := eng.Invoke(ctx, "stock::check", []byte(`"A-1"`)); err != nil {
		panic(err)
	}
	w.Shutdown()

	for _, s := range spans.Ended() {
		fmt.Println("span:", s.Name())
	}
	var rm metricdata.ResourceMetrics
	_ = reader.Collect(ctx, &rm)
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == "iii.invocations" {
				fmt.Println("iii.invocations:", m.Data.(metricdata.Sum[int64]).DataPoints[0].Value)
			}
		}
	}
	fmt.Println("frames sent to the engine:", eng.TelemetryFrames(wire.TelemetryTraces)+eng.TelemetryFrames(wire.TelemetryMetrics))
	// Output:
	// span: look up A-1
	// span: execute stock::check
	// iii.invocations: 1
	// frames sent to the engine: 0
}
