package invocation

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/iii-go/iii/actors"
	"github.com/iii-go/iii/connection/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestPendingCompletesByIDAndIgnoresUnknownAndLateResults(t *testing.T) {
	p := NewPending()
	c, err := p.Add("f::one")
	if err != nil {
		t.Fatal(err)
	}
	if p.Complete(&wire.InvocationResult{InvocationID: wire.NewUUID()}) {
		t.Fatal("a result with an unknown id completed something")
	}
	res := &wire.InvocationResult{InvocationID: c.ID, Result: []byte(`1`)}
	if !p.Complete(res) {
		t.Fatal("the call's result was not taken")
	}
	if o := p.Wait(context.Background(), c, time.Second); o.Result != res || o.Err != nil {
		t.Fatalf("outcome %+v", o)
	}
	if p.Complete(res) || p.Len() != 0 {
		t.Fatal("a second result for the same id was taken")
	}
}

func TestPendingTimeoutForgetsTheCall(t *testing.T) {
	p := NewPending()
	c, _ := p.Add("f::slow")
	if o := p.Wait(context.Background(), c, time.Millisecond); !errors.Is(o.Err, ErrTimeout) {
		t.Fatalf("outcome %+v", o)
	}
	if p.Len() != 0 || p.Complete(&wire.InvocationResult{InvocationID: c.ID}) {
		t.Fatal("the timed-out call is still pending")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c2, _ := p.Add("f::cancelled")
	if o := p.Wait(ctx, c2, time.Hour); !errors.Is(o.Err, context.Canceled) {
		t.Fatalf("outcome %+v", o)
	}
}

func TestPendingFailAllClosesTheTable(t *testing.T) {
	p := NewPending()
	a, _ := p.Add("f::a")
	b, _ := p.Add("f::b")
	closed := errors.New("closed")
	if n := p.FailAll(closed, true); n != 2 {
		t.Fatalf("failed %d calls", n)
	}
	for _, c := range []*Call{a, b} {
		if o := p.Wait(context.Background(), c, time.Second); !errors.Is(o.Err, closed) {
			t.Fatalf("outcome %+v", o)
		}
	}
	if _, err := p.Add("f::late"); !errors.Is(err, closed) {
		t.Fatalf("Add after close: %v", err)
	}
}

func TestPendingRacesBetweenResultAndTimeoutDeliverExactlyOneOutcome(t *testing.T) {
	p := NewPending()
	var wg sync.WaitGroup
	for range 2000 {
		c, _ := p.Add("f::race")
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.Complete(&wire.InvocationResult{InvocationID: c.ID})
		}()
		o := p.Wait(context.Background(), c, time.Microsecond)
		if (o.Result == nil) == (o.Err == nil) {
			t.Fatalf("outcome %+v", o)
		}
	}
	wg.Wait()
	if p.Len() != 0 {
		t.Fatalf("%d calls left", p.Len())
	}
}

func TestInboundRunsAtMostLimitHandlersAndQueuesTheRest(t *testing.T) {
	sys := actors.NewSystem(nil)
	release := make(chan struct{})
	var running, peak, done atomic.Int32
	in, err := NewInbound(sys, func(t *Task) {
		n := running.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		<-release
		running.Add(-1)
		done.Add(1)
	}, 4, 100)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		in.Dispatch(NewTask(nil, &wire.InvokeFunction{}))
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, q := in.Counts()
		if r == 4 && q == 16 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("running %d, queued %d; want 4 and 16", r, q)
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	if err := in.Idle(context.Background()); err != nil {
		t.Fatal(err)
	}
	if done.Load() != 20 || peak.Load() != 4 {
		t.Fatalf("%d done, peak concurrency %d", done.Load(), peak.Load())
	}
	in.Close()
	sys.Stop(5 * time.Second)
	in.Wait()
}

func TestInboundBlocksTheDispatcherWhenTheBacklogIsFull(t *testing.T) {
	sys := actors.NewSystem(nil)
	release := make(chan struct{})
	in, err := NewInbound(sys, func(*Task) { <-release }, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 { // one running, two queued
		in.Dispatch(NewTask(nil, &wire.InvokeFunction{}))
	}
	blocked := make(chan struct{})
	go func() {
		in.Dispatch(NewTask(nil, &wire.InvokeFunction{}))
		close(blocked)
	}()
	select {
	case <-blocked:
		t.Fatal("Dispatch returned with the backlog full")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	<-blocked
	if err := in.Idle(context.Background()); err != nil {
		t.Fatal(err)
	}
	in.Close()
	sys.Stop(5 * time.Second)
	in.Wait()
}
