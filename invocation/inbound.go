package invocation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/iii-go/iii/actors"
	"github.com/iii-go/iii/connection"
	"github.com/iii-go/iii/connection/wire"
	"github.com/iii-go/iii/internal/faults"
	"github.com/iii-go/iii/internal/goid"
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

// size is what a waiting task holds in memory: its payload and metadata
// (the frame's other fields are small).
func (t *Task) size() int { return len(t.Msg.Data) + len(t.Msg.Metadata) }

// Executor runs a task's handler and sends its reply. It should not panic
// (it recovers the handler's panics itself); if it does, or the handler
// calls runtime.Goexit, Config.Fail replies instead.
type Executor func(t *Task)

// Config configures an Inbound.
type Config struct {
	Exec Executor
	// Refuse replies at once to a task refused because the worker is
	// overloaded. It runs on the socket's read loop: it must not block.
	Refuse func(t *Task)
	// Fail replies to a task whose executor did not return: it panicked
	// (reason is the value) or its goroutine exited (reason is
	// ErrGoexit). It must not block for long; it runs on the task's actor.
	Fail func(t *Task, reason any)
	// Limit bounds the handlers running at once.
	Limit int
	// MaxBacklog bounds the tasks waiting for a handler slot, and
	// MaxBacklogBytes their payload and metadata bytes (a task always fits
	// in an empty backlog, whatever its size).
	MaxBacklog      int
	MaxBacklogBytes int
	// IdleTimeout is how long an invocation actor may wait, idle, before it
	// is stopped, beyond the KeepIdle most recently used: after a burst the
	// pool shrinks back, and its goroutines and stacks are freed. Default
	// DefaultIdleTimeout; negative: never.
	IdleTimeout time.Duration
	// KeepIdle is how many idle actors are kept whatever their idle time;
	// default DefaultKeepIdle.
	KeepIdle int
	Log      *slog.Logger
}

// Defaults of Config.IdleTimeout and Config.KeepIdle.
const (
	DefaultIdleTimeout = time.Minute
	DefaultKeepIdle    = 16
)

// ErrGoexit is the reason given to Config.Fail when a handler ended its
// goroutine with runtime.Goexit (as testing.T.FailNow does) instead of
// returning.
var ErrGoexit = errors.New("iii: the handler called runtime.Goexit instead of returning")

// Inbound dispatches inbound invocations to invocation actors. Each task is
// owned, from dispatch to reply, by one invocation actor: a supervised
// protoactor actor with a goroutine of its own (user code never runs on the
// dispatcher internal actors share). Actors are reused: an actor that
// finishes a task takes the next one from the backlog or waits, idle, for
// the next dispatch. The pool grows on demand up to the concurrency limit,
// and shrinks back after a burst: actors idle for Config.IdleTimeout are
// stopped, but for the Config.KeepIdle most recently used. Beyond the
// limit, tasks wait in a backlog bounded in count and in bytes, and beyond
// that Dispatch refuses them at once (Config.Refuse). Dispatch never
// blocks: it runs on the socket's read loop, which must keep reading the
// results of the handlers' own calls and the engine's pongs.
type Inbound struct {
	sys      *actors.System
	exec     Executor
	refuse   func(t *Task)
	fail     func(t *Task, reason any)
	log      *slog.Logger
	sup      *actor.PID
	props    *actor.Props // of every invocation actor (one for all: a Props is some 200 bytes)
	refused  atomic.Uint64
	lastWarn atomic.Int64 // unix nanoseconds of the last overload warning

	mu            sync.Mutex
	idle          []*member // idle actors, the most recently parked last
	idleAt        []int64   // when each of idle parked (nanoseconds since epoch): in step with idle, so ascending
	backlog       []*Task
	head          int
	backlogBytes  int
	actorsN       int  // spawned or being spawned
	spawning      int  // spawned and not started: each will take a task of the backlog
	toSpawn       int  // actors the supervisor is asked to spawn and has not yet
	spawnAsked    bool // a spawnInvocationActor is on its way to the supervisor
	limit         int
	maxBacklog    int
	maxBytes      int
	active        int           // dispatched and not finished
	quiet         chan struct{} // closed when active drops to 0 (while someone waits)
	closed        bool
	all           []*member          // every invocation actor (for the fault hook)
	mailboxes     []*mailbox         // every invocation actor's (for Runs)
	gone          mailboxOwner       // invocation actors' goroutines
	restarts      atomic.Int64       // invocation actors restarted (and started again)
	restartingIDs map[string]*member // invocation actors between Restarting and Started

	epoch       time.Time
	idleTimeout time.Duration // 0: actors are never retired
	keepIdle    int
	retire      *time.Timer // runs retireIdle; armed (retireArmed) while more than keepIdle actors are idle
	retireArmed bool
}

