package iii

import (
	"context"
	"sync"
	"testing"
	"unsafe"

	"go.opentelemetry.io/otel/baggage"

	"github.com/iii-go/iii/connection/wire"
)

// TestOwnInvocationSpanContextIsSmall guards the size of what a running
// invocation holds with telemetry on: a sync.Once and the parsed baggage
// beside the raw one made it 224 bytes.
func TestOwnInvocationSpanContextIsSmall(t *testing.T) {
	if n := unsafe.Sizeof(spanCtx{}); n > 192 {
		t.Errorf("a spanCtx is %d bytes, want at most 192", n)
	}
}

// TestHandlersReadTheBaggageConcurrently reads the baggage of a handler's
// context from many goroutines at once, as the first read parses it: all
// see the same members (run with -race).
func TestHandlersReadTheBaggageConcurrently(t *testing.T) {
	w := RegisterWorker("ws://127.0.0.1:1", InitOptions{Reconnect: &ReconnectConfig{MaxRetries: 1},
		Telemetry: &TelemetryOptions{Enabled: new(true)}})
	defer w.Shutdown()
	if baggageKey == nil || !w.tel.own {
		t.Skip("no lazily parsed baggage with this OpenTelemetry version")
	}
	for range 20 {
		m := &wire.InvokeFunction{FunctionID: "f", InvocationID: wire.NewUUID(), HasInvocationID: true, Baggage: "tenant=t1,region=eu"}
		hctx, end := w.tel.startInvocation(context.Background(), m)
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				b := baggage.FromContext(hctx)
				if b.Member("tenant").Value() != "t1" || b.Member("region").Value() != "eu" || b.Len() != 2 {
					t.Errorf("baggage %s", b)
				}
			})
		}
		wg.Wait()
		end(&wire.InvocationResult{})
	}
}
