package iii_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iii-go/iii"
)

// outcomes collects the errors of concurrent calls.
type outcomes struct {
	mu   sync.Mutex
	errs []error
}

func (o *outcomes) add(err error) {
	o.mu.Lock()
	o.errs = append(o.errs, err)
	o.mu.Unlock()
}

func (o *outcomes) count(match func(error) bool) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, err := range o.errs {
		if match(err) {
			n++
		}
	}
	return n
}

// A worker whose handler slots and backlog are full refuses further
// invocations at once, and keeps reading: the results of its handlers'
// own calls still arrive, so nested calls complete instead of waiting for
// their timeouts behind a blocked read loop.
func TestOverloadedWorkerRefusesInvocationsAndNestedCallsStillComplete(t *testing.T) {
	eng, handler, caller := twoWorkers(t)
	opts := fastOptions()
	opts.MaxConcurrentInvocations, opts.MaxQueuedInvocations, opts.InvocationTimeout = 2, 2, 5*time.Second
	outerW := newWorker(t, eng, opts)
	mustRegister(t, eng, handler, "nest::inner", func(ctx context.Context, n int) (int, error) { return n + 1, nil })
	gate := make(chan struct{})
	mustRegister(t, eng, outerW, "nest::outer", func(ctx context.Context, n int) (int, error) {
		<-gate
		return iii.Call[int](ctx, outerW, "nest::inner", n)
	})
	const calls = 16
	var out outcomes
	var wg sync.WaitGroup
	for i := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := iii.Call[int](testCtx(t), caller, "nest::outer", i)
			if err == nil && got != i+1 {
				err = fmt.Errorf("outer(%d) = %d", i, got)
			}
			out.add(err)
		}()
	}
	overloaded := func(err error) bool { return iii.ErrorCode(err) == iii.CodeWorkerOverloaded }
	// Two run, two wait, and the rest are refused before any slot frees up.
	waitFor(t, "the refusals", func() bool { return out.count(overloaded) == calls-4 })
	if st := outerW.Stats(); st.Running != 2 || st.Queued != 2 || st.Refused != calls-4 {
		t.Fatalf("stats %+v", st)
	}
	close(gate)
	wg.Wait()
	if n := out.count(func(err error) bool { return err == nil }); n != 4 {
		t.Fatalf("%d nested calls succeeded, want 4: %v", n, out.errs)
	}
}

func TestQueuedInvocationsAreBoundedInBytes(t *testing.T) {
	eng, _, caller := twoWorkers(t)
	opts := fastOptions()
	opts.MaxConcurrentInvocations, opts.MaxQueuedInvocations, opts.MaxQueuedInvocationBytes = 1, 100, 3<<18
	w := newWorker(t, eng, opts)
	release := make(chan struct{})
	mustRegister(t, eng, w, "big::park", func(ctx context.Context, s string) (int, error) {
		<-release
		return len(s), nil
	})
	payload := strings.Repeat("x", 1<<18-2) // 256 KiB as a JSON string
	var out outcomes
	var wg sync.WaitGroup
	call := func() {
		defer wg.Done()
		_, err := iii.Call[int](testCtx(t), caller, "big::park", payload)
		out.add(err)
	}
	wg.Add(1)
	go call()
	waitFor(t, "the first to run", func() bool { return w.Stats().Running == 1 })
	for range 6 {
		wg.Add(1)
		go call()
	}
	overloaded := func(err error) bool { return iii.ErrorCode(err) == iii.CodeWorkerOverloaded }
	waitFor(t, "three queued, three refused", func() bool {
		st := w.Stats()
		return st.Queued == 3 && out.count(overloaded) == 3
	})
	if st := w.Stats(); st.QueuedBytes != 3<<18 || st.Refused != 3 {
		t.Fatalf("stats %+v", st)
	}
	close(release)
	wg.Wait()
	if n := out.count(func(err error) bool { return err == nil }); n != 4 {
		t.Fatalf("%d calls succeeded, want 4: %v", n, out.errs)
	}
}

// badError's Error method panics: user code that runs after the handler
// returned, outside its recover.
type badError struct{}

func (badError) Error() string { panic("Error() exploded") }

