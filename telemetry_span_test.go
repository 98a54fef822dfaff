package iii

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/iii-go/iii/connection/wire"
)

var traceparents = []string{
	"",
	"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
	"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-02",
	"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03",
	"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-04",
	"00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",
	"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
	"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
	"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
	"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
	"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
	"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	"00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
	"garbage",
}

func propagatorParse(s string) trace.SpanContext {
	return trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), &traceCarrier{traceparent: s}))
}

func TestParseTraceparentAgreesWithThePropagator(t *testing.T) {
	for _, s := range traceparents {
		if got, want := parseTraceparent(s), propagatorParse(s); !got.Equal(want) || got.IsRemote() != want.IsRemote() {
			t.Errorf("%q: %v, the propagator %v", s, got, want)
		}
	}
}

func FuzzParseTraceparent(f *testing.F) {
	for _, s := range traceparents {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := parseTraceparent(s), propagatorParse(s); !got.Equal(want) || got.IsRemote() != want.IsRemote() {
			t.Fatalf("%q: %v, the propagator %v", s, got, want)
		}
	})
}

func TestFormatTraceparentAgreesWithThePropagator(t *testing.T) {
	for _, flags := range []trace.TraceFlags{0, 1, 2, 3, 0xff} {
		tid, sid := newTraceID(), newSpanID()
		sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: flags})
		var c traceCarrier
		propagation.TraceContext{}.Inject(trace.ContextWithSpanContext(context.Background(), sc), &c)
		if got := formatTraceparent(tid, sid, flags); got != c.traceparent {
			t.Errorf("flags %x: %q, the propagator %q", flags, got, c.traceparent)
		}
	}
}

// Spans the handler starts with Tracer(ctx) share the scope of the
// worker's own, so that they are batched together.
func TestOwnScopeIsTheTracersScope(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	_, s := tp.Tracer(scopeName, trace.WithInstrumentationVersion(Version)).Start(context.Background(), "x")
	s.End()
	if got := rec.Ended()[0].InstrumentationScope(); got != ownScope {
		t.Fatalf("the tracer's scope %+v, ownScope %+v", got, ownScope)
	}
}

// The handler's context carries its invocation's span without a
// context.WithValue: trace.SpanFromContext must find it there.
func TestTheHandlersContextCarriesItsSpan(t *testing.T) {
	w := RegisterWorker("ws://127.0.0.1:1", InitOptions{Reconnect: &ReconnectConfig{MaxRetries: 1},
		Telemetry: &TelemetryOptions{Enabled: new(true)}})
	defer w.Shutdown()
	if spanKey == nil || baggageKey == nil || !w.tel.own {
		t.Fatalf("spanKey %v, baggageKey %v, own spans %v", spanKey, baggageKey, w.tel.own)
	}
	m := &wire.InvokeFunction{FunctionID: "f", InvocationID: wire.NewUUID(), HasInvocationID: true, Baggage: "tenant=t1,iii.function.id=f"}
	hctx, end := w.tel.startInvocation(context.Background(), m)
	defer end(&wire.InvocationResult{})
	span, ok := trace.SpanFromContext(hctx).(*invocationSpan)
	if !ok || !span.SpanContext().IsValid() || !span.IsRecording() {
		t.Fatalf("trace.SpanFromContext(handler context) = %#v", trace.SpanFromContext(hctx))
	}
	if got := baggage.FromContext(hctx).Member("tenant").Value(); got != "t1" {
		t.Fatalf("baggage member tenant = %q", got)
	}
}

func TestASamplerOfTheApplicationKeepsSpansInTheSDK(t *testing.T) {
	if ownSpans(&TelemetryOptions{Sampler: sdktrace.AlwaysSample()}) {
		t.Fatal("own spans with a sampler")
	}
	t.Setenv("OTEL_TRACES_SAMPLER", "traceidratio")
	if ownSpans(&TelemetryOptions{}) {
		t.Fatal("own spans with OTEL_TRACES_SAMPLER=traceidratio")
	}
	t.Setenv("OTEL_TRACES_SAMPLER", " ParentBased_Always_On ")
	if !ownSpans(&TelemetryOptions{}) {
		t.Fatal("no own spans with the default sampler named")
	}
}
