package connection

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/iii-go/iii/actors"
	"github.com/iii-go/iii/connection/wire"
	"github.com/iii-go/iii/test/iiitest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// nopRouter opens sockets at once and ignores everything else.
type nopRouter struct{}

func (nopRouter) Frame(*Socket, wire.Message)   {}
func (nopRouter) Opened(_ *Socket, done func()) { done() }
func (nopRouter) Closed(*Socket, error)         {}
func (nopRouter) Failed(error)                  {}

func TestBackoffDelaysDoubleUpToTheCapWithJitter(t *testing.T) {
	b := DefaultBackoff
	b.Jitter = 0
	want := []time.Duration{1, 2, 4, 8, 16, 30, 30}
	for n, w := range want {
		if got := b.Delay(n); got != w*time.Second {
			t.Errorf("Delay(%d) = %v, want %v", n, got, w*time.Second)
		}
	}
	b.Jitter = 0.3
	for range 1000 {
		if d := b.Delay(0); d < 700*time.Millisecond || d > 1300*time.Millisecond {
			t.Fatalf("Delay(0) with ±30%% jitter = %v", d)
		}
	}
}

// TestBackoffResetsAfterASuccessfulConnection: after an outage long enough
// to grow the delay, a later outage starts again from the initial delay
// (the official Go SDK never resets it).
func TestBackoffResetsAfterASuccessfulConnection(t *testing.T) {
	eng := iiitest.NewEngine(t)
	sys := actors.NewSystem(nil)
	defer sys.Stop(time.Second)
	retries := make(chan time.Duration, 100)
	states := make(chan State, 100)
	c, err := New(sys, Config{
		URL: eng.URL,
		// Stable: any registered connection counts as a working one.
		Backoff: Backoff{Initial: 10 * time.Millisecond, Max: time.Hour, Multiplier: 4, MaxRetries: -1, Stable: time.Nanosecond},
		OnRetry: func(_ int, d time.Duration) { retries <- d },
		OnState: func(s State) { states <- s },
		Router:  nopRouter{},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	next := func() time.Duration {
		t.Helper()
		select {
		case d := <-retries:
			return d
		case <-ctx.Done():
			t.Fatalf("no retry scheduled; state %v, last error %v", c.State(), c.LastError())
			return 0
		}
	}
	eng.Stop()
	for _, want := range []time.Duration{10, 40, 160} {
		if d := next(); d != want*time.Millisecond {
			t.Fatalf("outage delay %v, want %v", d, want*time.Millisecond)
		}
	}
	if err := eng.Resume(); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	for len(retries) > 0 { // whatever was scheduled before the reconnection
		<-retries
	}
	if !eng.DropWorker(c.WorkerID()) {
		t.Fatalf("worker %q not connected; engine has %+v", c.WorkerID(), eng.Workers())
	}
	if d := next(); d != 10*time.Millisecond {
		t.Fatalf("after a successful connection the next outage waited %v, want the initial 10ms", d)
	}
}

// watch fails the test if f has not returned within 20 s.
func watch(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("%s did not return", what)
	}
}

// A panic half way through an update (here: inside open, with the lock
// held) is reconciled by the restart: the connection comes back.
func TestRestartAfterAPanicMidUpdateReconnects(t *testing.T) {
	eng := iiitest.NewEngine(t)
	sys := actors.NewSystem(nil)
	defer sys.Stop(time.Second)
	var panicked atomic.Bool
	openHook = func() {
		if panicked.CompareAndSwap(false, true) {
			panic("half way through open")
		}
	}
	defer func() { openHook = nil }()
	c, err := New(sys, Config{URL: eng.URL, Router: nopRouter{},
		Backoff: Backoff{Initial: 10 * time.Millisecond, Max: 50 * time.Millisecond, Multiplier: 2, MaxRetries: -1}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	watch(t, "WaitConnected", func() {
		if err := c.WaitConnected(context.Background()); err != nil {
			t.Errorf("WaitConnected: %v", err)
		}
	})
	if !panicked.Load() {
		t.Fatal("the hook never ran")
	}
}

// When the restart budget is spent the actor stops: the socket is closed,
// the state is Failed, and Close returns at once.
func TestStoppedActorClosesItsSocketAndFails(t *testing.T) {
	eng := iiitest.NewEngine(t)
	sys := actors.NewSystem(nil)
	defer sys.Stop(time.Second)
	c, err := New(sys, Config{URL: eng.URL, Router: nopRouter{}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	for range actors.MaxRestarts + 1 {
		c.sys.Send(c.pid, &crash{})
	}
	for c.State() != Failed {
		if ctx.Err() != nil {
			t.Fatalf("state %v after the actor stopped", c.State())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := c.WaitConnected(ctx); !errors.Is(err, ErrFailed) {
		t.Fatalf("WaitConnected after the actor stopped: %v", err)
	}
	if ok := c.Close(ctx); !ok {
		t.Fatal("Close did not finish")
	}
	if c.Current() != nil {
		t.Fatal("a socket is still open")
	}
}
