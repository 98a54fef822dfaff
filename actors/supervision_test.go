package actors

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// syncBuffer is a bytes.Buffer safe for the logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func waitFailure(t *testing.T, got <-chan *Failure) *Failure {
	t.Helper()
	select {
	case f := <-got:
		return f
	case <-time.After(10 * time.Second):
		t.Fatal("the system did not fail")
		return nil
	}
}

func TestSpentRestartBudgetFailsTheSystem(t *testing.T) {
	var logs syncBuffer
	sys := NewSystem(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})))
	defer sys.Stop(time.Second)
	got := make(chan *Failure, 1)
	sys.OnFailure(func(f *Failure) { got <- f })
	var starts atomic.Int32
	a, err := sys.Spawn("a", actor.PropsFromProducer(func() actor.Actor { return &counter{started: &starts} }, actor.WithDispatcher(sys.Dispatcher)))
	if err != nil {
		t.Fatal(err)
	}
	for range MaxRestarts + 1 {
		sys.Send(a, boom{})
	}
	f := waitFailure(t, got)
	if !errors.Is(f, ErrFailed) || f.Actor != a.Id || f.Failures != MaxRestarts+1 || !strings.Contains(f.Error(), "boom") {
		t.Fatalf("failure = %#v (%v)", f, f)
	}
	if !errors.Is(sys.Err(), ErrFailed) {
		t.Fatalf("Err() = %v", sys.Err())
	}
	// A request to the stopped actor ends with the failure instead of waiting for good.
	fut := NewFuture[int]()
	if _, err := Request(context.Background(), sys, a, fut, &get{reply: fut}); !errors.Is(err, ErrFailed) {
		t.Fatalf("request after the failure: %v", err)
	}
	l := logs.String()
	if strings.Count(l, "level=WARN") != MaxRestarts || strings.Count(l, "directive=restart") != MaxRestarts ||
		strings.Count(l, "directive=stop") != 1 {
		t.Fatalf("the directives applied are not logged as they are:\n%s", l)
	}
}

func TestCriticalChildStoppingFailsTheSystem(t *testing.T) {
	sys := NewSystem(nil)
	defer sys.Stop(time.Second)
	got := make(chan *Failure, 1)
	sys.OnFailure(func(f *Failure) { got <- f })
	plain, _ := sys.Spawn("plain", actor.PropsFromFunc(func(actor.Context) {}))
	sys.AS.Root.Stop(plain) // not critical: stopping it is fine
	crit, err := sys.SpawnCritical("crit", actor.PropsFromFunc(func(actor.Context) {}))
	if err != nil {
		t.Fatal(err)
	}
	sys.AS.Root.Stop(crit)
	f := waitFailure(t, got)
	if f.Actor != crit.Id || !strings.Contains(f.Error(), "stopped unexpectedly") {
		t.Fatalf("failure = %v", f)
	}
}

func TestStopIsNotAFailure(t *testing.T) {
	sys := NewSystem(nil)
	var failed atomic.Bool
	sys.OnFailure(func(*Failure) { failed.Store(true) })
	if _, err := sys.SpawnCritical("crit", actor.PropsFromFunc(func(actor.Context) {})); err != nil {
		t.Fatal(err)
	}
	sys.Stop(time.Second)
	if failed.Load() || !errors.Is(sys.Err(), ErrStopped) {
		t.Fatalf("Stop counted as a failure (err %v)", sys.Err())
	}
}

func TestRequestEndsWhenTheSystemStops(t *testing.T) {
	sys := NewSystem(nil)
	got := make(chan struct{})
	pid, _ := sys.Spawn("mute", actor.PropsFromFunc(func(ctx actor.Context) { // never answers
		if ctx.Message() == "hello" {
			close(got)
		}
	}))
	errc := make(chan error, 1)
	go func() {
		f := NewFuture[int]()
		_, err := Request(context.Background(), sys, pid, f, "hello")
		errc <- err
	}()
	<-got // the request is in flight
	sys.Stop(time.Second)
	if err := <-errc; !errors.Is(err, ErrStopped) {
		t.Fatalf("got %v", err)
	}
}

