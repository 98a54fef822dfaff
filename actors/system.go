// Package actors holds the actor system of one iii worker: a protoactor-go
// system whose own logger is bridged to log/slog (quiet by default), a root
// supervisor that owns the worker's internal actors and restarts them one
// for one when they fail, the pooled dispatcher those internal actors share,
// and the Future the facade waits on together with a context.
//
// Supervision policy of every child of the root: a failure (a panic in
// Receive) restarts the child, which reconciles its state on restart; once
// a child fails more than MaxRestarts times within RestartWindow, it is
// stopped and the system fails as a whole: the handler set with OnFailure is
// told, with a *Failure naming the actor and the cause. A child spawned
// with SpawnCritical that stops for any other reason than Stop fails the
// system too, and so does the first failure of one spawned with
// SpawnCriticalNoRestart (a child that a restart cannot leave consistent).
// Every directive is logged at Warn (restart) or Error (stop).
//
// Internal actors never block and never run user code: user handlers run on
// invocation actors with dispatchers of their own (package invocation).
//
// It is an implementation package of the iii SDK (github.com/iii-go/iii),
// importable for the SDK's own use: it follows the SDK's version (iii.Version)
// and its API may change in any release. Programs use the root package iii,
// which documents every type they need.
package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// Supervision limits: a child that fails more than MaxRestarts times within
// RestartWindow is stopped instead of restarted.
const (
	MaxRestarts   = 10
	RestartWindow = 10 * time.Second
)

// ErrStopped is returned by Spawn once the system has stopped (a failed
// system's Spawn returns its *Failure).
var ErrStopped = errors.New("actors: system stopped")

// ErrFailed matches every *Failure.
var ErrFailed = errors.New("iii: internal actor failed")

// Failure is the error of a system that failed: an internal actor spent its
// restart budget, one that cannot be restarted failed, or a critical one
// stopped unexpectedly.
type Failure struct {
	Actor    string // the actor's id, e.g. "worker/connection"
	Cause    error  // the last panic (as an error), or why it stopped
	Failures int    // failures within RestartWindow; 0 for an unexpected stop
	// NoRestart: the actor cannot be restarted (SpawnCriticalNoRestart),
	// so its first failure stopped it.
	NoRestart bool
}

// Error implements the error interface.
func (f *Failure) Error() string {
	if f.NoRestart {
		return fmt.Sprintf("iii: internal actor %s failed and cannot be restarted, so it was stopped: %v", f.Actor, f.Cause)
	}
	if f.Failures > 0 {
		return fmt.Sprintf("iii: internal actor %s failed %d times within %v and was stopped: %v", f.Actor, f.Failures, RestartWindow, f.Cause)
	}
	return fmt.Sprintf("iii: internal actor %s stopped: %v", f.Actor, f.Cause)
}

// Unwrap returns the cause.
func (f *Failure) Unwrap() error { return f.Cause }

// Is makes a *Failure match ErrFailed.
func (f *Failure) Is(target error) bool { return target == ErrFailed }

// System is the actor system of one worker.
type System struct {
	AS         *actor.ActorSystem
	Dispatcher actor.Dispatcher // shared by the internal actors
	Log        *slog.Logger

	pool        *poolDispatcher
	root        *actor.PID
	stopOnce    sync.Once
	stopped     chan struct{} // closed when Stop begins
	rootStopped chan struct{} // closed by the root supervisor once it (and so every actor) stopped

	noRestart sync.Map // ids of the children spawned by SpawnCriticalNoRestart

	failOnce   sync.Once
	failed     chan struct{} // closed when the system failed
	failure    *Failure
	onFailure  atomic.Pointer[func(*Failure)]
	notifyOnce sync.Once
}