// warnings records the SDK's Warn logs.
type warnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (w *warnings) Handle(_ context.Context, r slog.Record) error {
	w.mu.Lock()
	w.msgs = append(w.msgs, r.Message)
	w.mu.Unlock()
	return nil
}
func (w *warnings) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w *warnings) WithGroup(string) slog.Handler      { return w }
func (w *warnings) has(sub string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, m := range w.msgs {
		if strings.Contains(m, sub) {
			return true
		}
	}
	return false
}

// An invocation that fails outside its handler still gets its reply, and
// its slot back, every time (past any restart budget), and the failure is
// logged at Warn.
func TestInvocationFailingOutsideItsHandlerGetsAReplyAndItsSlotBack(t *testing.T) {
	eng, _, caller := twoWorkers(t)
	var logs warnings
	opts := fastOptions()
	opts.MaxConcurrentInvocations, opts.Logger = 1, slog.New(&logs)
	w := newWorker(t, eng, opts)
	mustRegister(t, eng, w, "bad::error", func(ctx context.Context, _ int) (int, error) { return 0, badError{} })
	mustRegister(t, eng, w, "bad::fine", func(ctx context.Context, n int) (int, error) { return n, nil })
	for i := range 12 {
		_, err := caller.Trigger(testCtx(t), iii.TriggerRequest{FunctionID: "bad::error", Payload: i, Timeout: 5 * time.Second})
		if iii.ErrorCode(err) != iii.CodeInvocationFailed {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if n, err := iii.Call[int](testCtx(t), caller, "bad::fine", 7); err != nil || n != 7 {
		t.Fatalf("a good call after the failures: %d, %v", n, err)
	}
	// The slot comes back just after the reply is sent.
	waitFor(t, "no handler running", func() bool { return w.Stats().Running == 0 })
	if !logs.has("outside its handler") {
		t.Fatalf("no Warn log of the failure: %q", logs.msgs)
	}
}

// A handler that ends its goroutine (as t.FailNow does) instead of
// returning still gets an invocation_failed reply, and frees its slot, so
// that Drain sees the worker idle.
func TestHandlerCallingGoexitGetsAFailureReplyAndFreesItsSlot(t *testing.T) {
	eng, _, caller := twoWorkers(t)
	opts := fastOptions()
	opts.MaxConcurrentInvocations = 1
	w := iii.RegisterWorker(eng.URL, opts)
	defer w.Shutdown()
	mustRegister(t, eng, w, "exit::now", func(ctx context.Context, _ int) (int, error) {
		runtime.Goexit()
		return 0, nil
	})
	mustRegister(t, eng, w, "exit::fine", func(ctx context.Context, n int) (int, error) { return n, nil })
	for i := range 3 {
		_, err := caller.Trigger(testCtx(t), iii.TriggerRequest{FunctionID: "exit::now", Payload: i, Timeout: 5 * time.Second})
		if iii.ErrorCode(err) != iii.CodeInvocationFailed || !strings.Contains(err.Error(), "Goexit") {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if n, err := iii.Call[int](testCtx(t), caller, "exit::fine", 7); err != nil || n != 7 {
		t.Fatalf("a good call after the Goexits: %d, %v", n, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.Drain(ctx); err != nil {
		t.Fatalf("Drain: %v", err)
	}
}

// The engine stops an invocation when the socket it came on dies; the
// handler's context is cancelled then, so that it stops and frees its slot.
func TestHandlerContextIsCancelledWhenItsSocketDies(t *testing.T) {
	eng, handler, caller := twoWorkers(t)
	started := make(chan struct{})
	cause := make(chan error, 1)
	mustRegister(t, eng, handler, "sock::wait", func(ctx context.Context, _ int) (int, error) {
		close(started)
		<-ctx.Done()
		cause <- context.Cause(ctx)
		return 0, ctx.Err()
	})
	callErr := make(chan error, 1)
	go func() {
		_, err := iii.Call[int](testCtx(t), caller, "sock::wait", 1)
		callErr <- err
	}()
	<-started
	if !eng.DropWorker(handler.WorkerID()) {
		t.Fatal("the handler's worker is not connected")
	}
	select {
	case err := <-cause:
		if err == nil || errors.Is(err, iii.ErrShutdown) {
			t.Fatalf("cancelled with cause %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the handler's context was not cancelled when its socket died")
	}
	if err := <-callErr; iii.ErrorCode(err) != iii.CodeInvocationStopped {
		t.Fatalf("call: %v", err)
	}
	waitFor(t, "the slot", func() bool { return handler.Stats().Running == 0 })
}
