package iii_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/connection/wire"
	"github.com/iii-go/iii/test/iiitest"
)

// describe renders the frames of a journal compactly for comparison.
func describe(ms []wire.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		switch m := m.(type) {
		case *wire.RegisterFunction:
			out[i] = "registerfunction " + m.ID
		case *wire.UnregisterFunction:
			out[i] = "unregisterfunction " + m.ID
		case *wire.InvokeFunction:
			out[i] = "invokefunction " + m.FunctionID
		case *wire.Reattach:
			out[i] = "reattach"
		default:
			out[i] = m.Kind().String()
		}
	}
	return out
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func noop(ctx context.Context, _ any) (any, error) { return nil, nil }

func TestConnectSendsRegistrationsThenMetadata(t *testing.T) {
	eng := iiitest.NewEngine(t)
	t.Setenv("III_WORKER_NAME", "orders-worker")
	eng.Stop() // the engine is down until the registration is made
	w := iii.RegisterWorker(eng.URL, fastOptions())
	t.Cleanup(w.Shutdown)
	// Registered before the connection is up: sent by the first replay.
	if _, err := iii.RegisterFunction(w, "orders::create", noop); err != nil {
		t.Fatal(err)
	}
	if err := eng.Resume(); err != nil {
		t.Fatal(err)
	}
	if err := w.WaitConnected(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if w.State() != iii.Connected {
		t.Fatalf("state %v", w.State())
	}
	ws, err := eng.WaitWorkers(testCtx(t), 1)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "worker metadata", func() bool { return eng.Workers()[0].Metadata != nil })
	info := eng.Workers()[0]
	if info.ID != w.WorkerID() || info.Runtime != "go" || info.Name != "orders-worker" || info.PID != os.Getpid() || info.Version != iii.Version {
		t.Fatalf("worker info %+v", info)
	}
	var meta iii.WorkerMetadata
	if err := json.Unmarshal(info.Metadata, &meta); err != nil || meta.Telemetry == nil || meta.Telemetry.Framework != "iii-go" || meta.OS == "" {
		t.Fatalf("metadata %s (%v)", info.Metadata, err)
	}
	want := []string{"registerfunction orders::create", "invokefunction engine::workers::register"}
	if got := describe(eng.Journal(ws[0].ID)); !equalStrings(got, want) {
		t.Fatalf("connect sequence %q, want %q", got, want)
	}
}

func TestReconnectSendsReattachFirstThenReplaysEachRegistrationOnce(t *testing.T) {
	eng := iiitest.NewEngine(t)
	w := newWorker(t, eng, fastOptions())
	for _, id := range []string{"a::one", "a::two", "a::three"} {
		mustRegister(t, eng, w, id, noop)
	}
	ref := mustRegister(t, eng, w, "a::gone", noop)
	if err := ref.Unregister(); err != nil {
		t.Fatal(err)
	}
	first := w.WorkerID()
	waitFor(t, "metadata on the first connection", func() bool { return len(eng.Workers()) == 1 && eng.Workers()[0].Metadata != nil })
	eng.DropWorker(first)
	waitFor(t, "a new connection", func() bool {
		ws := eng.Workers()
		return len(ws) == 1 && ws[0].ID != first && ws[0].Metadata != nil
	})
	second := eng.Workers()[0].ID
	want := []string{"reattach", "registerfunction a::one", "registerfunction a::two", "registerfunction a::three",
		"invokefunction engine::workers::register"}
	got := eng.Journal(second)
	if !equalStrings(describe(got), want) {
		t.Fatalf("reconnect sequence %q, want %q", describe(got), want)
	}
	if r := got[0].(*wire.Reattach); r.PreviousWorkerID != first || r.ReattachToken == "" {
		t.Fatalf("reattach %+v, want previous id %s; engine workers %+v", r, first, eng.Workers())
	}
	waitFor(t, "WorkerID to be the new connection's", func() bool { return w.WorkerID() == second })
	// And again: the next reconnect reattaches to the second connection.
	eng.DropWorker(second)
	waitFor(t, "a third connection", func() bool {
		ws := eng.Workers()
		return len(ws) == 1 && ws[0].ID != second && ws[0].Metadata != nil
	})
	if r := eng.Journal(eng.Workers()[0].ID)[0].(*wire.Reattach); r.PreviousWorkerID != second {
		t.Fatalf("second reattach names %s, want %s", r.PreviousWorkerID, second)
	}
}

