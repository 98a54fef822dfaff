package invocation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/iii-go/iii/actors"
	"github.com/iii-go/iii/connection/wire"
	"github.com/iii-go/iii/internal/faults"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestPendingCompletesByIDAndIgnoresUnknownAndLateResults(t *testing.T) {
	p := NewPending()
	c, err := p.Add()
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
	c, _ := p.Add()
	if o := p.Wait(context.Background(), c, time.Millisecond); !errors.Is(o.Err, ErrTimeout) {
		t.Fatalf("outcome %+v", o)
	}
	if p.Len() != 0 || p.Complete(&wire.InvocationResult{InvocationID: c.ID}) {
		t.Fatal("the timed-out call is still pending")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c2, _ := p.Add()
	if o := p.Wait(ctx, c2, time.Hour); !errors.Is(o.Err, context.Canceled) {
		t.Fatalf("outcome %+v", o)
	}
}

func TestPendingFailAllClosesTheTable(t *testing.T) {
	p := NewPending()
	a, _ := p.Add()
	b, _ := p.Add()
	closed := errors.New("closed")
	if n := p.FailAll(closed, true); n != 2 {
		t.Fatalf("failed %d calls", n)
	}
	for _, c := range []*Call{a, b} {
		if o := p.Wait(context.Background(), c, time.Second); !errors.Is(o.Err, closed) {
			t.Fatalf("outcome %+v", o)
		}
	}
	if _, err := p.Add(); !errors.Is(err, closed) {
		t.Fatalf("Add after close: %v", err)
	}
}

func TestPendingRacesBetweenResultAndTimeoutDeliverExactlyOneOutcome(t *testing.T) {
	p := NewPending()
	var wg sync.WaitGroup
	for range 2000 {
		c, _ := p.Add()
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
	in, err := NewInbound(sys, Config{Exec: func(t *Task) {
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
	}, Limit: 4, MaxBacklog: 100, MaxBacklogBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		in.Dispatch(NewTask(nil, &wire.InvokeFunction{}))
	}
	waitCounts(t, in, 4, 16)
	for running.Load() != 4 {
		time.Sleep(time.Millisecond)
	}
	close(release)
	if err := in.Idle(context.Background()); err != nil {
		t.Fatal(err)
	}
	if done.Load() != 20 || peak.Load() != 4 || in.Refused() != 0 {
		t.Fatalf("%d done, peak concurrency %d, %d refused", done.Load(), peak.Load(), in.Refused())
	}
	stopInbound(in, sys)
}

// waitCounts waits until in has running tasks running and queued queued.
func waitCounts(t *testing.T, in *Inbound, running, queued int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, q, _ := in.Counts()
		if r == running && q == queued {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("running %d, queued %d; want %d and %d", r, q, running, queued)
		}
		time.Sleep(time.Millisecond)
	}
}

func stopInbound(in *Inbound, sys *actors.System) {
	in.Close()
	sys.Stop(5 * time.Second)
	in.Wait()
}

// refusals records the tasks an Inbound refuses.
type refusals struct {
	mu  sync.Mutex
	fns []string
}

func (r *refusals) refuse(t *Task) {
	r.mu.Lock()
	r.fns = append(r.fns, t.Msg.FunctionID)
	r.mu.Unlock()
}

func (r *refusals) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.fns...)
}