func TestNestedSupervisorsFailuresAreLoggedAtWarn(t *testing.T) {
	var logs syncBuffer
	sys := NewSystem(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})))
	defer sys.Stop(time.Second)
	var starts atomic.Int32
	child := make(chan *actor.PID, 1)
	// A nested supervisor with protoactor's default strategy, like the
	// invocation supervisor.
	_, err := sys.Spawn("nested", actor.PropsFromFunc(func(ctx actor.Context) {
		if _, ok := ctx.Message().(*actor.Started); ok {
			child <- ctx.Spawn(actor.PropsFromProducer(func() actor.Actor { return &counter{started: &starts} }))
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	c := <-child
	sys.Send(c, boom{})
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "directive=restart") {
		if time.Now().After(deadline) {
			t.Fatalf("the nested supervisor's restart was not logged at Warn:\n%s", logs.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestPoolDispatcherRunsWhatIsScheduledAfterClose(t *testing.T) {
	d := newPoolDispatcher(1, 4)
	d.close()
	ran := make(chan struct{})
	d.Schedule(func() { close(ran) })
	select {
	case <-ran:
	case <-time.After(10 * time.Second):
		t.Fatal("a mailbox scheduled after close never ran")
	}
}

// A spawn the root supervisor has not taken ends when the system fails,
// even while the root is busy; one it has taken gets its child.
func TestSpawnEndsWhenTheSystemFails(t *testing.T) {
	sys := NewSystem(nil)
	inProducer, release, blocked := blockingProps(sys)
	taken := make(chan error, 1)
	go func() {
		_, err := sys.Spawn("blocked", blocked)
		taken <- err
	}()
	<-inProducer
	waiting := make(chan error, 1)
	go func() {
		_, err := sys.Spawn("waiting", actor.PropsFromFunc(func(actor.Context) {}))
		waiting <- err
	}()
	sys.fail(&Failure{Actor: "worker/test", Cause: errors.New("test failure")})
	// The root is still in taken's producer: waiting's request is queued
	// behind it, or not sent yet.
	select {
	case err := <-waiting:
		if !errors.Is(err, ErrFailed) {
			t.Fatalf("spawn waiting on a failed system: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a spawn waiting on a failed system did not end")
	}
	if pid, err := sys.Spawn("late", actor.PropsFromFunc(func(actor.Context) {})); !errors.Is(err, ErrFailed) || pid != nil {
		t.Fatalf("spawn on a failed system: %v, %v", pid, err)
	}
	close(release)
	if err := <-taken; err != nil {
		t.Fatalf("a spawn the root had taken before the failure: %v; want its child", err)
	}
	sys.Stop(5 * time.Second)
}

// Spawns of actors on dispatchers of their own, racing the system's
// failure, as a trigger type's: a caller whose spawn fails stops the
// dispatcher it made. Before, a caller gave up on a request the root had
// taken as soon as the system failed; the child the root then made ran on
// a stopped dispatcher, never handled its Stop, and Stop waited its whole
// timeout.
func TestSpawnRacingFailureLeavesNoChildBehind(t *testing.T) {
	for round := range 50 {
		sys, late := newSystemTellingLateStop()
		var dispatchers sync.WaitGroup
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for {
					d := NewOwnDispatcher(&dispatchers, nil)
					props := actor.PropsFromProducer(func() actor.Actor { return &ownStopper{d: d} }, actor.WithDispatcher(d))
					if _, err := sys.Spawn("", props); err != nil {
						d.Stop()
						d.Schedule(func() {}) // let its goroutine see the stop
						if !errors.Is(err, ErrFailed) {
							t.Errorf("Spawn: %v", err)
						}
						return
					}
				}
			})
		}
		time.Sleep(time.Millisecond)
		sys.fail(&Failure{Actor: "worker/test", Cause: errors.New("test failure")})
		wg.Wait()
		sys.Stop(2 * time.Second)
		dispatchers.Wait()
		if late.Load() {
			t.Fatalf("round %d: Stop timed out: a child spawned as the system failed was never stopped", round)
		}
	}
}

// ownStopper is an actor on an OwnDispatcher, which it stops as it stops.
type ownStopper struct{ d *OwnDispatcher }

func (a *ownStopper) Receive(ctx actor.Context) {
	if _, ok := ctx.Message().(*actor.Stopped); ok {
		a.d.Stop()
	}
}

// A producer that panics fails its spawn, not the root supervisor.
func TestSpawnWhoseProducerPanicsFailsThatSpawnOnly(t *testing.T) {
	sys := NewSystem(nil)
	defer sys.Stop(5 * time.Second)
	_, err := sys.Spawn("bad", actor.PropsFromProducer(func() actor.Actor { panic("no actor") }, actor.WithDispatcher(sys.Dispatcher)))
	if err == nil || !strings.Contains(err.Error(), "no actor") {
		t.Fatalf("spawn whose producer panics: %v", err)
	}
	var starts atomic.Int32
	pid, err := sys.Spawn("good", actor.PropsFromProducer(func() actor.Actor { return &counter{started: &starts} }, actor.WithDispatcher(sys.Dispatcher)))
	if err != nil {
		t.Fatalf("spawn after a producer panicked: %v", err)
	}
	sys.Send(pid, inc{})
	f := NewFuture[int]()
	if n, err := Request(context.Background(), sys, pid, f, &get{reply: f}); n != 1 || err != nil {
		t.Fatalf("the child spawned after: %d, %v", n, err)
	}
	if sys.Err() != nil {
		t.Fatalf("the system after a producer panicked: %v", sys.Err())
	}
}

// A child that cannot be restarted is stopped at its first failure, and
// the system fails, seen by the child as it stops.
func TestNoRestartChildFailsTheSystemAtItsFirstFailure(t *testing.T) {
	sys := NewSystem(nil)
	defer sys.Stop(time.Second)
	got := make(chan *Failure, 1)
	sys.OnFailure(func(f *Failure) { got <- f })
	var starts atomic.Int32
	stopping := make(chan error, 1)
	pid, err := sys.SpawnCriticalNoRestart("once", actor.PropsFromFunc(func(ctx actor.Context) {
		switch ctx.Message().(type) {
		case *actor.Started:
			starts.Add(1)
		case boom:
			panic("boom")
		case *actor.Stopping:
			stopping <- sys.Err()
		}
	}, actor.WithDispatcher(sys.Dispatcher)))
	if err != nil {
		t.Fatal(err)
	}
	sys.Send(pid, boom{})
	f := waitFailure(t, got)
	if !errors.Is(f, ErrFailed) || f.Actor != pid.Id || !f.NoRestart || f.Failures != 1 ||
		!strings.Contains(f.Error(), "cannot be restarted") || !strings.Contains(f.Error(), "boom") {
		t.Fatalf("failure = %#v (%v)", f, f)
	}
	select {
	case err := <-stopping:
		if !errors.Is(err, ErrFailed) {
			t.Fatalf("the child stopped before the system failed (Err %v)", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the child was not stopped")
	}
	if n := starts.Load(); n != 1 {
		t.Fatalf("started %d times: it was restarted", n)
	}
}

// A spawn the root supervisor has taken when the system begins to stop
// gets its child: the caller knows of every child made for it. (It gave up
// as soon as the system stopped, and the child the root made next was one
// nobody knew of: a trigger type's caller then stopped the dispatcher the
// child ran on, the child never handled its Stop, and neither did the
// root.)
func TestSpawnTakenWhenTheSystemStopsGetsItsChild(t *testing.T) {
	sys, late := newSystemTellingLateStop()
	inProducer, release, blocked := blockingProps(sys)
	type result struct {
		pid *actor.PID
		err error
	}
	spawned := make(chan result, 1)
	go func() {
		pid, err := sys.Spawn("taken", blocked)
		spawned <- result{pid, err}
	}()
	<-inProducer
	stopped := make(chan struct{})
	go func() { sys.Stop(5 * time.Second); close(stopped) }()
	for sys.Err() == nil {
		time.Sleep(time.Millisecond)
	}
	close(release)
	if r := <-spawned; r.err != nil || r.pid == nil {
		t.Fatalf("a spawn the root had taken when the system stopped: %v, %v; want its child", r.pid, r.err)
	}
	<-stopped
	if late.Load() {
		t.Fatal("the system did not stop in time")
	}
}

// blockingProps returns props whose producer runs on the root supervisor
// as it spawns: it closes inProducer, then waits for release to be closed;
// meanwhile the root answers no spawn.
func blockingProps(sys *System) (inProducer, release chan struct{}, props *actor.Props) {
	inProducer, release = make(chan struct{}), make(chan struct{})
	props = actor.PropsFromProducer(func() actor.Actor {
		close(inProducer)
		<-release
		return &counter{started: new(atomic.Int32)}
	}, actor.WithDispatcher(sys.Dispatcher))
	return inProducer, release, props
}
