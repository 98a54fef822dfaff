package otelws

import (
	"go.opentelemetry.io/otel/sdk/instrumentation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/iii-go/iii/connection/wire"
)

// Traces builds, for tests, the OTLP/JSON request of a batch of spans, grouped by
// instrumentation scope. (The Pipeline writes the same JSON by hand,
// without the intermediate values.)
func Traces(res wire.Resource, spans []sdktrace.ReadOnlySpan) wire.TracesRequest {
	var scopes []wire.ScopeSpans
	index := map[instrumentation.Scope]int{}
	for _, s := range spans {
		sc := s.InstrumentationScope()
		i, ok := index[sc]
		if !ok {
			i = len(scopes)
			index[sc] = i
			scopes = append(scopes, wire.ScopeSpans{Scope: wire.Scope{Name: sc.Name, Version: sc.Version}})
		}
		scopes[i].Spans = append(scopes[i].Spans, Span(s))
	}
	return wire.TracesRequest{ResourceSpans: []wire.ResourceSpans{{Resource: res, ScopeSpans: scopes}}}
}