func TestStateChangesAreObservable(t *testing.T) {
	eng := iiitest.NewEngine(t)
	states := make(chan iii.ConnectionState, 64)
	opts := fastOptions()
	opts.OnStateChange = func(s iii.ConnectionState) { states <- s }
	w := newWorker(t, eng, opts)
	expect := func(want iii.ConnectionState) {
		t.Helper()
		for {
			select {
			case s := <-states:
				if s == want {
					return
				}
			case <-testCtx(t).Done():
				t.Fatalf("never reached %v", want)
			}
		}
	}
	expect(iii.Connected)
	eng.DropWorker(w.WorkerID())
	expect(iii.Reconnecting)
	expect(iii.Connected)
}

func TestHalfOpenConnectionIsDetectedByTheIdleTimeout(t *testing.T) {
	eng := iiitest.NewEngine(t)
	opts := fastOptions()
	opts.PingInterval = 20 * time.Millisecond
	opts.IdleTimeout = 150 * time.Millisecond
	w := newWorker(t, eng, opts)
	first := w.WorkerID()
	// The engine keeps the socket open but goes silent, pongs included.
	if !eng.StallWorker(first) {
		t.Fatal("not connected")
	}
	waitFor(t, "a reconnect after the idle timeout", func() bool {
		return w.State() == iii.Connected && w.WorkerID() != first && w.WorkerID() != ""
	})
}

func TestHealthyIdleConnectionIsKeptAliveByPings(t *testing.T) {
	eng := iiitest.NewEngine(t)
	opts := fastOptions()
	opts.PingInterval = 20 * time.Millisecond
	opts.IdleTimeout = 400 * time.Millisecond
	var changes atomic.Int32
	opts.OnStateChange = func(iii.ConnectionState) { changes.Add(1) }
	w := newWorker(t, eng, opts)
	waitFor(t, "connecting and connected", func() bool { return changes.Load() == 2 })
	id := w.WorkerID()
	// Nothing but pings and pongs for three idle timeouts.
	time.Sleep(1200 * time.Millisecond)
	if w.WorkerID() != id || w.State() != iii.Connected || changes.Load() != 2 {
		t.Fatalf("the idle but healthy connection was dropped (state %v, %d changes)", w.State(), changes.Load())
	}
}

func TestCallsPendingOnADeadSocketFailAtOnce(t *testing.T) {
	eng, handler, caller := twoWorkers(t)
	started := make(chan struct{}, 1)
	mustRegister(t, eng, handler, "slow::op", func(ctx context.Context, _ any) (any, error) {
		started <- struct{}{}
		<-ctx.Done()
		return nil, nil
	})
	errc := make(chan error, 1)
	go func() {
		_, err := caller.Trigger(context.Background(), iii.TriggerRequest{FunctionID: "slow::op", Timeout: time.Hour})
		errc <- err
	}()
	<-started
	eng.DropWorker(caller.WorkerID())
	select {
	case err := <-errc:
		if !errors.Is(err, iii.ErrConnectionLost) {
			t.Fatalf("got %v, want ErrConnectionLost", err)
		}
	case <-testCtx(t).Done():
		t.Fatal("the pending call did not fail when its socket died")
	}
}

func TestCallerSeesInvocationStoppedWhenTheHandlerDies(t *testing.T) {
	eng, handler, caller := twoWorkers(t)
	started := make(chan struct{}, 1)
	mustRegister(t, eng, handler, "slow::op", func(ctx context.Context, _ any) (any, error) {
		started <- struct{}{}
		<-ctx.Done()
		return nil, nil
	})
	errc := make(chan error, 1)
	go func() {
		_, err := caller.Trigger(context.Background(), iii.TriggerRequest{FunctionID: "slow::op", Timeout: time.Hour})
		errc <- err
	}()
	<-started
	eng.DropWorker(handler.WorkerID())
	if err := <-errc; iii.ErrorCode(err) != iii.CodeInvocationStopped {
		t.Fatalf("got %v, want invocation_stopped", err)
	}
}

