package iii_test

import (
	"context"
	"encoding/json"
	"errors"
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
