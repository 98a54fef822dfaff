package connection

import (
	"context"
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
		URL:     eng.URL,
		Backoff: Backoff{Initial: 10 * time.Millisecond, Max: time.Hour, Multiplier: 4, MaxRetries: -1},
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
