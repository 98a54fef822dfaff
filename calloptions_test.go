package iii_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/test/iiitest"
)

func TestCallOptionsSetMetadataAndTimeout(t *testing.T) {
	eng := iiitest.NewEngine(t)
	handler := newWorker(t, eng, fastOptions())
	opts := fastOptions()
	opts.InvocationTimeout = time.Hour // only the option can end the slow call
	caller := newWorker(t, eng, opts)

	mustRegister(t, eng, handler, "opts::meta", func(ctx context.Context, _ any) (json.RawMessage, error) {
		return iii.MetadataFromContext(ctx), nil
	})
	got, err := iii.Call[json.RawMessage](testCtx(t), caller, "opts::meta", nil, iii.WithCallMetadata(map[string]string{"tenant": "acme"}))
	if err != nil || string(got) != `{"tenant":"acme"}` {
		t.Fatalf("metadata: got %s, %v", got, err)
	}

	release := make(chan struct{})
	defer close(release)
	mustRegister(t, eng, handler, "opts::slow", func(ctx context.Context, _ any) (string, error) {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return "late", nil
	})
	done := make(chan error, 1)
	go func() {
		// No deadline on the context: the option alone bounds the call.
		_, err := iii.Call[string](context.Background(), caller, "opts::slow", nil, iii.WithCallTimeout(50*time.Millisecond))
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, iii.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("timeout: got %v, want ErrTimeout from the call's own timeout", err)
		}
	case <-testCtx(t).Done():
		t.Fatal("WithCallTimeout did not end the call")
	}

	// Calls without options still compile and use the defaults.
	if _, err := iii.Call[json.RawMessage](testCtx(t), caller, "opts::meta", nil); err != nil {
		t.Fatal(err)
	}
}

// A call whose context has already ended sends nothing and fails with the
// context's error, every time (it used to race the engine's answer).
func TestCallWithAnEndedContextSendsNothing(t *testing.T) {
	eng := iiitest.NewEngine(t)
	w := newWorker(t, eng, iii.InitOptions{})
	var ran atomic.Int32
	iii.RegisterFunction(w, "ended::fn", func(ctx context.Context, in int) (int, error) { ran.Add(1); return in, nil })
	if err := eng.WaitFunction(testCtx(t), "ended::fn"); err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel2()
	for range 200 {
		if _, err := iii.Call[int](cancelled, w, "ended::fn", 1); !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled context: %v", err)
		}
		if _, err := w.Trigger(cancelled, iii.TriggerRequest{FunctionID: "ended::fn", Payload: 1, Action: iii.Void()}); !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled context, void: %v", err)
		}
		if _, err := iii.Call[int](expired, w, "ended::fn", 1); !errors.Is(err, iii.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("expired context: %v", err)
		}
	}
	if n, _ := iii.Call[int](testCtx(t), w, "ended::fn", 1); n != 1 || ran.Load() != 1 {
		t.Fatalf("the handler ran %d times; want once, for the last call only", ran.Load())
	}
}