// member is one invocation actor's place in the pool. It outlives the
// actor's instances (a restart makes a new one), so a restarted actor
// knows whether it is listed as idle and whether a task is on its way.
type member struct {
	pid   *actor.PID
	state memberState  // guarded by Inbound.mu
	owed  atomic.Int32 // tasks sent to its mailbox and not received yet
}

// memberState says whether an invocation actor is listed as idle, or
// retired: stopped for having been idle too long, never to take a task.
type memberState uint8

const (
	memberBusy memberState = iota
	memberIdle
	memberRetired
)

// NewInbound starts the invocation supervisor under sys.
func NewInbound(sys *actors.System, cfg Config) (*Inbound, error) {
	in := &Inbound{sys: sys, exec: cfg.Exec, refuse: cfg.Refuse, fail: cfg.Fail, log: cfg.Log,
		limit: max(cfg.Limit, 1), maxBacklog: max(cfg.MaxBacklog, 1), maxBytes: max(cfg.MaxBacklogBytes, 1),
		epoch: time.Now(), idleTimeout: cfg.IdleTimeout, keepIdle: cfg.KeepIdle}
	switch {
	case in.idleTimeout == 0:
		in.idleTimeout = DefaultIdleTimeout
	case in.idleTimeout < 0:
		in.idleTimeout = 0
	}
	if in.keepIdle <= 0 {
		in.keepIdle = DefaultKeepIdle
	}
	if in.log == nil {
		in.log = slog.New(slog.DiscardHandler)
	}
	if in.refuse == nil {
		in.refuse = func(*Task) {}
	}
	if in.fail == nil {
		in.fail = func(*Task, any) {}
	}
	in.gone.ended = in.mailboxEnded
	in.props = actor.PropsFromProducer(func() actor.Actor { return &invocationActor{in: in} },
		actor.WithMailbox(func() actor.Mailbox { return in.newMailbox() }))
	// Not restartable: protoactor's restart of the supervisor would stop
	// every invocation actor, running handlers' included, and lose the
	// pool; the worker fails instead.
	sup, err := sys.SpawnCriticalNoRestart("invocations", actor.PropsFromProducer(func() actor.Actor { return &invocationSupervisor{in: in} },
		actor.WithDispatcher(sys.Dispatcher), actor.WithSupervisor(restartAlways{in})))
	if err != nil {
		return nil, err
	}
	in.sup = sup
	return in, nil
}

// Dispatch hands t to an invocation actor, or queues it, or (when the
// handlers are all busy and the backlog is full) refuses it. It never
// blocks.
func (in *Inbound) Dispatch(t *Task) {
	in.mu.Lock()
	if in.closed {
		in.mu.Unlock()
		releaseTask(t)
		return
	}
	if n := len(in.idle); n > 0 {
		m := in.idle[n-1]
		in.idle[n-1] = nil
		in.idle, in.idleAt = in.idle[:n-1], in.idleAt[:n-1]
		m.state = memberBusy
		m.owed.Add(1)
		in.active++
		in.mu.Unlock()
		in.sys.Send(m.pid, t)
		return
	}
	size := t.size()
	queued := in.waitingLocked()
	grow := in.actorsN < in.limit
	if grow || queued == 0 || queued < in.maxBacklog && in.backlogBytes+size <= in.maxBytes {
		in.backlog = append(in.backlog, t)
		in.backlogBytes += size
		in.active++
		ask := false
		if grow {
			in.actorsN++
			in.spawning++
			in.toSpawn++
			ask, in.spawnAsked = !in.spawnAsked, true
		}
		in.mu.Unlock()
		if ask {
			in.sys.Send(in.sup, spawnInvocationActor{})
		}
		return
	}
	running, queuedBytes := in.active-queued, in.backlogBytes
	in.mu.Unlock()
	in.refused.Add(1)
	in.refuse(t)
	releaseTask(t)
	if now := time.Now().UnixNano(); now-in.lastWarn.Load() > int64(time.Second) {
		in.lastWarn.Store(now)
		in.log.Warn("iii: overloaded: refusing invocations", "running", running, "queued", queued,
			"queued_bytes", queuedBytes, "refused_total", in.refused.Load())
	}
}