// NewSystem starts an actor system whose protoactor log records go to log
// (nil discards them) and whose root supervisor is ready to spawn children.
func NewSystem(log *slog.Logger) *System {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// protoactor logs every dead letter and supervision event at Info;
	// only its warnings and errors reach the SDK's logger. Its dead-letter
	// throttle keeps a goroutine alive for one interval, hence a short one.
	pl := slog.New(&minLevel{Handler: log.Handler(), min: slog.LevelWarn}).With("component", "protoactor")
	as := actor.NewActorSystem(
		actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return pl }),
		actor.WithDeadLetterRequestLogging(false),
		actor.WithDeadLetterThrottleCount(1),
		actor.WithDeadLetterThrottleInterval(50*time.Millisecond),
	)
	shrinkRegistry(as)
	// protoactor's own strategies (e.g. the default one of a nested
	// supervisor) report what they did only as a SupervisorEvent, which it
	// logs at Debug: surface those at Warn, with the directive applied.
	as.EventStream.Subscribe(func(evt any) {
		if e, ok := evt.(*actor.SupervisorEvent); ok {
			log.Warn("iii: internal actor failed", "actor", e.Child.Id, "directive", strings.ToLower(e.Directive.String()),
				"reason", fmt.Sprint(e.Reason))
		}
	})
	workers := 2 * runtime.GOMAXPROCS(0)
	pool := newPoolDispatcher(workers, 4096)
	s := &System{AS: as, Dispatcher: pool, Log: log, pool: pool, stopped: make(chan struct{}), rootStopped: make(chan struct{}),
		failed: make(chan struct{})}
	strategy := &rootStrategy{s: s}
	props := actor.PropsFromProducer(func() actor.Actor { return &supervisor{s: s, critical: map[string]bool{}} },
		actor.WithDispatcher(pool), actor.WithSupervisor(strategy), actor.WithGuardian(strategy))
	s.root = as.Root.SpawnPrefix(props, "worker")
	return s
}

// registryBuckets is the number of buckets of a system's process
// registry (protoactor makes 1024, each a concurrent map of 32 shards:
// 2.8 MB per system, most of an idle worker's heap). A worker has a few
// internal actors and at most its invocation limit of invocation actors;
// 8 buckets of 32 shards each are 256 locks for them.
const registryBuckets = 8

// shrinkRegistry replaces the process registry's 1024 buckets of a new
// system with registryBuckets of them, moving over the processes
// registered already (protoactor looks a process up by the hash of its id
// modulo the number of buckets, whatever that number is). It must run
// before the system is shared with another goroutine.
func shrinkRegistry(as *actor.ActorSystem) {
	old := as.ProcessRegistry.LocalPIDs
	registered := map[string]any{}
	for _, m := range old.LocalPIDs {
		if m.Count() > 0 {
			maps.Copy(registered, m.Items())
		}
	}
	// The first buckets of the old map are reused, emptied.
	sm := &actor.SliceMap{LocalPIDs: slices.Clone(old.LocalPIDs[:registryBuckets])}
	for _, m := range sm.LocalPIDs {
		m.Clear()
	}
	for id, p := range registered {
		sm.GetBucket(id).Set(id, p)
	}
	as.ProcessRegistry.LocalPIDs = sm
}

// Spawn starts props as a supervised child of the root supervisor. The
// child runs on the shared internal dispatcher unless props name another.
// Once the system has stopped it returns ErrStopped, once it has failed
// its *Failure (matching ErrFailed), also to a caller already waiting
// whose request the root supervisor has not taken yet. A request it has
// taken gets its child, if the system had not stopped or failed when it
// took it.
func (s *System) Spawn(name string, props *actor.Props) (*actor.PID, error) {
	return s.spawn(&spawnChild{props: props, name: name})
}

// SpawnCritical is Spawn for a child the worker cannot do without: if it
// stops before Stop was called (for whatever reason), the system fails.
func (s *System) SpawnCritical(name string, props *actor.Props) (*actor.PID, error) {
	return s.spawn(&spawnChild{props: props, name: name, critical: true})
}

// SpawnCriticalNoRestart is SpawnCritical for a child that a restart
// cannot leave consistent: its first failure stops it and fails the system
// (a *Failure with NoRestart set). A supervisor of actors that hold work is
// one: protoactor's restart of an actor stops all its children first.
func (s *System) SpawnCriticalNoRestart(name string, props *actor.Props) (*actor.PID, error) {
	return s.spawn(&spawnChild{props: props, name: name, critical: true, noRestart: true})
}

// OnFailure sets the function told, once, when the system fails (at once
// if it has failed already). It runs on a goroutine of its own, so it may
// block and may call Stop. Set it once.
func (s *System) OnFailure(fn func(*Failure)) {
	s.onFailure.Store(&fn)
	select {
	case <-s.failed:
		s.notify()
	default:
	}
}

// notify hands the failure to the OnFailure function, once.
func (s *System) notify() {
	if fn := s.onFailure.Load(); fn != nil {
		s.notifyOnce.Do(func() { go (*fn)(s.failure) })
	}
}

// Failed is closed once the system failed; Err then returns the *Failure.
func (s *System) Failed() <-chan struct{} { return s.failed }

