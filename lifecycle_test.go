package iii_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/actors"
	"github.com/iii-go/iii/test/iiitest"
)

// logBuffer collects a worker's log records; safe for concurrent writes.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// returnsBy runs f and fails the test if it has not returned when ctx ends.
func returnsBy(t *testing.T, ctx context.Context, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatalf("%s did not return", what)
	}
}

// waitState waits until states delivers want.
func waitState(t *testing.T, states <-chan iii.ConnectionState, want iii.ConnectionState) {
	t.Helper()
	ctx := testCtx(t)
	for {
		select {
		case s := <-states:
			if s == want {
				return
			}
		case <-ctx.Done():
			t.Fatalf("OnStateChange never reported %v", want)
		}
	}
}

func wantInternal(t *testing.T, what string, err error, actor string) {
	t.Helper()
	var ie *iii.InternalError
	if !errors.Is(err, iii.ErrInternal) || !errors.As(err, &ie) || !strings.Contains(ie.Actor, actor) {
		t.Fatalf("%s: got %v, want an *InternalError naming %s", what, err, actor)
	}
}

func TestSpentRestartBudgetOfTheConnectionActorFailsTheWorker(t *testing.T) {
	eng := iiitest.NewEngine(t)
	var logs logBuffer
	states := make(chan iii.ConnectionState, 1000)
	opts := fastOptions()
	opts.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	opts.OnStateChange = func(s iii.ConnectionState) { states <- s }
	w := newWorker(t, eng, opts)
	for range actors.MaxRestarts + 1 {
		iii.CrashConnectionActor(w)
	}
	waitState(t, states, iii.Failed)
	if w.State() != iii.Failed {
		t.Fatalf("state %v", w.State())
	}
	wantInternal(t, "WaitConnected", w.WaitConnected(testCtx(t)), "connection")
	wantInternal(t, "Err", w.Err(), "connection")
	_, err := w.Trigger(testCtx(t), iii.TriggerRequest{FunctionID: "x::y"})
	wantInternal(t, "a call after the failure", err, "connection")
	returnsBy(t, testCtx(t), "Shutdown of a failed worker", w.Shutdown)
	l := logs.String()
	if !strings.Contains(l, "directive=restart") || !strings.Contains(l, "directive=stop") {
		t.Fatalf("the directives applied are not in the log:\n%s", l)
	}
}

func TestSpentRestartBudgetOfTheRegistryFailsPendingCalls(t *testing.T) {
	eng, handler, caller := twoWorkers(t)
	release, started := make(chan struct{}), make(chan struct{}, 1)
	defer close(release)
	mustRegister(t, eng, handler, "slow::op", func(ctx context.Context, _ any) (any, error) {
		started <- struct{}{}
		<-release
		return nil, nil
	})
	errc := make(chan error, 1)
	go func() {
		_, err := caller.Trigger(context.Background(), iii.TriggerRequest{FunctionID: "slow::op"})
		errc <- err
	}()
	<-started
	for range actors.MaxRestarts + 1 {
		iii.CrashRegistryActor(caller)
	}
	select {
	case err := <-errc:
		wantInternal(t, "the pending call", err, "registry")
	case <-testCtx(t).Done():
		t.Fatal("the pending call was not failed")
	}
	waitFor(t, "state Failed", func() bool { return caller.State() == iii.Failed })
	_, err := iii.RegisterFunction(caller, "late::fn", noop)
	wantInternal(t, "a registration after the failure", err, "registry")
}

func TestTriggerTypeActorRestartKeepsItsBindings(t *testing.T) {
	_, p, b, rec, ref, _ := providerAndBinder(t, fastOptions())
	trig, err := b.RegisterTrigger(iii.TriggerInput{Type: "test::ticker", FunctionID: "app::on-tick", Config: tickerConfig{Every: "1s"}})
	if err != nil {
		t.Fatal(err)
	}
	rec.waitCounts(t, 1, 0)
	iii.CrashTriggerTypeActor(p, "test::ticker")
	// The restarted actor still knows the binding: removing it reaches the provider.
	if err := trig.Unregister(); err != nil {
		t.Fatal(err)
	}
	rec.waitCounts(t, 1, 1)
	if len(ref.Bindings()) != 0 {
		t.Fatalf("bindings %+v", ref.Bindings())
	}
}

func TestShutdownAndDrainFromOnStateChange(t *testing.T) {
	for _, drain := range []bool{false, true} {
		t.Run(map[bool]string{false: "Shutdown", true: "Drain"}[drain], func(t *testing.T) {
			wc := make(chan *iii.III, 1)
			done := make(chan struct{})
			var once sync.Once
			w := iii.RegisterWorker("ws://127.0.0.1:1", iii.InitOptions{
				Reconnect: &iii.ReconnectConfig{InitialDelay: 10 * time.Millisecond, MaxRetries: 1},
				OnStateChange: func(s iii.ConnectionState) {
					if s != iii.Failed {
						return
					}
					once.Do(func() {
						w := <-wc
						if drain {
							_ = w.Drain(context.Background())
						} else {
							w.Shutdown()
						}
						close(done)
					})
				},
			})
			wc <- w
			select {
			case <-done:
			case <-testCtx(t).Done():
				t.Fatal("Shutdown/Drain called from OnStateChange did not return")
			}
			returnsBy(t, testCtx(t), "a second Shutdown", w.Shutdown)
		})
	}
}

