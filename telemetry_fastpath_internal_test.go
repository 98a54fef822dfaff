package iii

import (
	"context"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// The worker's fast paths (its own spans without the SDK, its own metric
// aggregation through a Producer) are used only with its own providers:
// with the application's TracerProvider or MeterProvider, that signal goes
// through the SDK's API to the application's provider.
func TestFastPathsOnlyWithTheWorkersOwnProviders(t *testing.T) {
	t.Setenv("OTEL_TRACES_SAMPLER", "")
	tp := sdktrace.NewTracerProvider()
	mp := sdkmetric.NewMeterProvider()
	defer tp.Shutdown(context.Background())
	defer mp.Shutdown(context.Background())
	for _, c := range []struct {
		name           string
		o              TelemetryOptions
		spans, metrics bool
	}{
		{"own", TelemetryOptions{}, true, true},
		{"application's TracerProvider", TelemetryOptions{TracerProvider: tp}, false, true},
		{"application's MeterProvider", TelemetryOptions{MeterProvider: mp}, true, false},
		{"both", TelemetryOptions{TracerProvider: tp, MeterProvider: mp}, false, false},
		{"a sampler", TelemetryOptions{Sampler: sdktrace.AlwaysSample()}, false, true},
		{"metrics off", TelemetryOptions{DisableMetrics: true}, true, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.o.Enabled = new(true)
			w := RegisterWorker("ws://127.0.0.1:1", InitOptions{Reconnect: &ReconnectConfig{MaxRetries: 1}, Telemetry: &c.o})
			defer w.Shutdown()
			if w.tel == nil {
				t.Fatal("telemetry is off")
			}
			if w.tel.own != c.spans || w.tel.ownMetrics != c.metrics {
				t.Fatalf("own spans %v, own metrics %v; want %v, %v", w.tel.own, w.tel.ownMetrics, c.spans, c.metrics)
			}
		})
	}
}