// Err returns the *Failure of a failed system, ErrStopped once Stop was
// called, or nil.
func (s *System) Err() error {
	select {
	case <-s.failed:
		return s.failure
	default:
	}
	select {
	case <-s.stopped:
		return ErrStopped
	default:
	}
	return nil
}

// fail records the system's failure (the first one counts) and tells the
// OnFailure handler; it never blocks.
func (s *System) fail(f *Failure) {
	select {
	case <-s.stopped:
		return // stopping anyway: nothing fails
	default:
	}
	s.failOnce.Do(func() {
		s.failure = f
		close(s.failed)
		s.Log.Error("iii: the worker failed: an internal actor cannot run", "actor", f.Actor, "err", f.Cause)
		s.notify()
	})
}

// spawn asks the root supervisor for a child and waits for it. It gives up
// with s.Err() if the system stops or fails before the root took the
// request (then the root will not spawn it); a request the root has taken
// always gets its reply, which the root gives in the same step.
func (s *System) spawn(req *spawnChild) (*actor.PID, error) {
	if err := s.Err(); err != nil {
		return nil, err
	}
	req.reply = make(chan spawnResult, 1)
	s.AS.Root.Send(s.root, req)
	select {
	case r := <-req.reply:
		return r.pid, r.err
	case <-s.stopped:
	case <-s.failed:
	}
	if req.state.CompareAndSwap(spawnPending, spawnAbandoned) {
		return nil, s.Err() // the root will not spawn it
	}
	// The root took the request. Giving up now would leave a child the
	// caller does not know of: a trigger type whose dispatcher the caller
	// then stopped, so that it never handled its Stop, the root never
	// stopped, and Stop waited its whole timeout.
	r := <-req.reply
	return r.pid, r.err
}

// Send delivers msg to pid from outside any actor.
func (s *System) Send(pid *actor.PID, msg any) { s.AS.Root.Send(pid, msg) }

// Stop stops every actor (children first) and waits for them, at most for
// timeout; then it releases the dispatcher's goroutines.
func (s *System) Stop(timeout time.Duration) {
	s.stopOnce.Do(func() {
		close(s.stopped)
		// Not protoactor's StopFuture: its future can miss the wake-up
		// (an open race upstream) and leave the waiter behind for good.
		s.AS.Root.Stop(s.root)
		t := time.NewTimer(timeout)
		defer t.Stop()
		select {
		case <-s.rootStopped:
		case <-t.C:
			s.Log.Warn("iii: actors did not stop in time", "timeout", timeout)
		}
		s.AS.Shutdown()
		s.pool.close()
	})
}

type spawnChild struct {
	props     *actor.Props
	name      string
	critical  bool
	noRestart bool
	reply     chan spawnResult
	// state is who decided the request's fate: the root, which spawns and
	// replies, or the caller, which gave up (the system stopped or failed)
	// and must not get a child it does not know of.
	state atomic.Int32
}

// States of spawnChild.state.
const (
	spawnPending int32 = iota
	spawnTaken
	spawnAbandoned
)

type spawnResult struct {
	pid *actor.PID
	err error
}

// supervisor is the root actor: it spawns children on request; failures of
// children are handled by the strategy in its props. It watches its
// children: a critical one that stops while the system is not stopping
// fails the system. It closes stopped once it has stopped, which protoactor
// does only after all its children.
type supervisor struct {
	s        *System
	stopping bool
	critical map[string]bool // ids of critical children
}

func (sv *supervisor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Stopping:
		sv.stopping = true
	case *actor.Stopped:
		close(sv.s.rootStopped)
	case *actor.Terminated:
		if sv.critical[m.Who.Id] {
			delete(sv.critical, m.Who.Id)
			sv.s.noRestart.Delete(m.Who.Id)
			if !sv.stopping {
				sv.s.fail(&Failure{Actor: m.Who.Id, Cause: errors.New("stopped unexpectedly")})
			}
		}
	case *spawnChild:
		if !m.state.CompareAndSwap(spawnPending, spawnTaken) {
			return // its caller gave up: nobody would know of the child
		}
		sv.spawn(ctx, m)
	}
}