func TestReplyForAnInvocationOfADeadSocketIsNeverSentOnTheNewOne(t *testing.T) {
	eng, handler, caller := twoWorkers(t)
	started, release := make(chan struct{}, 1), make(chan struct{})
	var finished atomic.Bool
	mustRegister(t, eng, handler, "slow::op", func(ctx context.Context, _ any) (string, error) {
		started <- struct{}{}
		<-release
		finished.Store(true)
		return "stale", nil
	})
	mustRegister(t, eng, handler, "fast::op", func(ctx context.Context, _ any) (string, error) { return "fresh", nil })
	go caller.Trigger(context.Background(), iii.TriggerRequest{FunctionID: "slow::op", Action: iii.Void()})
	<-started
	old := handler.WorkerID()
	eng.DropWorker(old)
	waitFor(t, "the handler's new connection", func() bool {
		return handler.State() == iii.Connected && handler.WorkerID() != old && eng.Functions()["fast::op"] == handler.WorkerID()
	})
	before := eng.FrameCount(wire.KindInvocationResult)
	close(release)
	waitFor(t, "the stale handler to finish", finished.Load)
	// A result sent after the stale one (same socket, same order) shows
	// whether the stale one was sent.
	if got, err := iii.Call[string](testCtx(t), caller, "fast::op", nil); err != nil || got != "fresh" {
		t.Fatalf("fast::op: %q %v", got, err)
	}
	if n := eng.FrameCount(wire.KindInvocationResult) - before; n != 1 {
		t.Fatalf("%d invocation results reached the engine, want 1 (the stale reply must be dropped)", n)
	}
}

func TestCallsMadeWhileDisconnectedAreSentAfterReconnect(t *testing.T) {
	eng := iiitest.NewEngine(t)
	handler := newWorker(t, eng, fastOptions())
	// A slow reconnect leaves a window in which the caller is disconnected.
	caller := newWorker(t, eng, iii.InitOptions{Reconnect: &iii.ReconnectConfig{InitialDelay: 300 * time.Millisecond, Jitter: -1}})
	mustRegister(t, eng, handler, "echo::it", func(ctx context.Context, s string) (string, error) { return s, nil })
	eng.DropWorker(caller.WorkerID())
	waitFor(t, "the caller to notice", func() bool { return caller.State() != iii.Connected })
	type res struct {
		v   string
		err error
	}
	out := make(chan res, 3)
	for i := range 3 {
		go func() {
			v, err := iii.Call[string](testCtx(t), caller, "echo::it", fmt.Sprint(i))
			out <- res{v, err}
		}()
	}
	got := map[string]bool{}
	for range 3 {
		r := <-out
		if r.err != nil {
			t.Fatalf("offline call: %v", r.err)
		}
		got[r.v] = true
	}
	if len(got) != 3 {
		t.Fatalf("results %v", got)
	}
}

func TestOfflineCallGivesUpAtItsTimeout(t *testing.T) {
	eng, _, caller := twoWorkers(t)
	eng.Stop()
	waitFor(t, "the caller to notice", func() bool { return caller.State() != iii.Connected })
	_, err := caller.Trigger(testCtx(t), iii.TriggerRequest{FunctionID: "x::y", Timeout: 50 * time.Millisecond})
	if !errors.Is(err, iii.ErrTimeout) || !errors.Is(err, iii.ErrNotConnected) {
		t.Fatalf("got %v, want a timeout waiting for the connection", err)
	}
}

