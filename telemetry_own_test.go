package iii_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/connection/wire"
	"github.com/iii-go/iii/test/iiitest"
)

// spanShape is a span without its ids and times: its parent is named, the
// invocation id and stack traces are only checked for presence.
type spanShape struct {
	Name, Parent string
	Kind         int
	Attrs        []string
	Events       []string
	Status       wire.SpanStatus
}

// shapes returns the shapes of spans, sorted.
func shapes(spans []wire.Span) []spanShape {
	byID := map[string]string{}
	for _, s := range spans {
		byID[s.SpanID] = s.Name
	}
	kvs := func(a wire.Attributes) []string {
		var out []string
		for _, kv := range a {
			v, _ := a.Get(kv.Key)
			switch kv.Key {
			case "iii.invocation.id":
				if _, err := wire.ParseUUID(*kv.Value.StringValue); err == nil {
					v = "<uuid>"
				}
			case "exception.stacktrace":
				v = fmt.Sprint(v != "")
			}
			out = append(out, kv.Key+"="+v)
		}
		return out
	}
	var out []spanShape
	for _, s := range spans {
		sh := spanShape{Name: s.Name, Kind: s.Kind, Attrs: kvs(s.Attributes), Status: s.Status}
		switch p, ok := byID[s.ParentSpanID]; {
		case s.ParentSpanID == "":
		case ok:
			sh.Parent = p
		default:
			sh.Parent = "<remote>"
		}
		for _, e := range s.Events {
			sh.Events = append(sh.Events, e.Name+" "+strings.Join(kvs(e.Attributes), " "))
		}
		out = append(out, sh)
	}
	slices.SortFunc(out, func(a, b spanShape) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// traceScenario runs calls across two workers with the given options and
// returns the spans exported: calls with baggage, failing and panicking
// handlers, a handler adding to its span and starting a child, a call to a
// missing function, and a call under a parent that is not sampled.
func traceScenario(t *testing.T, opts iii.InitOptions) []wire.Span {
	eng := iiitest.NewEngine(t)
	a := newWorker(t, eng, opts)
	b := newWorker(t, eng, opts)
	mustRegister(t, eng, b, "own::back", func(ctx context.Context, in string) (string, error) {
		if got := baggage.FromContext(ctx).Member("tenant").Value(); got != "t1" {
			return "", fmt.Errorf("baggage member tenant = %q", got)
		}
		span := trace.SpanFromContext(ctx)
		span.SetAttributes(attribute.String("user.key", "v1"), attribute.Int("user.n", 1))
		span.SetAttributes(attribute.String("user.key", "v2"))
		span.AddEvent("step", trace.WithAttributes(attribute.Bool("ok", true)))
		_, child := iii.Tracer(ctx).Start(ctx, "child step")
		child.End()
		return "back:" + in, nil
	})
	mustRegister(t, eng, b, "own::fail", func(context.Context, any) (any, error) {
		return nil, iii.NewInvocationError("E_OUT_OF_STOCK", "no more A-1")
	})
	mustRegister(t, eng, b, "own::panic", func(context.Context, any) (any, error) {
		panic("kaboom")
	})
	mustRegister(t, eng, b, "own::status", func(ctx context.Context, _ any) (any, error) {
		span := trace.SpanFromContext(ctx)
		span.RecordError(errors.New("recovered"))
		span.SetStatus(codes.Error, "bad")
		span.SetStatus(codes.Ok, "ignored")
		span.SetStatus(codes.Error, "too late")
		span.SetName("renamed")
		span.SetAttributes(attribute.String("iii.function.id", "overridden"))
		return nil, nil
	})
	mustRegister(t, eng, a, "own::front", func(ctx context.Context, in string) (string, error) {
		m, _ := baggage.NewMember("tenant", "t1")
		bg, _ := baggage.New(m)
		out, err := iii.Call[string](baggage.ContextWithBaggage(ctx, bg), a, "own::back", in)
		if err != nil {
			return "", err
		}
		for _, fn := range []string{"own::fail", "own::panic", "own::status", "own::missing"} {
			_, _ = a.Trigger(ctx, iii.TriggerRequest{FunctionID: fn, Timeout: 5 * time.Second})
		}
		return out, nil
	})
	res, errBody, err := eng.Invoke(testCtx(t), "own::front", []byte(`"x"`))
	if err != nil || errBody != nil || string(res) != `"back:x"` {
		t.Fatalf("Invoke: %s %+v %v", res, errBody, err)
	}
	// Not sampled: neither the call nor the handler it reaches is exported.
	unsampled := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, Remote: true})
	if _, err := a.Trigger(trace.ContextWithSpanContext(testCtx(t), unsampled), iii.TriggerRequest{FunctionID: "own::fail"}); iii.ErrorCode(err) != "E_OUT_OF_STOCK" {
		t.Fatalf("unsampled call: %v", err)
	}
	for _, w := range []*iii.III{a, b} {
		if err := w.FlushTelemetry(testCtx(t)); err != nil {
			t.Fatal(err)
		}
	}
	const want = 11
	spans, err := eng.WaitSpans(testCtx(t), want)
	if err != nil {
		t.Fatalf("%v; got %s", err, spanNames(eng.Spans()))
	}
	if len(spans) != want {
		t.Fatalf("%d spans, want %d: %s", len(spans), want, spanNames(spans))
	}
	return spans
}

// The worker's own spans skip the SDK with the default sampler; with any
// other sampler they go through it. Both must export the same spans.
func TestOwnSpansMatchTheSDKs(t *testing.T) {
	sdk := shapes(traceScenario(t, telemetryOptions(iii.TelemetryOptions{Sampler: sdktrace.ParentBased(sdktrace.AlwaysSample())})))
	own := shapes(traceScenario(t, telemetryOn()))
	if !reflect.DeepEqual(own, sdk) {
		for i := range max(len(own), len(sdk)) {
			var o, s spanShape
			if i < len(own) {
				o = own[i]
			}
			if i < len(sdk) {
				s = sdk[i]
			}
			if !reflect.DeepEqual(o, s) {
				t.Errorf("own %+v\n     SDK %+v", o, s)
			}
		}
	}
	// A sanity check of the scenario itself.
	names := map[string]spanShape{}
	for _, s := range own {
		names[s.Name] = s
	}
	if names["child step"].Parent != "execute own::back" || names["execute own::back"].Parent != "trigger own::back" ||
		names["trigger own::back"].Parent != "execute own::front" || names["renamed"].Status.Code != wire.StatusOK {
		t.Fatalf("spans: %+v", own)
	}
}
