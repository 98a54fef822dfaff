package iii_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
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

// callerID matches the caller's worker id the double adds to payloads (or
// the start of it, in a payload cut short).
var callerID = regexp.MustCompile(`"_caller_worker_id":"[0-9a-f-]*`)

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
			default:
				// The value as encoded: its type too (a bool is not "true").
				val := kv.Value
				if kv.Key == "iii.payload.json" && val.StringValue != nil {
					// The double adds the caller's worker id to the payload.
					masked := callerID.ReplaceAllString(*val.StringValue, `"_caller_worker_id":"<id>`)
					val.StringValue = &masked
				}
				j, _ := json.Marshal(val)
				v = string(j)
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
	mustRegister(t, eng, b, "own::secret", func(_ context.Context, in map[string]any) (map[string]any, error) {
		return map[string]any{"echo": in, "refresh_token": "r"}, nil
	})
	mustRegister(t, eng, b, "own::ended", func(ctx context.Context, in string) (string, error) {
		trace.SpanFromContext(ctx).End() // ended by the handler: no output event
		return in, nil
	})
	mustRegister(t, eng, b, "own::events", func(ctx context.Context, in string) (string, error) {
		span := trace.SpanFromContext(ctx)
		for i := range 130 { // more than the limit: the oldest, the input first, go
			span.AddEvent(fmt.Sprint("e", i))
		}
		return in, nil
	})
	mustRegister(t, eng, a, "own::front", func(ctx context.Context, in string) (string, error) {
		m, _ := baggage.NewMember("tenant", "t1")
		bg, _ := baggage.New(m)
		out, err := iii.Call[string](baggage.ContextWithBaggage(ctx, bg), a, "own::back", in)
		if err != nil {
			return "", err
		}
		for _, fn := range []string{"own::fail", "own::panic", "own::status", "own::missing", "own::ended", "own::events"} {
			_, _ = a.Trigger(ctx, iii.TriggerRequest{FunctionID: fn, Timeout: 5 * time.Second})
		}
		// Payload events with secrets to redact, and long enough to be cut.
		payload := json.RawMessage(`{"user":"ann","password":"p","nested":[{"api_key":"k","note":"ünïcödé ünïcödé"}]}`)
		if _, err := a.Trigger(ctx, iii.TriggerRequest{FunctionID: "own::secret", Payload: payload, Timeout: 5 * time.Second}); err != nil {
			return "", err
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
	const want = 17
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
// other sampler they go through it. Both must export the same spans, with
// the same payload events (whole, cut at TracePayloadMaxBytes, or none).
func TestOwnSpansMatchTheSDKs(t *testing.T) {
	for _, payloads := range []string{"whole", "cut", "off"} {
		t.Run(payloads, func(t *testing.T) {
			t.Setenv("III_DISABLE_TRACE_PAYLOADS", "")
			t.Setenv("III_TRACE_PAYLOAD_MAX_BYTES", "")
			var o iii.TelemetryOptions
			switch payloads {
			case "cut":
				o.TracePayloadMaxBytes = 40
			case "off":
				o.DisableTracePayloads = true
			}
			ownSpansMatchTheSDKs(t, o, payloads)
		})
	}
}

func ownSpansMatchTheSDKs(t *testing.T, o iii.TelemetryOptions, payloads string) {
	own := shapes(traceScenario(t, telemetryOptions(o)))
	o.Sampler = sdktrace.ParentBased(sdktrace.AlwaysSample())
	sdk := shapes(traceScenario(t, telemetryOptions(o)))
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
	ended, many := names["execute own::ended"].Events, names["execute own::events"].Events
	if payloads == "off" {
		if len(ended) != 0 || len(many) != 128 || !strings.HasPrefix(many[0], "e2 ") {
			t.Fatalf("events of own::ended %q, of own::events %d from %q", ended, len(many), many[0])
		}
	} else if len(ended) != 1 || !strings.HasPrefix(ended[0], "iii.invocation.input ") ||
		len(many) != 128 || !strings.HasPrefix(many[0], "e3 ") || !strings.HasPrefix(many[127], "iii.invocation.output ") {
		t.Fatalf("events of own::ended %q, of own::events %d from %q to %q", ended, len(many), many[0], many[len(many)-1])
	}
	events := strings.Join(names["execute own::secret"].Events, "\n")
	switch payloads {
	case "whole":
		if !strings.Contains(events, `"password\":\"[REDACTED]\"`) || !strings.Contains(events, `"api_key\":\"[REDACTED]\"`) ||
			!strings.Contains(events, `"refresh_token\":\"[REDACTED]\"`) || !strings.Contains(events, `iii.payload.ok={"boolValue":true}`) ||
			strings.Contains(events, `iii.payload.truncated={"boolValue":true}`) {
			t.Fatalf("payload events: %s", events)
		}
	case "cut":
		if !strings.Contains(events, `iii.payload.truncated={"boolValue":true}`) || !strings.Contains(events, "[TRUNCATED]") {
			t.Fatalf("payload events: %s", events)
		}
	case "off":
		if strings.Contains(events, "iii.invocation.") {
			t.Fatalf("payload events with payloads off: %s", events)
		}
	}
}
