package invocation

import (
	"context"
	"sync"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/iii-go/iii/actors"
	"github.com/iii-go/iii/connection"
	"github.com/iii-go/iii/connection/wire"
)

// Task is one inbound invocation: the dispatch frame and the socket it came
// on, to which its one reply goes (never to a later socket). A nil Sock
// (benchmarks) never dies.
type Task struct {
	Sock *connection.Socket
	Msg  *wire.InvokeFunction
}

var tasks = sync.Pool{New: func() any { return new(Task) }}

// NewTask returns a task for m, which arrived on s. The Inbound recycles it
// once it has run or been dropped.
func NewTask(s *connection.Socket, m *wire.InvokeFunction) *Task {
	t := tasks.Get().(*Task)
	t.Sock, t.Msg = s, m
	return t
}

func releaseTask(t *Task) {
	*t = Task{}
	tasks.Put(t)
}

// Executor runs a task's handler and sends its reply. It must not panic: it
// recovers the handler's panics itself.
type Executor func(t *Task)

// Inbound dispatches inbound invocations to invocation actors. Each task is
// owned, from dispatch to reply, by one invocation actor: a supervised
// protoactor actor with a goroutine of its own (user code never runs on the
// dispatcher internal actors share). Actors are reused: an actor that
// finishes a task takes the next one from the backlog or waits, idle, for
// the next dispatch. The pool grows on demand up to the concurrency limit;
// beyond it, tasks wait in a bounded backlog, and beyond that Dispatch
// blocks the read loop (back-pressure to the engine).
type Inbound struct {
	sys   *actors.System
	exec  Executor
	sup   *actor.PID
	props *actor.Props // of every invocation actor

	mu         sync.Mutex
	idle       []*actor.PID
	backlog    []*Task
	head       int
	actorsN    int // spawned or being spawned
	limit      int
	maxBacklog int
	active     int           // dispatched and not finished
	space      chan struct{} // signalled when the backlog shrinks
	quiet      chan struct{} // closed when active drops to 0 (while someone waits)
	closed     bool
	gone       sync.WaitGroup // invocation actors' goroutines
}

// NewInbound starts the invocation supervisor under sys. limit bounds the
// handlers running at once, maxBacklog the tasks waiting for one.
func NewInbound(sys *actors.System, exec Executor, limit, maxBacklog int) (*Inbound, error) {
	in := &Inbound{sys: sys, exec: exec, limit: max(limit, 1), maxBacklog: max(maxBacklog, 1),
		space: make(chan struct{}, 1)}
	in.props = actor.PropsFromProducer(func() actor.Actor { return &invocationActor{in: in} },
		actor.WithMailbox(func() actor.Mailbox { return newMailbox(&in.gone) }))
	sup, err := sys.Spawn("invocations", actor.PropsFromProducer(func() actor.Actor { return &invocationSupervisor{in: in} },
		actor.WithDispatcher(sys.Dispatcher)))
	if err != nil {
		return nil, err
	}
	in.sup = sup
	return in, nil
}

// Dispatch hands t to an invocation actor. It blocks only while the
// backlog is full, and gives up (dropping t) if t's socket dies meanwhile:
// the engine has then stopped the invocation already.
func (in *Inbound) Dispatch(t *Task) {
	for {
		in.mu.Lock()
		if in.closed {
			in.mu.Unlock()
			releaseTask(t)
			return
		}
		if n := len(in.idle); n > 0 {
			pid := in.idle[n-1]
			in.idle = in.idle[:n-1]
			in.active++
			in.mu.Unlock()
			in.sys.Send(pid, t)
			return
		}
		if len(in.backlog)-in.head < in.maxBacklog {
			in.backlog = append(in.backlog, t)
			in.active++
			grow := in.actorsN < in.limit
			if grow {
				in.actorsN++
			}
			in.mu.Unlock()
			if grow {
				in.sys.Send(in.sup, spawnInvocationActor{})
			}
			return
		}
		in.mu.Unlock()
		var dead <-chan struct{}
		if t.Sock != nil {
			dead = t.Sock.Done()
		}
		select {
		case <-in.space:
		case <-dead:
			releaseTask(t)
			return
		}
	}
}

