package actors

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type counter struct {
	started *atomic.Int32
	state   int
}

type boom struct{}
type get struct{ reply *Future[int] }
type inc struct{}

func (c *counter) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		c.started.Add(1)
	case inc:
		c.state++
	case boom:
		panic("boom")
	case *get:
		m.reply.Complete(c.state, nil)
	}
}

func TestSupervisorRestartsAFailedChildOneForOne(t *testing.T) {
	var logs bytes.Buffer
	sys := NewSystem(slog.New(slog.NewTextHandler(&logs, nil)))
	defer sys.Stop(time.Second)
	var aStarts, bStarts atomic.Int32
	a, err := sys.Spawn("a", actor.PropsFromProducer(func() actor.Actor { return &counter{started: &aStarts} }, actor.WithDispatcher(sys.Dispatcher)))
	if err != nil {
		t.Fatal(err)
	}
	b, err := sys.Spawn("b", actor.PropsFromProducer(func() actor.Actor { return &counter{started: &bStarts} }, actor.WithDispatcher(sys.Dispatcher)))
	if err != nil {
		t.Fatal(err)
	}
	sys.Send(b, inc{})
	sys.Send(a, boom{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	f := NewFuture[int]()
	if _, err := Request(ctx, sys, a, f, &get{reply: f}); err != nil {
		t.Fatalf("the failed actor does not answer after its restart: %v", err)
	}
	if aStarts.Load() != 2 {
		t.Fatalf("a started %d times, want 2 (restarted once)", aStarts.Load())
	}
	f = NewFuture[int]()
	if n, _ := Request(ctx, sys, b, f, &get{reply: f}); n != 1 || bStarts.Load() != 1 {
		t.Fatalf("its sibling was disturbed: state %d, starts %d", n, bStarts.Load())
	}
	if !bytes.Contains(logs.Bytes(), []byte("internal actor failed")) || !bytes.Contains(logs.Bytes(), []byte("boom")) {
		t.Fatalf("the failure was not logged: %s", logs.String())
	}
}

func TestProtoactorInfoChatterStaysOutOfTheLog(t *testing.T) {
	var logs bytes.Buffer
	sys := NewSystem(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	pid, _ := sys.Spawn("x", actor.PropsFromFunc(func(actor.Context) {}))
	sys.AS.Root.Stop(pid)
	time.Sleep(10 * time.Millisecond)
	sys.Send(pid, "to a dead actor") // a dead letter, logged by protoactor at Info
	sys.Stop(time.Second)
	time.Sleep(100 * time.Millisecond) // the dead-letter throttle's goroutine ends
	if bytes.Contains(logs.Bytes(), []byte("DeadLetter")) || bytes.Contains(logs.Bytes(), []byte("actor system started")) {
		t.Fatalf("protoactor info records leaked into the SDK log:\n%s", logs.String())
	}
}

func TestFutureWaitEndsWithItsContext(t *testing.T) {
	f := NewFuture[string]()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := f.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
	if !f.Complete("x", nil) || f.Complete("y", nil) {
		t.Fatal("Complete must succeed once")
	}
	if v, err := f.Wait(context.Background()); v != "x" || err != nil {
		t.Fatalf("got %q %v", v, err)
	}
}

func TestSpawnAfterStopFails(t *testing.T) {
	sys := NewSystem(nil)
	sys.Stop(time.Second)
	if _, err := sys.Spawn("late", actor.PropsFromFunc(func(actor.Context) {})); !errors.Is(err, ErrStopped) {
		t.Fatalf("got %v", err)
	}
}

// Spawns racing Stop: a request the root takes once it is stopping is
// refused, not spawned. (protoactor hands a stopping actor its messages: a
// child spawned after the root had stopped its others was never stopped,
// the root never finished stopping, and Stop waited its whole timeout.)
func TestSpawnRacingStopLeavesNoChildBehind(t *testing.T) {
	for round := range 50 {
		sys, late := newSystemTellingLateStop()
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for {
					if _, err := sys.Spawn("", actor.PropsFromFunc(func(actor.Context) {})); err != nil {
						if !errors.Is(err, ErrStopped) {
							t.Errorf("Spawn: %v", err)
						}
						return
					}
				}
			})
		}
		time.Sleep(time.Millisecond)
		sys.Stop(2 * time.Second)
		wg.Wait()
		if late.Load() {
			t.Fatalf("round %d: Stop timed out: a child spawned while the root stopped was never stopped", round)
		}
	}
}

// newSystemTellingLateStop returns a new system and a flag set if its
// Stop times out (its log says so).
func newSystemTellingLateStop() (*System, *atomic.Bool) {
	late := new(atomic.Bool)
	sys := NewSystem(slog.New(onMessage(func(msg string) {
		if msg == "iii: actors did not stop in time" {
			late.Store(true)
		}
	})))
	return sys, late
}

// onMessage is a slog handler that hands every record's message to fn.
type onMessage func(msg string)

func (onMessage) Enabled(context.Context, slog.Level) bool        { return true }
func (h onMessage) Handle(_ context.Context, r slog.Record) error { h(r.Message); return nil }
func (h onMessage) WithAttrs([]slog.Attr) slog.Handler            { return h }
func (h onMessage) WithGroup(string) slog.Handler                 { return h }