// The read loop must never wait for a handler: it also reads the results
// of the handlers' own calls.
func TestInboundRefusesAtOnceWhenEverySlotIsBusyAndTheBacklogIsFull(t *testing.T) {
	sys := actors.NewSystem(nil)
	release := make(chan struct{})
	var ref refusals
	in, err := NewInbound(sys, Config{Exec: func(*Task) { <-release }, Refuse: ref.refuse,
		Limit: 1, MaxBacklog: 2, MaxBacklogBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	// No wait for the first to start: a task waiting for an actor being
	// spawned takes no room in the backlog.
	for _, id := range []string{"f::0", "f::1", "f::2", "f::3", "f::4"} { // one runs, two queue, two are refused
		in.Dispatch(NewTask(nil, &wire.InvokeFunction{FunctionID: id}))
	}
	if got := ref.list(); len(got) != 2 || got[0] != "f::3" || got[1] != "f::4" || in.Refused() != 2 {
		t.Fatalf("refused %v (count %d)", got, in.Refused())
	}
	waitCounts(t, in, 1, 2)
	close(release)
	if err := in.Idle(context.Background()); err != nil {
		t.Fatal(err)
	}
	stopInbound(in, sys)
}

func TestInboundBoundsTheBacklogInBytes(t *testing.T) {
	sys := actors.NewSystem(nil)
	release := make(chan struct{})
	var ref refusals
	var ran atomic.Int32
	started := make(chan struct{}, 1)
	in, err := NewInbound(sys, Config{Exec: func(*Task) { started <- struct{}{}; <-release; ran.Add(1) }, Refuse: ref.refuse,
		Limit: 1, MaxBacklog: 100, MaxBacklogBytes: 3000})
	if err != nil {
		t.Fatal(err)
	}
	kib := func(id string, n int) *Task {
		return NewTask(nil, &wire.InvokeFunction{FunctionID: id, Data: make([]byte, n)})
	}
	in.Dispatch(kib("running", 1000))
	<-started
	for i := range 5 {
		in.Dispatch(kib(fmt.Sprint("q", i), 1000)) // three fit in 3000 bytes
	}
	if _, q, b := in.Counts(); q != 3 || b != 3000 || in.Refused() != 2 {
		t.Fatalf("queued %d (%d bytes), refused %v", q, b, ref.list())
	}
	close(release)
	for range 3 {
		<-started
	}
	if err := in.Idle(context.Background()); err != nil {
		t.Fatal(err)
	}
	// A task bigger than the bound still fits in an empty backlog.
	release = make(chan struct{})
	in.Dispatch(kib("running", 1))
	<-started
	in.Dispatch(kib("big", 10000))
	if _, q, b := in.Counts(); q != 1 || b != 10000 || in.Refused() != 2 {
		t.Fatalf("queued %d (%d bytes), refused %v", q, b, ref.list())
	}
	close(release)
	<-started
	if err := in.Idle(context.Background()); err != nil {
		t.Fatal(err)
	}
	if ran.Load() != 6 {
		t.Fatalf("%d ran", ran.Load())
	}
	stopInbound(in, sys)
}

// failures records the tasks an Inbound reports as failed.
type failures struct {
	mu      sync.Mutex
	reasons map[string]any
}

func (f *failures) fail(t *Task, reason any) {
	f.mu.Lock()
	if f.reasons == nil {
		f.reasons = map[string]any{}
	}
	f.reasons[t.Msg.FunctionID] = reason
	f.mu.Unlock()
}

func (f *failures) get(id string) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reasons[id]
}

// A task whose executor panics or ends its goroutine still gets a reply
// and gives its slot back: the pool keeps its size however often it
// happens (well past protoactor's default restart budget of 10 in 10 s).
func TestInboundRepliesToTasksWhoseExecutorFailsAndKeepsThePool(t *testing.T) {
	sys := actors.NewSystem(nil)
	var fl failures
	var ok atomic.Int32
	var both sync.WaitGroup
	in, err := NewInbound(sys, Config{Exec: func(t *Task) {
		switch t.Msg.FunctionID[:2] {
		case "p:":
			panic("boom " + t.Msg.FunctionID)
		case "g:":
			runtime.Goexit()
		case "b:":
			both.Done()
			both.Wait()
		}
		ok.Add(1)
	}, Fail: fl.fail, Limit: 2, MaxBacklog: 100, MaxBacklogBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	const rounds = 15
	for i := range rounds {
		for _, kind := range []string{"p:", "g:", "ok"} {
			in.Dispatch(NewTask(nil, &wire.InvokeFunction{FunctionID: fmt.Sprint(kind, i)}))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := in.Idle(ctx); err != nil {
		r, q, _ := in.Counts()
		t.Fatalf("never idle (running %d, queued %d): the failed tasks kept their slots", r, q)
	}
	for i := range rounds {
		if got := fl.get(fmt.Sprint("p:", i)); got != fmt.Sprint("boom p:", i) {
			t.Fatalf("panicking task %d: reason %v", i, got)
		}
		if got := fl.get(fmt.Sprint("g:", i)); got != ErrGoexit {
			t.Fatalf("Goexit task %d: reason %v", i, got)
		}
	}
	if ok.Load() != rounds {
		t.Fatalf("%d good tasks ran", ok.Load())
	}
	// Both slots still work: two tasks that wait for each other finish.
	both.Add(2)
	in.Dispatch(NewTask(nil, &wire.InvokeFunction{FunctionID: "b:1"}))
	in.Dispatch(NewTask(nil, &wire.InvokeFunction{FunctionID: "b:2"}))
	if err := in.Idle(ctx); err != nil {
		t.Fatal("two tasks never ran at once: the pool shrank")
	}
	stopInbound(in, sys)
}

// An invocation actor that fails in its own code, idle or busy, is
// restarted into the pool exactly once: the pool keeps its size and never
// runs more tasks at once than its limit.
func TestInboundRestartsFailedActorsWithoutGrowingOrShrinkingThePool(t *testing.T) {
	sys := actors.NewSystem(nil)
	var running, peak atomic.Int32
	gate := make(chan chan struct{}, 1)
	in, err := NewInbound(sys, Config{Exec: func(t *Task) {
		n := running.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		release := <-gate
		gate <- release
		<-release
		running.Add(-1)
	}, Limit: 2, MaxBacklog: 100, MaxBacklogBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	round := func(tasks, wantRunning, wantQueued int, crash bool) {
		t.Helper()
		release := make(chan struct{})
		gate <- release
		for range tasks {
			in.Dispatch(NewTask(nil, &wire.InvokeFunction{FunctionID: "f"}))
		}
		waitCounts(t, in, wantRunning, wantQueued)
		for running.Load() != int32(wantRunning) {
			time.Sleep(time.Millisecond)
		}
		if crash { // both actors are busy: each fails after its tasks
			faults.Crash("invocation", in, "")
		}
		close(release)
		if err := in.Idle(context.Background()); err != nil {
			t.Fatal(err)
		}
		<-gate
	}
	round(2, 2, 0, false) // spawns both actors
	faults.Crash("invocation", in, "")
	waitRestarts(t, in, 2)
	round(3, 2, 1, true)
	waitRestarts(t, in, 4)
	round(3, 2, 1, false)
	if p := peak.Load(); p != 2 {
		t.Fatalf("peak concurrency %d, want the limit 2", p)
	}
	stopInbound(in, sys)
}

func waitRestarts(t *testing.T, in *Inbound, n int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for in.restarts.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d restarts, want %d", in.restarts.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// onLog is a slog handler that hands every record's message to fn.
type onLog func(msg string)

func (onLog) Enabled(context.Context, slog.Level) bool        { return true }
func (h onLog) Handle(_ context.Context, r slog.Record) error { h(r.Message); return nil }
func (h onLog) WithAttrs([]slog.Attr) slog.Handler            { return h }
func (h onLog) WithGroup(string) slog.Handler                 { return h }

// idleLen returns the length of in's idle list.
func idleLen(in *Inbound) int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.idle)
}

// An idle actor that fails while a task is on its way to it (held by its
// suspended mailbox until the restart) runs that task after its restart,
// and is not listed as idle meanwhile: listed, it would be handed a second
// task (past the limit) and then listed twice.
func TestInboundRestartedActorWithAHeldTaskIsNotListedIdle(t *testing.T) {
	sys := actors.NewSystem(nil)
	heldRuns := make(chan struct{})
	release := make(chan struct{})
	var in *Inbound
	var dispatched atomic.Bool
	log := slog.New(onLog(func(msg string) {
		// The supervisor is about to restart the failed actor, whose
		// mailbox is suspended: the task waits there for the restart.
		if strings.Contains(msg, "invocation actor failed") && dispatched.CompareAndSwap(false, true) {
			in.Dispatch(NewTask(nil, &wire.InvokeFunction{FunctionID: "held"}))
		}
	}))
	in, err := NewInbound(sys, Config{Exec: func(t *Task) {
		switch t.Msg.FunctionID {
		case "held":
			close(heldRuns)
			<-release
		case "next":
			<-release
		}
	}, Limit: 1, MaxBacklog: 100, MaxBacklogBytes: 1 << 20, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	in.Dispatch(NewTask(nil, &wire.InvokeFunction{FunctionID: "warm"})) // spawns the one actor
	if err := in.Idle(context.Background()); err != nil {
		t.Fatal(err)
	}
	faults.Crash("invocation", in, "")
	select {
	case <-heldRuns:
	case <-time.After(10 * time.Second):
		t.Fatal("the task held by the failed actor never ran")
	}
	if n := idleLen(in); n != 0 {
		t.Fatalf("the actor running the held task is listed idle (%d entries)", n)
	}
	in.Dispatch(NewTask(nil, &wire.InvokeFunction{FunctionID: "next"}))
	if r, q, _ := in.Counts(); r != 1 || q != 1 {
		t.Fatalf("running %d, queued %d with a limit of 1: a busy actor was handed a task", r, q)
	}
	close(release)
	if err := in.Idle(context.Background()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for idleLen(in) != 1 { // the actor parks after its last task, once
		if time.Now().After(deadline) {
			t.Fatalf("%d idle entries for one actor", idleLen(in))
		}
		time.Sleep(time.Millisecond)
	}
	stopInbound(in, sys)
}

// The invocation supervisor is not restarted (protoactor's restart would
// stop every invocation actor and lose the pool): its failure fails the
// system. The running task finishes, the waiting one gets a failure reply
// naming the failure, and no task is handed to the stopped actors.
func TestInboundSupervisorFailureFailsTheSystem(t *testing.T) {
	sys := actors.NewSystem(nil)
	failed := make(chan *actors.Failure, 1)
	sys.OnFailure(func(f *actors.Failure) { failed <- f })
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	var fl failures
	var ran atomic.Int32
	in, err := NewInbound(sys, Config{Exec: func(*Task) {
		started <- struct{}{}
		<-release
		ran.Add(1)
	}, Fail: fl.fail, Limit: 1, MaxBacklog: 10, MaxBacklogBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	in.Dispatch(NewTask(nil, &wire.InvokeFunction{FunctionID: "running"}))
	<-started
	in.Dispatch(NewTask(nil, &wire.InvokeFunction{FunctionID: "waiting"}))
	waitCounts(t, in, 1, 1)
	faults.Crash("invocations", in, "")
	var f *actors.Failure
	select {
	case f = <-failed:
	case <-time.After(10 * time.Second):
		t.Fatal("the invocation supervisor's failure did not fail the system")
	}
	if f.Actor != in.sup.Id || !f.NoRestart || !errors.Is(sys.Err(), actors.ErrFailed) {
		t.Fatalf("failure %#v, Err %v", f, sys.Err())
	}
	deadline := time.Now().Add(10 * time.Second)
	for fl.get("waiting") == nil {
		if time.Now().After(deadline) {
			t.Fatal("the waiting task got no failure reply")
		}
		time.Sleep(time.Millisecond)
	}
	if reason, _ := fl.get("waiting").(error); !errors.Is(reason, actors.ErrFailed) {
		t.Fatalf("the waiting task failed with %v", fl.get("waiting"))
	}
	in.Dispatch(NewTask(nil, &wire.InvokeFunction{FunctionID: "late"})) // dropped
	close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := in.Idle(ctx); err != nil {
		r, q, _ := in.Counts()
		t.Fatalf("never idle (running %d, queued %d)", r, q)
	}
	if n := ran.Load(); n != 1 || fl.get("running") != nil || fl.get("late") != nil {
		t.Fatalf("%d tasks ran; failures %v", n, fl.reasons)
	}
	stopInbound(in, sys)
}

// TestInboundGrowsThePoolToABurstInBatches dispatches a burst of blocking
// tasks larger than a spawn batch: the supervisor, asked once at a time,
// spawns an actor for every one of them.
func TestInboundGrowsThePoolToABurstInBatches(t *testing.T) {
	const n = 3*spawnBatch + 5
	sys := actors.NewSystem(nil)
	release := make(chan struct{})
	var running sync.WaitGroup
	running.Add(n)
	in, err := NewInbound(sys, Config{Exec: func(*Task) { running.Done(); <-release }, Limit: n, MaxBacklog: 1, MaxBacklogBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	for range n {
		in.Dispatch(NewTask(nil, &wire.InvokeFunction{}))
	}
	running.Wait() // every task runs at once: n actors
	if r, q, _ := in.Counts(); r != n || q != 0 || in.Refused() != 0 {
		t.Fatalf("%d running, %d queued, %d refused", r, q, in.Refused())
	}
	close(release)
	if err := in.Idle(context.Background()); err != nil {
		t.Fatal(err)
	}
	stopInbound(in, sys)
}