// waitingLocked returns the tasks of the backlog that wait for a busy
// handler slot: not those that actors being spawned will take.
func (in *Inbound) waitingLocked() int {
	return max(len(in.backlog)-in.head-in.spawning, 0)
}

// next gives an actor its next task from the backlog, or parks the actor as
// idle and returns nil. fresh says the actor has just been spawned.
func (in *Inbound) next(m *member, fresh bool) *Task {
	in.mu.Lock()
	defer in.mu.Unlock()
	if fresh {
		in.spawning--
	}
	return in.nextLocked(m)
}

// resume is next for an actor that has just been restarted: one still
// listed as idle stays so (listed once), and one that a task was sent to
// waits for it (its mailbox holds it until the restart is over); only an
// actor that is neither (it failed while it ran a task) takes a task of
// the backlog or parks. Parking an actor a task is on its way to would
// hand it a second task, and it would park again after the first: listed
// twice.
func (in *Inbound) resume(m *member) *Task {
	in.mu.Lock()
	defer in.mu.Unlock()
	if m.state != memberBusy || m.owed.Load() > 0 {
		return nil // idle, or retired: stopping
	}
	return in.nextLocked(m)
}

func (in *Inbound) nextLocked(m *member) *Task {
	for in.head < len(in.backlog) {
		t := in.backlog[in.head]
		in.backlog[in.head] = nil
		in.head++
		in.backlogBytes -= t.size()
		if in.head == len(in.backlog) {
			in.backlog, in.head = in.backlog[:0], 0
			if cap(in.backlog) > 1024 {
				in.backlog = nil // a burst is over: do not keep its array
			}
		}
		if t.Sock == nil || t.Sock.Alive() {
			return t
		}
		in.doneLocked() // its socket died while it waited: nobody wants the reply
		releaseTask(t)
	}
	if !in.closed && m.state == memberBusy {
		in.idle = append(in.idle, m)
		m.state = memberIdle
		if in.idleTimeout > 0 {
			in.idleAt = append(in.idleAt, in.now())
			in.armRetireLocked()
		} else {
			in.idleAt = append(in.idleAt, 0)
		}
	}
	return nil
}

// now is the time in nanoseconds since in.epoch (monotonic).
func (in *Inbound) now() int64 { return int64(time.Since(in.epoch)) }

// armRetireLocked makes sure retireIdle runs once the oldest idle actor
// has been idle for idleTimeout, if more than keepIdle are idle.
func (in *Inbound) armRetireLocked() {
	if in.retireArmed || len(in.idle) <= in.keepIdle || in.closed {
		return
	}
	in.retireArmed = true
	d := time.Duration(in.idleAt[0] + int64(in.idleTimeout) - in.now())
	if in.retire == nil {
		in.retire = time.AfterFunc(d, in.retireIdle)
	} else {
		in.retire.Reset(d)
	}
}

