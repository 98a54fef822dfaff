package iii

import (
	"context"

	"github.com/iii-go/iii/connection"
	"github.com/iii-go/iii/connection/wire"
)

// TelemetryOptions configures the worker's OpenTelemetry (traces, logs and
// metrics sent to the engine). nil means the defaults.
type TelemetryOptions struct {
	// Disabled turns telemetry off; so does OTEL_ENABLED=false.
	Disabled bool
}

// telemetry is the worker's OpenTelemetry pipeline; nil when it is off, so
// that nothing extra runs on the hot path.
type telemetry struct{}

// newTelemetry returns nil when telemetry is off.
func newTelemetry(w *III, o *TelemetryOptions) *telemetry { return nil }

// startInvocation starts the span of an inbound invocation, continuing the
// caller's trace; end finishes it with the reply about to be sent (and may
// set the reply's trace fields).
func (t *telemetry) startInvocation(ctx context.Context, m *wire.InvokeFunction) (_ context.Context, end func(*wire.InvocationResult)) {
	return ctx, func(*wire.InvocationResult) {}
}

// startCall starts the span of an outbound call and injects its trace
// context into m; end finishes it with the call's outcome.
func (t *telemetry) startCall(ctx context.Context, m *wire.InvokeFunction) (_ context.Context, end func(error)) {
	return ctx, func(error) {}
}

// connectionState records a connection state change.
func (t *telemetry) connectionState(s connection.State) {}

// close flushes what is buffered and stops the pipeline.
func (t *telemetry) close() {}