func TestShutdownAndDrainFromAHandler(t *testing.T) {
	for _, drain := range []bool{false, true} {
		t.Run(map[bool]string{false: "Shutdown", true: "Drain"}[drain], func(t *testing.T) {
			eng := iiitest.NewEngine(t)
			w := newWorker(t, eng, fastOptions())
			caller := newWorker(t, eng, fastOptions())
			iii.SetShutdownTimeout(w, time.Hour)
			done := make(chan struct{})
			mustRegister(t, eng, w, "stop::me", func(ctx context.Context, _ any) (any, error) {
				defer close(done)
				if drain {
					return nil, w.Drain(ctx)
				}
				w.Shutdown()
				return nil, nil
			})
			go caller.Trigger(context.Background(), iii.TriggerRequest{FunctionID: "stop::me", Action: iii.Void()})
			select {
			case <-done:
			case <-testCtx(t).Done():
				t.Fatal("Shutdown/Drain called from a handler did not return")
			}
			waitFor(t, "the handler to end", func() bool { return w.Stats().Running == 0 })
		})
	}
}

// stoppingProvider calls stop from its RegisterTrigger.
type stoppingProvider struct {
	stop func()
	done chan struct{}
}

func (p *stoppingProvider) RegisterTrigger(ctx context.Context, b iii.TriggerBinding[tickerConfig]) error {
	defer close(p.done)
	p.stop()
	return nil
}

func (p *stoppingProvider) UnregisterTrigger(context.Context, iii.TriggerBinding[tickerConfig]) error {
	return nil
}

func TestShutdownAndDrainFromATriggerProvider(t *testing.T) {
	for _, drain := range []bool{false, true} {
		t.Run(map[bool]string{false: "Shutdown", true: "Drain"}[drain], func(t *testing.T) {
			eng := iiitest.NewEngine(t)
			p := newWorker(t, eng, fastOptions())
			b := newWorker(t, eng, fastOptions())
			iii.SetShutdownTimeout(p, time.Hour)
			sp := &stoppingProvider{done: make(chan struct{})}
			sp.stop = p.Shutdown
			if drain {
				sp.stop = func() { _ = p.Drain(context.Background()) }
			}
			if _, err := iii.RegisterTriggerType[tickerConfig, tick](p, "stop::ticker", "", sp); err != nil {
				t.Fatal(err)
			}
			if _, err := b.RegisterTrigger(iii.TriggerInput{Type: "stop::ticker", FunctionID: "any::fn"}); err != nil {
				t.Fatal(err)
			}
			select {
			case <-sp.done:
			case <-testCtx(t).Done():
				t.Fatal("Shutdown/Drain called from a trigger provider did not return")
			}
		})
	}
}

func TestDrainAfterShutdownReturnsAtOnce(t *testing.T) {
	eng := iiitest.NewEngine(t)
	w := newWorker(t, eng, fastOptions())
	w.Shutdown()
	var err error
	returnsBy(t, testCtx(t), "Drain after Shutdown", func() { err = w.Drain(context.Background()) })
	if !errors.Is(err, iii.ErrShutdown) {
		t.Fatalf("got %v", err)
	}
}

func TestEveryCallAfterShutdownReturnsErrShutdown(t *testing.T) {
	_, p, b, rec, ref, _ := providerAndBinder(t, fastOptions())
	fn, err := iii.RegisterFunction(b, "app::fn", noop)
	if err != nil {
		t.Fatal(err)
	}
	trig, err := b.RegisterTrigger(iii.TriggerInput{Type: "test::ticker", FunctionID: "app::on-tick"})
	if err != nil {
		t.Fatal(err)
	}
	rec.waitCounts(t, 1, 0)
	b.Shutdown()
	p.Shutdown()
	ctx := testCtx(t)
	calls := map[string]func() error{
		"FunctionRef.Unregister": fn.Unregister,
		"Trigger.Unregister":     trig.Unregister,
		"RegisterTrigger": func() error {
			_, err := b.RegisterTrigger(iii.TriggerInput{Type: "test::ticker", FunctionID: "app::on-tick"})
			return err
		},
		"RegisterFunction": func() error { _, err := iii.RegisterFunction(b, "app::other", noop); return err },
		"RegisterTriggerType": func() error {
			_, err := iii.RegisterTriggerType[tickerConfig, tick](p, "other::ticker", "", newRecordingProvider())
			return err
		},
		"UnregisterTriggerType":     func() error { return p.UnregisterTriggerType("test::ticker") },
		"TriggerTypeRef.Unregister": ref.Unregister,
		"Trigger":                   func() error { _, err := b.Trigger(ctx, iii.TriggerRequest{FunctionID: "app::fn"}); return err },
		"Void": func() error {
			_, err := b.Trigger(ctx, iii.TriggerRequest{FunctionID: "app::fn", Action: iii.Void()})
			return err
		},
		"WaitConnected": func() error { return b.WaitConnected(ctx) },
		"Drain":         func() error { return b.Drain(ctx) },
	}
	for name, call := range calls {
		var err error
		returnsBy(t, ctx, name, func() { err = call() })
		if !errors.Is(err, iii.ErrShutdown) {
			t.Errorf("%s after Shutdown: %v", name, err)
		}
	}
}