// next gives an actor its next task from the backlog, or parks the actor as
// idle and returns nil.
func (in *Inbound) next(self *actor.PID) *Task {
	in.mu.Lock()
	defer in.mu.Unlock()
	for in.head < len(in.backlog) {
		t := in.backlog[in.head]
		in.backlog[in.head] = nil
		in.head++
		if in.head == len(in.backlog) {
			in.backlog, in.head = in.backlog[:0], 0
		}
		select {
		case in.space <- struct{}{}:
		default:
		}
		if t.Sock == nil || t.Sock.Alive() {
			return t
		}
		in.doneLocked() // its socket died while it waited: nobody wants the reply
		releaseTask(t)
	}
	if !in.closed {
		in.idle = append(in.idle, self)
	}
	return nil
}

// finished records the end of a task.
func (in *Inbound) finished() {
	in.mu.Lock()
	in.doneLocked()
	in.mu.Unlock()
}

func (in *Inbound) doneLocked() {
	in.active--
	if in.active == 0 && in.quiet != nil {
		close(in.quiet)
		in.quiet = nil
	}
}

// Counts returns the tasks running and the tasks waiting in the backlog.
func (in *Inbound) Counts() (running, queued int) {
	in.mu.Lock()
	defer in.mu.Unlock()
	queued = len(in.backlog) - in.head
	return in.active - queued, queued
}

// Active returns the number of tasks dispatched and not finished.
func (in *Inbound) Active() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.active
}

// Idle waits until no task is running or waiting, or ctx ends.
func (in *Inbound) Idle(ctx context.Context) error {
	in.mu.Lock()
	if in.active == 0 {
		in.mu.Unlock()
		return nil
	}
	if in.quiet == nil {
		in.quiet = make(chan struct{})
	}
	q := in.quiet
	in.mu.Unlock()
	select {
	case <-q:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops dispatching; waiting tasks are dropped. Running handlers
// finish on their own (their context is the caller's to cancel).
func (in *Inbound) Close() {
	in.mu.Lock()
	in.closed = true
	for i := in.head; i < len(in.backlog); i++ {
		releaseTask(in.backlog[i])
		in.backlog[i] = nil
		in.doneLocked()
	}
	in.backlog, in.head, in.idle = nil, 0, nil
	in.mu.Unlock()
}

// Wait waits for the invocation actors' goroutines to exit (after the
// actor system stopped them).
func (in *Inbound) Wait() { in.gone.Wait() }

type spawnInvocationActor struct{}

// invocationSupervisor is the parent of the invocation actors. Its
// (default) strategy restarts a failed invocation actor one for one.
type invocationSupervisor struct{ in *Inbound }

func (s *invocationSupervisor) Receive(ctx actor.Context) {
	if _, ok := ctx.Message().(spawnInvocationActor); ok {
		ctx.Spawn(s.in.props)
	}
}

// invocationActor owns one task at a time from dispatch to reply. It runs
// on a mailbox with a goroutine of its own (mailbox.go).
type invocationActor struct {
	in  *Inbound
	cur *Task
}

func (a *invocationActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		a.runFrom(ctx, a.in.next(ctx.Self()))
	case *Task:
		a.runFrom(ctx, m)
	case *actor.Restarting:
		// A failure outside the handler (handlers' panics are recovered by
		// the executor): the task is lost; account for it so Drain ends.
		if a.cur != nil {
			a.cur = nil
			a.in.finished()
		}
	}
}

// runFrom runs t, then every task the backlog has for it.
func (a *invocationActor) runFrom(ctx actor.Context, t *Task) {
	for t != nil {
		a.cur = t
		a.in.exec(t)
		a.cur = nil
		releaseTask(t)
		a.in.finished()
		t = a.in.next(ctx.Self())
	}
}