// spawn spawns the child m asks for, unless the system stops or failed,
// and replies in every case: m's caller waits for the reply once the root
// has taken the request.
func (sv *supervisor) spawn(ctx actor.Context, m *spawnChild) {
	var r spawnResult
	defer func() {
		if p := recover(); p != nil { // the producer panicked: nothing was spawned
			r = spawnResult{err: fmt.Errorf("iii: an internal actor could not be made: %v", p)}
			sv.s.Log.Error("iii: an internal actor could not be made", "name", m.name, "panic", fmt.Sprint(p))
		}
		m.reply <- r
	}()
	if sv.stopping || sv.s.Err() != nil {
		// protoactor still hands a stopping actor its messages: a child
		// spawned now, after the others were told to stop, would never
		// be stopped, and the root would wait for it for ever. A failed
		// system spawns nothing more either.
		r.err = sv.s.Err() // the system's failure, if that is why it stops
		if r.err == nil {
			r.err = ErrStopped
		}
		return
	}
	if m.name == "" {
		r.pid = ctx.Spawn(m.props)
	} else {
		r.pid, r.err = ctx.SpawnNamed(m.props, m.name)
	}
	if r.err == nil && m.critical {
		sv.critical[r.pid.Id] = true
		if m.noRestart {
			sv.s.noRestart.Store(r.pid.Id, true)
		}
	}
}

// rootStrategy is the policy of every child of the root: restart it one for
// one, up to MaxRestarts failures within RestartWindow; past that, stop it
// and fail the system. A child spawned by SpawnCriticalNoRestart is stopped
// at its first failure, and the system fails. It logs each failure with
// the directive it applies. The system fails before the child is told to
// stop, so the child sees the failure as it stops.
type rootStrategy struct{ s *System }

func (st *rootStrategy) HandleFailure(_ *actor.ActorSystem, sup actor.Supervisor, child *actor.PID, rs *actor.RestartStatistics, reason, message any) {
	rs.Fail()
	n := rs.NumberOfFailures(RestartWindow)
	cause, ok := reason.(error)
	if !ok {
		cause = fmt.Errorf("panic: %v", reason)
	}
	if _, once := st.s.noRestart.Load(child.Id); once {
		st.s.Log.Error("iii: internal actor failed and cannot be restarted; stopping it", "actor", child.Id,
			"directive", "stop", "reason", cause, "message", fmt.Sprintf("%T", message), "failures", n)
		st.s.fail(&Failure{Actor: child.Id, Cause: cause, Failures: n, NoRestart: true})
		sup.StopChildren(child)
		return
	}
	if n > MaxRestarts {
		st.s.Log.Error("iii: internal actor failed; restart budget spent, stopping it", "actor", child.Id,
			"directive", "stop", "reason", cause, "message", fmt.Sprintf("%T", message), "failures", n)
		st.s.fail(&Failure{Actor: child.Id, Cause: cause, Failures: n})
		sup.StopChildren(child)
		return
	}
	st.s.Log.Warn("iii: internal actor failed; restarting it", "actor", child.Id,
		"directive", "restart", "reason", cause, "message", fmt.Sprintf("%T", message), "failures", n)
	sup.RestartChildren(child)
}

// Future is a one-shot result that a waiter can wait for together with a
// context. Complete may be called from any goroutine; only the first call
// counts. Exactly one goroutine may Wait.
type Future[T any] struct {
	ch chan result[T]
}

type result[T any] struct {
	v   T
	err error
}

// NewFuture returns an incomplete future.
func NewFuture[T any]() *Future[T] { return &Future[T]{ch: make(chan result[T], 1)} }

// Complete sets the result if none was set yet; it never blocks.
func (f *Future[T]) Complete(v T, err error) bool {
	select {
	case f.ch <- result[T]{v, err}:
		return true
	default:
		return false
	}
}

// Wait returns the result, or ctx's error if ctx ends first.
func (f *Future[T]) Wait(ctx context.Context) (T, error) {
	select {
	case r := <-f.ch:
		return r.v, r.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

// Request sends msg (which carries f) to pid and waits for f. It gives up
// with ctx's error when ctx ends, and with s.Err() once the system stops or
// fails (an actor that is gone never answers).
func Request[T any](ctx context.Context, s *System, pid *actor.PID, f *Future[T], msg any) (T, error) {
	if err := s.Err(); err != nil {
		var zero T
		return zero, err
	}
	s.Send(pid, msg)
	select {
	case r := <-f.ch:
		return r.v, r.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	case <-s.stopped:
	case <-s.failed:
	}
	select { // an answer that came meanwhile wins
	case r := <-f.ch:
		return r.v, r.err
	default:
		var zero T
		return zero, s.Err()
	}
}

// minLevel drops records below min.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (h *minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h *minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return &minLevel{Handler: h.Handler.WithAttrs(as), min: h.min}
}

func (h *minLevel) WithGroup(name string) slog.Handler {
	return &minLevel{Handler: h.Handler.WithGroup(name), min: h.min}
}