func TestShutdownIsBoundedWhateverCallbacksDo(t *testing.T) {
	eng := iiitest.NewEngine(t)
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	opts := fastOptions()
	opts.OnStateChange = func(s iii.ConnectionState) {
		if s == iii.Disconnected {
			<-release // the last state change blocks
		}
	}
	w := newWorker(t, eng, opts)
	caller := newWorker(t, eng, fastOptions())
	iii.SetShutdownTimeout(w, 50*time.Millisecond)
	mustRegister(t, eng, w, "stuck::op", func(ctx context.Context, _ any) (any, error) {
		started <- struct{}{}
		<-release // ignores ctx
		return nil, nil
	})
	go caller.Trigger(context.Background(), iii.TriggerRequest{FunctionID: "stuck::op", Action: iii.Void()})
	<-started
	returnsBy(t, testCtx(t), "Shutdown", w.Shutdown)
	close(release) // let the abandoned goroutines end before the leak check
	waitFor(t, "the stuck handler to return", func() bool { return w.Stats().Running == 0 })
}

func TestDrainHonoursItsDeadline(t *testing.T) {
	eng := iiitest.NewEngine(t)
	w := newWorker(t, eng, fastOptions())
	caller := newWorker(t, eng, fastOptions())
	iii.SetShutdownTimeout(w, time.Hour) // only the deadline can end Drain in time
	release, started := make(chan struct{}), make(chan struct{}, 1)
	mustRegister(t, eng, w, "stuck::op", func(ctx context.Context, _ any) (any, error) {
		started <- struct{}{}
		<-release // ignores ctx
		return nil, nil
	})
	go caller.Trigger(context.Background(), iii.TriggerRequest{FunctionID: "stuck::op", Action: iii.Void()})
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	var err error
	returnsBy(t, testCtx(t), "Drain", func() { err = w.Drain(ctx) })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
	close(release)
	waitFor(t, "the stuck handler to return", func() bool { return w.Stats().Running == 0 })
}

func TestOnStateChangePanicIsLoggedAndLaterChangesStillArrive(t *testing.T) {
	eng := iiitest.NewEngine(t)
	var logs syncBuffer
	states := make(chan iii.ConnectionState, 16)
	opts := fastOptions()
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	opts.OnStateChange = func(s iii.ConnectionState) {
		states <- s
		if s == iii.Connected {
			panic("callback exploded")
		}
	}
	w := newWorker(t, eng, opts)
	waitState(t, states, iii.Connected)
	if !eng.DropWorker(w.WorkerID()) {
		t.Fatal("worker not connected")
	}
	// The process survived the panic, and the notifier still delivers.
	waitState(t, states, iii.Reconnecting)
	waitState(t, states, iii.Connected)
	if !strings.Contains(logs.String(), "OnStateChange panicked") || !strings.Contains(logs.String(), "callback exploded") {
		t.Fatalf("the panic was not logged: %s", logs.String())
	}
}

// Two handlers that drain at once do not wait for each other: each Drain
// returns nil, and the worker shuts down.
func TestDrainFromTwoHandlersAtOnce(t *testing.T) {
	eng := iiitest.NewEngine(t)
	w := newWorker(t, eng, fastOptions())
	caller := newWorker(t, eng, fastOptions())
	iii.SetShutdownTimeout(w, time.Hour)
	var started sync.WaitGroup
	started.Add(2)
	errs := make(chan error, 2)
	mustRegister(t, eng, w, "drain::both", func(ctx context.Context, _ any) (any, error) {
		started.Done()
		started.Wait() // both handlers are running
		err := w.Drain(ctx)
		errs <- err
		return nil, err
	})
	for range 2 {
		go caller.Trigger(context.Background(), iii.TriggerRequest{FunctionID: "drain::both", Action: iii.Void()})
	}
	for range 2 {
		select {
		case err := <-errs:
			if err != nil {
				t.Fatalf("Drain from a handler: %v", err)
			}
		case <-testCtx(t).Done():
			t.Fatal("two handlers draining at once waited for each other")
		}
	}
	waitFor(t, "the worker to shut down", func() bool { return w.State() == iii.Disconnected || w.Err() != nil })
}
