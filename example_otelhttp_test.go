package iii_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/propagation"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/test/iiitest"
)

// Tracing a handler's outgoing HTTP requests with otelhttp and the
// worker's tracer provider: each request becomes a client span, child of
// the invocation's span, and carries the trace to the server in its
// traceparent header.
func ExampleIII_TracerProvider_otelhttp() {
	eng, err := iiitest.Start("127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer eng.Close()
	w := iii.RegisterWorker(eng.URL, iii.InitOptions{Telemetry: &iii.TelemetryOptions{Enabled: new(true)}})
	defer w.Shutdown()

	// A server on loopback that tells whether the request carried a trace.
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		fmt.Fprint(rw, r.Header.Get("traceparent") != "")
	}))
	srv.Listener.Close()
	srv.Listener, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	srv.Start()
	defer srv.Close()

	client := &http.Client{Transport: otelhttp.NewTransport(http.DefaultTransport,
		otelhttp.WithTracerProvider(w.TracerProvider()),
		otelhttp.WithPropagators(propagation.TraceContext{}))}
	iii.RegisterFunction(w, "weather::fetch", func(ctx context.Context, _ any) (string, error) {
		// The request's context is the handler's: its span is the parent.
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
		if err != nil {
			return "", err
		}
		resp, err := client.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return "traced: " + string(b), err
	})

	ctx := context.Background()
	if err := eng.WaitFunction(ctx, "weather::fetch"); err != nil {
		panic(err)
	}
	out, _, err := eng.Invoke(ctx, "weather::fetch", []byte(`null`))
	if err != nil {
		panic(err)
	}
	fmt.Println(string(out))

	// What the engine received: the handler's span and the request's.
	spans, _ := eng.WaitSpans(ctx, 2)
	byName := map[string]int{}
	for i, s := range spans {
		byName[s.Name] = i
	}
	exec, get := spans[byName["execute weather::fetch"]], spans[byName["HTTP GET"]]
	fmt.Println("client span:", get.Name, "kind", get.Kind)
	fmt.Println("child of the invocation:", get.ParentSpanID == exec.SpanID && get.TraceID == exec.TraceID)
	// Output:
	// "traced: true"
	// client span: HTTP GET kind 3
	// child of the invocation: true
}