// retireIdle stops the actors idle for idleTimeout or longer, oldest
// first, but for the keepIdle most recently used. A retired actor is out of
// every list, so no task is ever sent to it; the pool grows again on
// demand.
func (in *Inbound) retireIdle() {
	in.mu.Lock()
	in.retireArmed = false
	if in.closed {
		in.mu.Unlock()
		return
	}
	now := in.now()
	k := 0
	for len(in.idle)-k > in.keepIdle && now-in.idleAt[k] >= int64(in.idleTimeout) {
		k++
	}
	retired := slices.Clone(in.idle[:k])
	for _, m := range retired {
		m.state = memberRetired
	}
	n := copy(in.idle, in.idle[k:])
	clear(in.idle[n:])
	in.idle = in.idle[:n]
	in.idleAt = in.idleAt[:copy(in.idleAt, in.idleAt[k:])]
	in.actorsN -= k
	if k > 0 {
		in.all = slices.DeleteFunc(in.all, func(m *member) bool { return m.state == memberRetired })
	}
	in.armRetireLocked()
	idle := len(in.idle)
	in.mu.Unlock()
	for _, m := range retired {
		in.sys.AS.Root.Stop(m.pid)
	}
	if k > 0 {
		in.log.Debug("iii: stopped idle invocation actors", "stopped", k, "idle", idle, "idle_timeout", in.idleTimeout)
	}
}

// mailboxEnded forgets the mailbox of an actor that stopped (retired), on
// its goroutine as that ends. (Not while the pool closes: every actor
// stops then. Forgetting them when the supervisor heard of each stop
// missed the mailboxes whose goroutine had not quite ended yet.)
func (in *Inbound) mailboxEnded(mb *mailbox) {
	in.mu.Lock()
	if !in.closed {
		if i := slices.Index(in.mailboxes, mb); i >= 0 {
			in.mailboxes = slices.Delete(in.mailboxes, i, i+1)
		}
	}
	in.mu.Unlock()
}

// spawned records a new invocation actor (for the fault hook).
func (in *Inbound) spawned(m *member) {
	in.mu.Lock()
	in.all = append(in.all, m)
	in.mu.Unlock()
}

// restarting records that the actor of m is being restarted.
func (in *Inbound) restarting(m *member) {
	in.mu.Lock()
	if in.restartingIDs == nil {
		in.restartingIDs = map[string]*member{}
	}
	in.restartingIDs[m.pid.Id] = m
	in.mu.Unlock()
}

// restarted returns the member of the actor pid, which has just started,
// if it was restarted (nil if it was spawned), and forgets the restart.
func (in *Inbound) restarted(pid *actor.PID) *member {
	in.mu.Lock()
	defer in.mu.Unlock()
	m := in.restartingIDs[pid.Id]
	delete(in.restartingIDs, pid.Id)
	return m
}

// crashActor makes an invocation actor panic in its own code (faults).
type crashActor struct{}

// crashSupervisor makes the invocation supervisor panic (faults).
type crashSupervisor struct{}

func init() {
	// faults.Crash("invocations", in, "") makes the invocation supervisor
	// of in fail (which fails the worker).
	faults.Set("invocations", func(target any, _ string) {
		in := target.(*Inbound)
		in.sys.Send(in.sup, crashSupervisor{})
	})
	// faults.Crash("invocation", in, "") makes every invocation actor of in
	// fail once, idle or busy (a busy one after its current tasks).
	faults.Set("invocation", func(target any, _ string) {
		in := target.(*Inbound)
		in.mu.Lock()
		all := slices.Clone(in.all)
		in.mu.Unlock()
		for _, m := range all {
			in.sys.Send(m.pid, crashActor{})
		}
	})
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

// Counts returns the tasks running, the tasks waiting in the backlog and
// their bytes.
func (in *Inbound) Counts() (running, queued, queuedBytes int) {
	in.mu.Lock()
	defer in.mu.Unlock()
	queued = in.waitingLocked()
	return in.active - queued, queued, in.backlogBytes
}

// IdleActors returns the number of invocation actors waiting for a task.
func (in *Inbound) IdleActors() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.idle)
}

// Refused returns the number of tasks refused so far because the worker
// was overloaded.
func (in *Inbound) Refused() uint64 { return in.refused.Load() }

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
	in.stopIdleLocked()
	in.backlog, in.head, in.backlogBytes = nil, 0, 0
	in.mu.Unlock()
}

// stopIdleLocked forgets the idle actors (the pool is closing) and stops
// the retiring timer.
func (in *Inbound) stopIdleLocked() {
	for _, m := range in.idle {
		m.state = memberBusy
	}
	in.idle, in.idleAt = nil, nil
	if in.retire != nil {
		in.retire.Stop()
	}
	in.retireArmed = false
}

