package invocation

import (
	"context"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iii-go/iii/actors"
	"github.com/iii-go/iii/connection/wire"
	"github.com/iii-go/iii/internal/faults"
)

// poolSizes returns in's actors (spawned and not retired), listed members,
// mailboxes and idle actors.
func poolSizes(in *Inbound) (actorsN, all, mailboxes, idle int) {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.actorsN, len(in.all), len(in.mailboxes), len(in.idle)
}

// After a burst, the actors idle for IdleTimeout are stopped but for the
// KeepIdle most recent: their goroutines end and the pool forgets them.
// The next burst grows the pool again and every task runs.
func TestInboundStopsActorsIdleTooLongAndGrowsAgain(t *testing.T) {
	const n, keep = 100, 4
	sys := actors.NewSystem(nil)
	var release chan struct{}
	var running sync.WaitGroup
	var ran atomic.Int64
	in, err := NewInbound(sys, Config{Exec: func(*Task) { ran.Add(1); running.Done(); <-release },
		Limit: n, MaxBacklog: 1, MaxBacklogBytes: 1, IdleTimeout: 30 * time.Millisecond, KeepIdle: keep})
	if err != nil {
		t.Fatal(err)
	}
	before := runtime.NumGoroutine()
	for round := range 2 {
		release = make(chan struct{})
		running.Add(n)
		for range n {
			in.Dispatch(NewTask(nil, &wire.InvokeFunction{}))
		}
		running.Wait() // n actors run at once
		if a, _, _, _ := poolSizes(in); a != n {
			t.Fatalf("round %d: %d actors for %d tasks at once", round, a, n)
		}
		close(release)
		if err := in.Idle(context.Background()); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			a, all, mbs, idle := poolSizes(in)
			if a == keep && all == keep && mbs == keep && idle == keep {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: %d actors, %d members, %d mailboxes, %d idle; want %d of each", round, a, all, mbs, idle, keep)
			}
			time.Sleep(5 * time.Millisecond)
		}
		// The stopped actors' goroutines have ended (their mailboxes
		// were forgotten only then): about keep goroutines are left.
		if g := runtime.NumGoroutine(); g > before+keep+8 {
			t.Fatalf("round %d: %d goroutines, %d before the burst", round, g, before)
		}
	}
	if got := ran.Load(); got != 2*n || in.Refused() != 0 {
		t.Fatalf("%d tasks ran, %d refused; want %d and 0", got, in.Refused(), 2*n)
	}
	stopInbound(in, sys)
}

// Actors retired while tasks keep coming, from several goroutines, with a
// timeout so short that actors retire between tasks: every task runs once,
// none is sent to a stopped actor (it would never run, and Idle would
// wait for ever).
func TestInboundRetiringRacesDispatchWithoutLosingTasks(t *testing.T) {
	sys := actors.NewSystem(nil)
	var ran, retirements atomic.Int64
	log := slog.New(onLog(func(msg string) {
		if msg == "iii: stopped idle invocation actors" {
			retirements.Add(1)
		}
	}))
	in, err := NewInbound(sys, Config{Log: log, Exec: func(*Task) {
		ran.Add(1)
		if ran.Load()%7 == 0 {
			time.Sleep(100 * time.Microsecond)
		}
	}, Limit: 32, MaxBacklog: 1 << 20, MaxBacklogBytes: 1 << 30, IdleTimeout: time.Microsecond, KeepIdle: 1})
	if err != nil {
		t.Fatal(err)
	}
	const senders, each = 4, 2000
	var wg sync.WaitGroup
	for range senders {
		wg.Go(func() {
			for i := range each {
				in.Dispatch(NewTask(nil, &wire.InvokeFunction{}))
				if i%50 == 0 {
					time.Sleep(200 * time.Microsecond) // let actors go idle and retire
				}
			}
		})
	}
	wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := in.Idle(ctx); err != nil {
		r, q, _ := in.Counts()
		t.Fatalf("tasks lost: %d ran of %d, %d running, %d queued", ran.Load(), senders*each, r, q)
	}
	if got := ran.Load(); got != senders*each || in.Refused() != 0 {
		t.Fatalf("%d tasks ran, %d refused; want %d", got, in.Refused(), senders*each)
	}
	if retirements.Load() == 0 {
		t.Fatal("no actor was retired: the test raced nothing")
	}
	t.Logf("%d retirements", retirements.Load())
	stopInbound(in, sys)
}

// The same race with every actor made to fail over and over (each failure
// restarts it): a task ends once, run or failed, whether its actor is
// listed idle, busy, restarting or retired.
func TestInboundRetiringRacesRestartsWithoutLosingTasks(t *testing.T) {
	sys := actors.NewSystem(nil)
	var ended atomic.Int64
	in, err := NewInbound(sys, Config{
		Exec:  func(*Task) { ended.Add(1) },
		Fail:  func(*Task, any) { ended.Add(1) },
		Limit: 16, MaxBacklog: 1 << 20, MaxBacklogBytes: 1 << 30, IdleTimeout: time.Microsecond, KeepIdle: 1})
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var crasher sync.WaitGroup
	crasher.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(300 * time.Microsecond):
				faults.Crash("invocation", in, "")
			}
		}
	})
	const n = 6000
	for i := range n {
		in.Dispatch(NewTask(nil, &wire.InvokeFunction{}))
		if i%40 == 0 {
			time.Sleep(200 * time.Microsecond)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = in.Idle(ctx)
	close(stop)
	crasher.Wait()
	if err != nil {
		r, q, _ := in.Counts()
		t.Fatalf("tasks lost: %d ended of %d, %d running, %d queued", ended.Load(), n, r, q)
	}
	if got := ended.Load(); got != n || in.Refused() != 0 {
		t.Fatalf("%d tasks ended, %d refused; want %d", got, in.Refused(), n)
	}
	if in.restarts.Load() == 0 {
		t.Fatal("no actor was restarted: the test raced nothing")
	}
	stopInbound(in, sys)
}
