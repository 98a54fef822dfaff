package iii_test

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/test/iiitest"
)

// TestMain fails the run if any test leaves a goroutine behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fastOptions shortens the reconnect schedule so that tests which drop
// connections do not wait for the production backoff.
func fastOptions() iii.InitOptions {
	return iii.InitOptions{
		Reconnect: &iii.ReconnectConfig{InitialDelay: 20 * time.Millisecond, MaxDelay: 200 * time.Millisecond},
	}
}

// newWorker connects a worker to eng and shuts it down at the end of the test.
func newWorker(t testing.TB, eng *iiitest.Engine, opts iii.InitOptions) *iii.III {
	t.Helper()
	w := iii.RegisterWorker(eng.URL, opts)
	t.Cleanup(w.Shutdown)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.WaitConnected(ctx); err != nil {
		t.Fatalf("WaitConnected: %v", err)
	}
	return w
}

// testCtx is a context bounded so that a broken test fails instead of hanging.
func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond until it holds or the test's patience runs out.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