// Wait waits for the invocation actors' goroutines to exit (after the
// actor system stopped them).
func (in *Inbound) Wait() { in.gone.wg.Wait() }

// newMailbox makes an invocation actor's mailbox, listed in in.mailboxes.
func (in *Inbound) newMailbox() actor.Mailbox {
	mb := newMailbox(&in.gone)
	in.mu.Lock()
	in.mailboxes = append(in.mailboxes, mb)
	in.mu.Unlock()
	return mb
}

// Runs reports whether the calling goroutine is an invocation actor's, one
// that runs the Executor: a handler that calls back into the worker. It
// reads the goroutine's id (about a microsecond) and looks at every actor:
// for rare calls (Shutdown), not per invocation.
func (in *Inbound) Runs() bool {
	id := goid.ID()
	if id == 0 {
		return false
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, mb := range in.mailboxes {
		if mb.goid.Load() == id {
			return true
		}
	}
	return false
}

// errSupervisorStopped is the reason given to Config.Fail for a task that
// waited in the backlog when the invocation supervisor stopped, if the
// system has not failed (then the reason is its *actors.Failure).
var errSupervisorStopped = errors.New("iii: the invocation supervisor stopped")

// supervisorStopping closes the pool as its supervisor stops (the system
// stops or failed): no task is handed to an actor any more, and each task
// waiting in the backlog gets a failure reply and its slot back. Running
// tasks finish; their actors stop after them.
func (in *Inbound) supervisorStopping() {
	in.mu.Lock()
	in.closed = true
	waiting := slices.Clone(in.backlog[in.head:])
	clear(in.backlog)
	in.stopIdleLocked()
	in.backlog, in.head, in.backlogBytes = nil, 0, 0
	in.mu.Unlock()
	if len(waiting) == 0 {
		return
	}
	reason := in.sys.Err()
	if reason == nil {
		reason = errSupervisorStopped
	}
	in.log.Warn("iii: the invocation supervisor stopped; replying invocation_failed to the invocations waiting for a handler",
		"waiting", len(waiting), "reason", reason)
	for _, t := range waiting {
		if t.Sock == nil || t.Sock.Alive() {
			in.reply(t, reason)
		}
		releaseTask(t)
		in.finished()
	}
}

// spawnInvocationActor asks the supervisor to spawn the actors that
// Dispatch counted in toSpawn. One is on its way at a time, however many
// actors a burst of tasks needs (a message each grew the supervisor's
// mailbox to the burst's size, for good).
type spawnInvocationActor struct{}

// spawnBatch bounds the actors spawned per message, so that a burst does
// not hold the dispatcher the internal actors share.
const spawnBatch = 64

// takeSpawns returns how many actors to spawn now, and whether more are
// left (the supervisor then asks itself again).
func (in *Inbound) takeSpawns() (n int, more bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.closed {
		// None once the pool is closed: the supervisor may be stopping, and
		// protoactor still hands a stopping actor its messages, so a child
		// spawned now would never be stopped, and the supervisor (and the
		// actor system's stop) would wait for it for ever.
		in.actorsN -= in.toSpawn
		in.spawning -= in.toSpawn
		in.toSpawn, in.spawnAsked = 0, false
		return 0, false
	}
	n = min(in.toSpawn, spawnBatch)
	in.toSpawn -= n
	more = in.toSpawn > 0
	in.spawnAsked = more
	return n, more
}

// invocationSupervisor is the parent of the invocation actors. It is not
// restarted (see NewInbound): its failure fails the worker.
type invocationSupervisor struct{ in *Inbound }

func (s *invocationSupervisor) Receive(ctx actor.Context) {
	switch ctx.Message().(type) {
	case spawnInvocationActor:
		n, more := s.in.takeSpawns()
		for range n {
			ctx.Spawn(s.in.props)
		}
		if more {
			ctx.Send(ctx.Self(), spawnInvocationActor{})
		}
	case crashSupervisor:
		panic("iii: invocation supervisor crashed on purpose (faults)")
	case *actor.Stopping:
		s.in.supervisorStopping()
	}
}

// restartAlways is the invocation supervisor's strategy: a failed
// invocation actor is restarted, every time, with no budget, and the
// failure is logged at Warn. Its task (if any) gets a failure reply and
// its slot back (see Restarting), and the restarted actor takes the next
// task, so the pool keeps its size. Failures get here only from the
// actor's own code: the executor's panics and Goexits are handled where
// they happen (invocationActor.run).
type restartAlways struct{ in *Inbound }

// HandleFailure implements actor.SupervisorStrategy.
func (r restartAlways) HandleFailure(_ *actor.ActorSystem, sup actor.Supervisor, child *actor.PID, _ *actor.RestartStatistics, reason, _ any) {
	r.in.log.Warn("iii: an invocation actor failed; restarting it", "actor", child.Id, "reason", fmt.Sprint(reason))
	sup.RestartChildren(child)
}

// invocationActor owns one task at a time from dispatch to reply. It runs
// on a mailbox with a goroutine of its own (mailbox.go).
type invocationActor struct {
	in  *Inbound
	m   *member // set by Started, before any other message
	cur *Task
}

func (a *invocationActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		if a.m = a.in.restarted(ctx.Self()); a.m == nil {
			a.m = &member{pid: ctx.Self()}
			a.in.spawned(a.m)
			a.runFrom(a.in.next(a.m, true))
			return
		}
		// Restarted: it may have failed while listed as idle, or with a
		// task on its way (held by its suspended mailbox until now).
		a.runFrom(a.in.resume(a.m))
		a.in.restarts.Add(1)
	case crashActor:
		panic("iii: invocation actor crashed on purpose (faults)")
	case *Task:
		a.m.owed.Add(-1)
		a.runFrom(m)
	case *actor.Restarting:
		// The next Started is a restart's (the producer, shared by all
		// invocation actors, cannot tell).
		if a.m != nil {
			a.in.restarting(a.m)
		}
		// The actor failed while it held a task: it still gets its reply
		// and its slot back.
		if t := a.cur; t != nil {
			a.cur = nil
			a.in.failed(t, "the invocation actor failed")
			releaseTask(t)
			a.in.finished()
		}
	}
}