func TestShutdownFailsPendingCallsAndCancelsHandlers(t *testing.T) {
	eng := iiitest.NewEngine(t)
	handler := newWorker(t, eng, fastOptions())
	caller := iii.RegisterWorker(eng.URL, fastOptions())
	if err := caller.WaitConnected(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	started, cancelled := make(chan struct{}, 1), make(chan error, 1)
	mustRegister(t, eng, handler, "slow::op", func(ctx context.Context, _ any) (any, error) {
		started <- struct{}{}
		<-ctx.Done()
		cancelled <- context.Cause(ctx)
		return nil, ctx.Err()
	})
	errc := make(chan error, 1)
	go func() {
		_, err := caller.Trigger(context.Background(), iii.TriggerRequest{FunctionID: "slow::op"})
		errc <- err
	}()
	<-started
	caller.Shutdown()
	if err := <-errc; !errors.Is(err, iii.ErrShutdown) {
		t.Fatalf("pending call after Shutdown: %v", err)
	}
	if _, err := caller.Trigger(testCtx(t), iii.TriggerRequest{FunctionID: "slow::op"}); !errors.Is(err, iii.ErrShutdown) {
		t.Fatalf("call after Shutdown: %v", err)
	}
	if caller.State() != iii.Disconnected {
		t.Fatalf("state after Shutdown %v", caller.State())
	}
	handler.Shutdown()
	if err := <-cancelled; !errors.Is(err, iii.ErrShutdown) {
		t.Fatalf("handler context cause %v", err)
	}
}

func TestDrainFinishesRunningInvocationsThenDisconnects(t *testing.T) {
	eng := iiitest.NewEngine(t)
	handler := iii.RegisterWorker(eng.URL, fastOptions())
	if err := handler.WaitConnected(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	caller := newWorker(t, eng, fastOptions())
	started, release := make(chan struct{}, 1), make(chan struct{})
	mustRegister(t, eng, handler, "slow::op", func(ctx context.Context, _ any) (string, error) {
		started <- struct{}{}
		<-release
		return "done", nil
	})
	res := make(chan error, 1)
	go func() {
		v, err := iii.Call[string](testCtx(t), caller, "slow::op", nil)
		if err == nil && v != "done" {
			err = fmt.Errorf("result %q", v)
		}
		res <- err
	}()
	<-started
	drained := make(chan error, 1)
	go func() { drained <- handler.Drain(testCtx(t)) }()
	// The function is withdrawn from the engine: no new work arrives.
	if err := eng.WaitFunctionGone(testCtx(t), "slow::op"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-drained:
		t.Fatalf("Drain returned (%v) while an invocation was running", err)
	default:
	}
	close(release)
	if err := <-res; err != nil {
		t.Fatalf("the running invocation did not complete: %v", err)
	}
	if err := <-drained; err != nil {
		t.Fatal(err)
	}
	if handler.State() != iii.Disconnected {
		t.Fatalf("state after Drain %v", handler.State())
	}
}

func TestConnectionGivesUpAfterMaxRetries(t *testing.T) {
	eng := iiitest.NewEngine(t)
	url := eng.URL
	eng.Close()
	w := iii.RegisterWorker(url, iii.InitOptions{Reconnect: &iii.ReconnectConfig{InitialDelay: time.Millisecond, MaxRetries: 2}})
	defer w.Shutdown()
	err := w.WaitConnected(testCtx(t))
	if !errors.Is(err, iii.ErrConnectionFailed) || w.State() != iii.Failed {
		t.Fatalf("got %v in state %v, want ErrConnectionFailed", err, w.State())
	}
	if _, err := w.Trigger(testCtx(t), iii.TriggerRequest{FunctionID: "x::y"}); !errors.Is(err, iii.ErrConnectionFailed) {
		t.Fatalf("call on a failed worker: %v", err)
	}
}

func TestInvalidAddressFailsAtOnce(t *testing.T) {
	w := iii.RegisterWorker("http://127.0.0.1:1", iii.InitOptions{})
	defer w.Shutdown()
	if err := w.WaitConnected(testCtx(t)); err == nil || w.State() != iii.Failed {
		t.Fatalf("got %v in state %v", err, w.State())
	}
}

func TestConnectionActorRestartedBySupervisorReconnectsAndReplays(t *testing.T) {
	eng, handler, caller := twoWorkers(t)
	mustRegister(t, eng, handler, "echo::it", func(ctx context.Context, s string) (string, error) { return s, nil })
	first := handler.WorkerID()
	iii.CrashConnectionActor(handler)
	waitFor(t, "the restarted actor's new connection", func() bool {
		return handler.State() == iii.Connected && handler.WorkerID() != first && eng.Functions()["echo::it"] == handler.WorkerID()
	})
	j := describe(eng.Journal(handler.WorkerID()))
	if len(j) < 2 || j[0] != "reattach" || j[1] != "registerfunction echo::it" {
		t.Fatalf("after the restart: %q", j)
	}
	if got, err := iii.Call[string](testCtx(t), caller, "echo::it", "still serving"); err != nil || got != "still serving" {
		t.Fatalf("after the restart: %q %v", got, err)
	}
}

func TestShutdownDoesNotWaitForAHandlerThatIgnoresItsContext(t *testing.T) {
	eng := iiitest.NewEngine(t)
	handler := iii.RegisterWorker(eng.URL, fastOptions())
	caller := newWorker(t, eng, fastOptions())
	release, started := make(chan struct{}), make(chan struct{}, 1)
	mustRegister(t, eng, handler, "stuck::op", func(ctx context.Context, _ any) (any, error) {
		started <- struct{}{}
		<-release // ignores ctx
		return nil, nil
	})
	go caller.Trigger(context.Background(), iii.TriggerRequest{FunctionID: "stuck::op", Action: iii.Void()})
	<-started
	done := make(chan struct{})
	go func() {
		handler.Shutdown()
		close(done)
	}()
	select {
	case <-done:
	case <-testCtx(t).Done():
		t.Fatal("Shutdown waited for a handler that ignores its context")
	}
	close(release) // let its goroutine end before the leak check
	waitFor(t, "the stuck handler to return", func() bool { return handler.Stats().Running == 0 })
}
