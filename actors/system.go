// Package actors holds the actor system of one iii worker: a protoactor-go
// system whose own logger is bridged to log/slog (quiet by default), a root
// supervisor that owns the worker's internal actors and restarts them one
// for one when they fail, the pooled dispatcher those internal actors share,
// and the Future the facade waits on together with a context.
//
// Internal actors never block and never run user code: user handlers run on
// invocation actors with dispatchers of their own (package invocation).
package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// Supervision limits: a child that fails more than MaxRestarts times within
// RestartWindow is stopped instead of restarted.
const (
	MaxRestarts   = 10
	RestartWindow = 10 * time.Second
)

// ErrStopped is returned by Spawn once the system has stopped.
var ErrStopped = errors.New("actors: system stopped")

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
	workers := 2 * runtime.GOMAXPROCS(0)
	pool := newPoolDispatcher(workers, 4096)
	s := &System{AS: as, Dispatcher: pool, Log: log, pool: pool, stopped: make(chan struct{}), rootStopped: make(chan struct{})}
	strategy := &loggingStrategy{
		log:   log,
		inner: actor.NewOneForOneStrategy(MaxRestarts, RestartWindow, actor.DefaultDecider),
	}
	props := actor.PropsFromProducer(func() actor.Actor { return &supervisor{stopped: s.rootStopped} },
		actor.WithDispatcher(pool), actor.WithSupervisor(strategy), actor.WithGuardian(strategy))
	s.root = as.Root.SpawnPrefix(props, "worker")
	return s
}

// Spawn starts props as a supervised child of the root supervisor. The
// child runs on the shared internal dispatcher unless props name another.
func (s *System) Spawn(name string, props *actor.Props) (*actor.PID, error) {
	req := &spawnChild{props: props, name: name, reply: make(chan spawnResult, 1)}
	select {
	case <-s.stopped:
		return nil, ErrStopped
	default:
	}
	s.AS.Root.Send(s.root, req)
	select {
	case r := <-req.reply:
		return r.pid, r.err
	case <-s.stopped:
		return nil, ErrStopped
	}
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
	props *actor.Props
	name  string
	reply chan spawnResult
}

type spawnResult struct {
	pid *actor.PID
	err error
}

// supervisor is the root actor: it spawns children on request; failures of
// children are handled by the strategy in its props. It closes stopped once
// it has stopped, which protoactor does only after all its children.
type supervisor struct{ stopped chan struct{} }

func (sv *supervisor) Receive(ctx actor.Context) {
	if _, ok := ctx.Message().(*actor.Stopped); ok {
		close(sv.stopped)
		return
	}
	if m, ok := ctx.Message().(*spawnChild); ok {
		var r spawnResult
		if m.name == "" {
			r.pid = ctx.Spawn(m.props)
		} else {
			r.pid, r.err = ctx.SpawnNamed(m.props, m.name)
		}
		m.reply <- r
	}
}

// loggingStrategy logs each failure of a child with its reason before
// applying the wrapped strategy.
type loggingStrategy struct {
	log   *slog.Logger
	inner actor.SupervisorStrategy
}

func (l *loggingStrategy) HandleFailure(as *actor.ActorSystem, sup actor.Supervisor, child *actor.PID, rs *actor.RestartStatistics, reason, message any) {
	l.log.Error("iii: internal actor failed; restarting it", "actor", child.Id, "reason", fmt.Sprint(reason),
		"message", fmt.Sprintf("%T", message), "failures", rs.FailureCount()+1)
	l.inner.HandleFailure(as, sup, child, rs, reason, message)
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

// Request sends msg (which carries f) to pid and waits for f.
func Request[T any](ctx context.Context, s *System, pid *actor.PID, f *Future[T], msg any) (T, error) {
	s.Send(pid, msg)
	return f.Wait(ctx)
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