// runFrom runs t, then every task the backlog has for it.
func (a *invocationActor) runFrom(t *Task) {
	for t != nil {
		a.run(t)
		t = a.in.next(a.m, false)
	}
}

// run runs one task. If the executor panics, the task gets a failure reply
// and run returns as usual. If the goroutine exits (runtime.Goexit in the
// handler), the task gets its reply too, and the next task of the backlog
// is sent to the actor, whose mailbox goes on on a new goroutine.
func (a *invocationActor) run(t *Task) {
	a.cur = t
	returned := false
	defer func() {
		if returned {
			return
		}
		v := recover()
		goexit := v == nil
		if goexit {
			v = ErrGoexit
		}
		a.cur = nil
		a.in.failed(t, v)
		releaseTask(t)
		a.in.finished()
		if !goexit {
			return // recovered: runFrom goes on
		}
		if next := a.in.next(a.m, false); next != nil {
			a.m.owed.Add(1)
			a.in.sys.Send(a.m.pid, next)
		}
	}()
	a.in.exec(t)
	returned = true
	a.cur = nil
	releaseTask(t)
	a.in.finished()
}

// failed replies to t after its executor failed, and logs why.
func (in *Inbound) failed(t *Task, reason any) {
	in.log.Warn("iii: an invocation failed outside its handler; replying invocation_failed",
		"function", t.Msg.FunctionID, "reason", fmt.Sprint(reason))
	in.reply(t, reason)
}

// reply gives t its failure reply (Config.Fail), logging a panic of it.
func (in *Inbound) reply(t *Task, reason any) {
	defer func() {
		if v := recover(); v != nil {
			in.log.Warn("iii: cannot reply to a failed invocation", "function", t.Msg.FunctionID, "reason", fmt.Sprint(v))
		}
	}()
	in.fail(t, reason)
}
