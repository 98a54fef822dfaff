// Package connection is the connection actor of an iii worker: it dials the
// engine, runs the connection state machine, reconnects with backoff, keeps
// the socket alive, sends reattach first on every reconnect, and parks the
// frames of calls made while disconnected until the next connection. The
// wire codec lives in the subpackage wire.
//
// It is an implementation package of the iii SDK (github.com/iii-go/iii),
// importable for the SDK's own use: it follows the SDK's version (iii.Version)
// and its API may change in any release. Programs use the root package iii,
// which documents every type they need.
package connection

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/gorilla/websocket"

	"github.com/iii-go/iii/actors"
	"github.com/iii-go/iii/connection/wire"
	"github.com/iii-go/iii/internal/bufconn"
	"github.com/iii-go/iii/internal/faults"
	"github.com/iii-go/iii/internal/goid"
)

// State is the state of the connection to the engine.
type State int32

// The connection states.
const (
	Disconnected State = iota // not started, or shut down
	Connecting                // first connection attempt in progress
	Connected                 // registered with the engine
	Reconnecting              // lost the connection; retrying with backoff
	Failed                    // gave up: retries exhausted or refused for good
)

// String returns the name used in logs and error texts.
func (s State) String() string {
	switch s {
	case Disconnected:
		return "disconnected"
	case Connecting:
		return "connecting"
	case Connected:
		return "connected"
	case Reconnecting:
		return "reconnecting"
	case Failed:
		return "failed"
	}
	return fmt.Sprintf("State(%d)", int32(s))
}

// Errors of the connection.
var (
	// ErrFailed: the connection gave up (retries exhausted or a fatal refusal).
	ErrFailed = errors.New("iii: connection to the engine failed")
	// ErrClosed: the connection was shut down.
	ErrClosed = errors.New("iii: connection shut down")
)

// Backoff is the reconnect schedule: the n-th consecutive failed attempt
// waits min(Initial·Multiplier^n, Max), randomised by ±Jitter. An attempt
// fails unless the engine registers the worker (workerregistered) and the
// connection then stays up for Stable: a handshake the engine answers
// with an auth error and a Close, or a connection that drops soon after,
// counts as failed, so a refused worker backs off and MaxRetries ends it.
// The count resets once a connection passed that test.
type Backoff struct {
	Initial    time.Duration
	Max        time.Duration
	Multiplier float64
	Jitter     float64       // fraction, e.g. 0.3 for ±30 %
	MaxRetries int           // consecutive failed attempts before Failed; <0 retries forever
	Stable     time.Duration // default DefaultStable
}

// DefaultStable is the default Backoff.Stable.
const DefaultStable = 10 * time.Second

// Delay returns the wait before attempt n (0-based), jitter included.
func (b Backoff) Delay(n int) time.Duration {
	d := float64(b.Initial)
	for i := 0; i < n && d < float64(b.Max); i++ {
		d *= b.Multiplier
	}
	d = min(d, float64(b.Max))
	if b.Jitter > 0 {
		d *= 1 + b.Jitter*(2*rand.Float64()-1)
	}
	return time.Duration(d)
}

// Router receives what the connection does not handle itself.
type Router interface {
	// Frame handles a decoded frame from the engine. It runs on the socket's
	// read goroutine and must not block for long.
	Frame(s *Socket, m wire.Message)
	// Opened is called when a socket is up and reattach is queued; it queues
	// the replay of registrations and then calls done, from any goroutine.
	Opened(s *Socket, done func())
	// Closed is called once per socket when it died or was closed.
	Closed(s *Socket, err error)
	// Failed is called when the connection gives up for good or shuts down.
	Failed(err error)
}

// Binder is told which socket a frame was queued on (under the connection's
// lock, before the frame is queued), so that its outcome can be tied to it.
type Binder interface {
	Bind(s *Socket)
}

// Config configures a Conn. Zero durations take the defaults below.
type Config struct {
	URL         string
	Header      http.Header
	TLSConfig   *tls.Config
	DialTimeout time.Duration // default 10 s
	// PingInterval is how often the worker pings the engine; default 20 s,
	// at most IdleTimeout/2 (a longer one is shortened to that).
	PingInterval time.Duration
	// IdleTimeout: a socket on which nothing (frame, ping or pong) has
	// arrived for this long is dropped at that moment, and so is one whose
	// network write has made no progress for this long (an engine that
	// stopped reading). Default 60 s.
	IdleTimeout time.Duration
	Backoff     Backoff
	QueueSize   int // outbound frames per socket; default 1024
	MaxParked   int // frames parked while disconnected; default 10 000
	// ReadLimit bounds an incoming frame; a bigger one ends the socket
	// (the worker reconnects). Default 65 MiB.
	ReadLimit int64
	// Metadata builds the engine::workers::register frame sent after the replay.
	Metadata func() wire.Message
	OnState  func(State)
	// OnRetry, if set, is told of each reconnect scheduled: the attempt
	// number since the last successful connection, and the delay chosen.
	OnRetry func(attempt int, delay time.Duration)
	Log     *slog.Logger
	Router  Router
	// BaseContext is the parent of every socket's Context; nil means
	// context.Background().
	BaseContext context.Context
}

// Defaults of Config.
const (
	DefaultDialTimeout  = 10 * time.Second
	DefaultPingInterval = 20 * time.Second
	DefaultIdleTimeout  = 60 * time.Second
	DefaultQueueSize    = 1024
	DefaultMaxParked    = 10000
	DefaultReadLimit    = 65 << 20
)

// DefaultBackoff is the reconnect schedule of the official SDKs: 1 s
// doubling to 30 s with ±30 % jitter, forever.
var DefaultBackoff = Backoff{Initial: time.Second, Max: 30 * time.Second, Multiplier: 2, Jitter: 0.3, MaxRetries: -1}

// Conn is the handle to the connection actor.
type Conn struct {
	cfg  Config
	sys  *actors.System
	pid  *actor.PID
	log  *slog.Logger
	ctx  context.Context // ends at Close
	stop context.CancelFunc

	cur atomic.Pointer[Socket] // open for traffic: replay and parked frames sent

	mu      sync.Mutex
	parked  []parked
	space   chan struct{} // one token per free parking slot
	state   State
	changed chan struct{} // closed and replaced at every state change
	lastErr error

	notify stateNotifier

	gone     chan struct{}        // closed once the actor has stopped for good
	failErr  error                // under mu: set by Fail
	dialSock map[*Socket]struct{} // under mu: dialed sockets the actor has not taken yet

	// Owned by the actor (survive its restarts, which reconcile them; see
	// connActor).
	ended      bool       // finish ran
	self       *actor.PID // the actor's own PID, as the actor sees it
	sock       *Socket    // the socket being opened or open
	dialing    bool
	attempt    int
	everOpened bool
	gen        uint64        // of the latest dial
	opened     uint64        // gen of the socket last opened for traffic
	registered uint64        // gen of the socket last registered by the engine
	regAt      time.Time     // when registered was set
	early      *socketClosed // the dial in flight's socket died before its dialed message
	earlyFatal *fatal        // the dial in flight's socket was refused for good before its dialed message
	workerID   string
	token      string
	retry      *time.Timer
	closed     bool
	sockets    sync.WaitGroup
}

type parked struct {
	ctx      context.Context
	deadline time.Time
	m        wire.Message
	b        Binder
}

// New starts the connection actor under sys's supervisor; it dials at once.
func New(sys *actors.System, cfg Config) (*Conn, error) {
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = DefaultPingInterval
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	// A live engine answers every ping; two per idle timeout at least
	// keep an idle but healthy connection up.
	if half := cfg.IdleTimeout / 2; half > 0 && cfg.PingInterval > half {
		cfg.PingInterval = half
	}
	if cfg.Backoff.Initial <= 0 {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = DefaultQueueSize
	}
	if cfg.MaxParked <= 0 {
		cfg.MaxParked = DefaultMaxParked
	}
	if cfg.ReadLimit <= 0 {
		cfg.ReadLimit = DefaultReadLimit
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	ctx, stop := context.WithCancel(context.Background())
	c := &Conn{cfg: cfg, sys: sys, log: cfg.Log, ctx: ctx, stop: stop,
		space: make(chan struct{}, cfg.MaxParked), changed: make(chan struct{}),
		gone: make(chan struct{}), dialSock: map[*Socket]struct{}{}}
	for range cfg.MaxParked {
		c.space <- struct{}{}
	}
	c.notify.start(cfg.OnState, c.log)
	props := actor.PropsFromProducer(func() actor.Actor { return &connActor{c: c} },
		actor.WithDispatcher(sys.Dispatcher))
	pid, err := sys.SpawnCritical("connection", props)
	if err != nil {
		stop()
		c.notify.close(context.Background())
		return nil, err
	}
	c.pid = pid
	return c, nil
}

// State returns the current state.
func (c *Conn) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// LastError returns the error of the last failed attempt or lost socket.
func (c *Conn) LastError() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastErr
}

// Current returns the socket open for traffic, or nil while disconnected.
func (c *Conn) Current() *Socket { return c.cur.Load() }

// WorkerID returns the id the engine gave this worker on its current (or
// last) connection.
func (c *Conn) WorkerID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.workerID
}

// WaitConnected blocks until the connection is open, it failed, or ctx ends.
func (c *Conn) WaitConnected(ctx context.Context) error {
	for {
		c.mu.Lock()
		st, ch, err := c.state, c.changed, c.lastErr
		c.mu.Unlock()
		switch {
		case st == Connected:
			return nil
		case st == Failed:
			return failedErr(err)
		case c.ctx.Err() != nil:
			return ErrClosed
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Send queues m on the open socket; b, if not nil, is bound to that socket
// first. While disconnected, m is parked and sent after the next connect's
// replay, unless ctx has ended or deadline passed by then (a zero deadline
// means none; a nil ctx never ends). Send blocks while the parking lot or
// the socket queue is full.
func (c *Conn) Send(ctx context.Context, m wire.Message, b Binder, deadline time.Time) error {
	if s := c.cur.Load(); s != nil {
		if b != nil {
			b.Bind(s)
		}
		return s.Send(ctx, m)
	}
	var cdone <-chan struct{}
	if ctx != nil {
		cdone = ctx.Done()
	}
	select {
	case <-c.space:
	case <-cdone:
		return ctx.Err()
	case <-c.ctx.Done():
		return ErrClosed
	}
	c.mu.Lock()
	if s := c.cur.Load(); s != nil { // connected meanwhile
		c.mu.Unlock()
		c.space <- struct{}{}
		if b != nil {
			b.Bind(s)
		}
		return s.Send(ctx, m)
	}
	if c.state == Failed || c.closed {
		err := ErrClosed
		if c.state == Failed {
			err = failedErr(c.lastErr)
		}
		c.mu.Unlock()
		c.space <- struct{}{}
		return err
	}
	c.parked = append(c.parked, parked{ctx: ctx, deadline: deadline, m: m, b: b})
	c.mu.Unlock()
	return nil
}

// Close shuts the connection down: the socket is closed with a Close frame,
// parked frames are dropped, and the actor stops reconnecting. It waits for
// the actor to confirm, for the socket goroutines to exit and for the
// OnState callback to return, until ctx ends; it reports whether all of
// that happened. It does not wait for the OnState callback when called
// from it, nor for an actor that is gone.
func (c *Conn) Close(ctx context.Context) bool {
	done := make(chan struct{})
	c.sys.Send(c.pid, &closeConn{done: done})
	ok := true
	select {
	case <-done:
	case <-c.gone:
	case <-ctx.Done():
		ok = false
		c.log.Warn("iii: connection actor did not confirm shutdown")
	}
	c.stop()
	if !waitCtx(ctx, c.sockets.Wait) {
		ok = false
		c.log.Warn("iii: socket goroutines did not exit in time; abandoning them")
	}
	if !c.notify.close(ctx) {
		ok = false
		c.log.Warn("iii: OnStateChange did not return in time; abandoning it")
	}
	return ok
}

// Fail ends the connection for good with err, whether or not its actor
// still runs: the socket is dropped, parked frames and pending calls fail
// (Router.Failed), and the state becomes Failed with err as LastError.
func (c *Conn) Fail(err error) {
	c.mu.Lock()
	if c.failErr == nil {
		c.failErr = err
	}
	c.mu.Unlock()
	select {
	case <-c.gone: // its last act was finish; make the state say why
		c.setState(Failed, err)
	default: // if it stops before it reads this, Stopped applies failErr
		c.sys.Send(c.pid, &failConn{})
	}
}

// waitCtx runs wait, giving up when ctx ends; it reports whether wait returned.
func waitCtx(ctx context.Context, wait func()) bool {
	done := make(chan struct{})
	go func() {
		wait()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-ctx.Done():
		return false
	}
}

// The SDK's supervision tests make the connection actor panic.
func init() {
	faults.Set("connection", func(target any, _ string) {
		c := target.(*Conn)
		c.sys.Send(c.pid, &crash{})
	})
}

func (c *Conn) setState(st State, err error) {
	c.mu.Lock()
	if err != nil {
		c.lastErr = err
	}
	if c.state == st {
		c.mu.Unlock()
		return
	}
	c.state = st
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
	c.log.Debug("iii: connection state", "state", st, "err", err)
	c.notify.push(st)
}

// open makes s the socket for traffic: parked frames go first (those whose
// caller gave up are dropped), then the worker metadata, then s becomes
// Current. Callers that arrive meanwhile park, and their frames go out in
// the next round, so the order of frames is kept. Nothing is sent under
// c.mu: a full socket queue blocks only the replay, not State or Send.
//
// If s dies half way, every parking slot is returned at once; the awaited
// calls not yet sent are bound to s, so that they fail with s's calls
// (the router's Closed) instead of waiting out their timeout, and Void
// frames not yet sent stay parked for the next connection.
func (c *Conn) open(s *Socket) {
	if !c.replayParked(s, false) {
		return
	}
	if c.cfg.Metadata != nil {
		if s.Send(c.ctx, c.cfg.Metadata()) != nil {
			return
		}
	}
	c.replayParked(s, true)
}

// replayParked sends the parked frames on s until none is left, and
// reports whether s took them all. With final set, s becomes Current in
// the same critical section that finds the parking lot empty, so that no
// caller can park behind the last round.
func (c *Conn) replayParked(s *Socket, final bool) bool {
	for {
		batch := c.takeParked(s, final)
		if len(batch) == 0 {
			return true
		}
		now := time.Now()
		for i, p := range batch {
			if p.expired(now) {
				c.space <- struct{}{}
				continue
			}
			if p.b != nil {
				p.b.Bind(s)
			}
			if s.Send(c.ctx, p.m) != nil {
				c.unpark(s, batch[i:], now)
				return false
			}
			c.space <- struct{}{}
		}
	}
}

// unpark settles the parked frames that s, dead, did not take: awaited
// calls are bound to s (they fail with its calls), Void frames park again
// ahead of those parked since, expired ones are dropped. Every slot of a
// frame that leaves the parking lot is returned.
func (c *Conn) unpark(s *Socket, rest []parked, now time.Time) {
	var keep []parked
	for _, p := range rest {
		switch {
		case p.expired(now):
		case p.b != nil:
			p.b.Bind(s)
		default:
			keep = append(keep, p)
			continue
		}
		c.space <- struct{}{}
	}
	if len(keep) > 0 {
		c.mu.Lock()
		c.parked = append(keep, c.parked...)
		c.mu.Unlock()
	}
}

// takeParked empties the parking lot and returns what it held; with final
// set and nothing parked, s becomes Current in the same critical section.
func (c *Conn) takeParked(s *Socket, final bool) []parked {
	c.mu.Lock()
	defer c.mu.Unlock()
	if openHook != nil {
		openHook()
	}
	batch := c.parked
	c.parked = nil
	if len(batch) == 0 && final {
		c.cur.Store(s)
	}
	return batch
}

func (p *parked) expired(now time.Time) bool {
	return (p.ctx != nil && p.ctx.Err() != nil) || (!p.deadline.IsZero() && now.After(p.deadline))
}

// openHook, if set (by tests), runs inside open (takeParked) with c.mu held.
var openHook func()

// dialedHook, if set (by tests), runs on the dial's goroutine before it
// reports the dial to the actor; fatalHook once a refusal for good has
// been sent to the actor.
var dialedHook, fatalHook func()

// dropParked discards parked frames (their callers are failed by the router).
func (c *Conn) dropParked() {
	c.mu.Lock()
	for range c.parked {
		c.space <- struct{}{}
	}
	clear(c.parked)
	c.parked = c.parked[:0]
	c.mu.Unlock()
}

// Messages of the connection actor.
type (
	dialed struct {
		s   *Socket
		err error
		gen uint64
	}
	replayed     struct{ s *Socket }
	socketClosed struct {
		s   *Socket
		err error
	}
	retryNow         struct{}
	workerRegistered struct {
		s *Socket
		m *wire.WorkerRegistered
	}
	fatal struct {
		s   *Socket
		err error
	}
	closeConn struct{ done chan struct{} }
	failConn  struct{}
	crash     struct{}
)

// connActor is the connection state machine. Its state lives in Conn, so a
// restart after a failure keeps the reattach credentials and the worker id.
//
// Supervision policy: restart. A restart means a bug of ours panicked,
// perhaps half way through a multi-step update, so it reconciles: the
// socket is dropped (every call tied to it fails now), a dial in flight is
// disowned (its result is stale by generation), a scheduled retry is
// cancelled, and the new instance dials afresh. When the restart budget is
// spent the actor stops; Stopped then closes everything and the worker
// fails (see actors.System).
type connActor struct{ c *Conn }

func (a *connActor) Receive(ctx actor.Context) {
	c := a.c
	c.self = ctx.Self()
	switch m := ctx.Message().(type) {
	case *actor.Started:
		if !c.closed && c.sock == nil && !c.dialing && c.State() != Failed {
			c.dial()
		}
	case *actor.Restarting:
		c.reconcile()
	case *actor.Stopped:
		c.mu.Lock()
		err := c.failErr
		c.mu.Unlock()
		if err == nil {
			err = errors.New("iii: connection actor stopped")
		}
		c.finish(err)
		close(c.gone)
	case *failConn:
		c.mu.Lock()
		err := c.failErr
		c.mu.Unlock()
		c.finish(err)
	case *dialed:
		if m.s != nil {
			c.mu.Lock()
			delete(c.dialSock, m.s)
			c.mu.Unlock()
		}
		if m.gen != c.gen { // disowned by a restart
			if m.s != nil {
				m.s.Kill(errors.New("iii: stale dial"))
			}
			return
		}
		c.dialing = false
		if m.err != nil {
			c.setState(c.retryState(), m.err)
			c.log.Warn("iii: cannot connect to the engine", "url", RedactURL(c.cfg.URL), "err", m.err)
			c.scheduleRetry()
			return
		}
		if c.closed {
			m.s.Close(ErrClosed)
			return
		}
		c.sock = m.s
		if f := c.earlyFatal; f != nil {
			c.earlyFatal, c.early = nil, nil
			if f.s == m.s { // refused for good before its dial was reported
				c.fatalSocket(f)
				return
			}
		}
		if early := c.early; early != nil {
			c.early = nil
			if early.s == m.s { // it died before its dial was reported
				c.socketGone(early)
				return
			}
		}
		s, pid, sys := m.s, c.self, c.sys
		c.cfg.Router.Opened(s, func() { sys.Send(pid, &replayed{s: s}) })
	case *replayed:
		if m.s != c.sock || !m.s.Alive() {
			return
		}
		c.open(m.s)
		c.opened = m.s.gen
		c.everOpened = true
		c.connectedIfRegistered()
	case *workerRegistered:
		// It can arrive before the dialed message of its socket; the
		// generation says whether it is the latest socket's.
		if m.s.gen == c.gen {
			c.mu.Lock()
			c.workerID, c.token = m.m.WorkerID, m.m.ReattachToken
			c.mu.Unlock()
			c.registered, c.regAt = m.s.gen, time.Now()
			c.connectedIfRegistered()
		}
	case *socketClosed:
		if m.s != c.sock {
			if c.dialing && m.s.gen == c.gen {
				c.early = m // the socket of the dial in flight: see dialed
			}
			return
		}
		c.socketGone(m)
	case *fatal:
		if m.s != c.sock {
			if c.dialing && m.s.gen == c.gen {
				// The engine's refusal can overtake the dial's own result:
				// dropped, it left the worker connected, and refused.
				c.earlyFatal = m
			}
			return
		}
		c.fatalSocket(m)
	case *retryNow:
		c.retry = nil
		if !c.closed && c.sock == nil && !c.dialing && c.State() != Failed {
			c.dial()
		}
	case *closeConn:
		c.finish(nil)
		close(m.done)
	case *crash:
		panic("iii: connection actor crash requested")
	}
}

// fatalSocket fails the connection for good with the refusal of its
// current socket m.s.
func (c *Conn) fatalSocket(m *fatal) {
	// Detach the socket first: its close must not look like a lost
	// connection, which would schedule a reconnect.
	c.sock = nil
	c.cur.CompareAndSwap(m.s, nil)
	c.fail(m.err)
	m.s.Close(m.err)
	c.cfg.Router.Closed(m.s, m.err)
}

// socketGone handles the death of the current socket m.s: the router is
// told and a reconnect scheduled.
func (c *Conn) socketGone(m *socketClosed) {
	c.sock = nil
	c.cur.CompareAndSwap(m.s, nil)
	c.cfg.Router.Closed(m.s, m.err)
	if c.closed {
		return
	}
	stable := c.cfg.Backoff.Stable
	if stable <= 0 {
		stable = DefaultStable
	}
	if c.registered == m.s.gen && time.Since(c.regAt) >= stable {
		c.attempt = 0 // it was a working connection: start the schedule afresh
	}
	c.log.Warn("iii: lost the connection to the engine; reconnecting", "err", m.err)
	c.setState(Reconnecting, m.err)
	c.scheduleRetry()
}

// reconcile makes the actor's state consistent again after a panic.
func (c *Conn) reconcile() {
	c.gen++
	c.dialing = false
	c.early, c.earlyFatal = nil, nil
	if c.retry != nil {
		c.retry.Stop()
		c.retry = nil
	}
	if s := c.sock; s != nil {
		c.sock = nil
		c.cur.CompareAndSwap(s, nil)
		err := errors.New("iii: connection actor restarted")
		s.Kill(err)
		c.cfg.Router.Closed(s, err)
	}
	if !c.closed && c.State() != Failed {
		c.setState(c.retryState(), nil)
	}
}

// finish ends the connection for good: closed by Close (err nil) or failed
// with err. It runs once, on the actor.
func (c *Conn) finish(err error) {
	if c.ended {
		return
	}
	c.ended = true
	c.mu.Lock()
	c.closed = true
	dialed := c.dialSock
	c.dialSock = map[*Socket]struct{}{}
	c.mu.Unlock()
	if c.retry != nil {
		c.retry.Stop()
	}
	c.stop()
	for s := range dialed {
		s.Kill(ErrClosed)
	}
	if s := c.sock; s != nil {
		c.sock = nil
		c.cur.CompareAndSwap(s, nil)
		if err == nil {
			s.Close(ErrClosed)
			c.cfg.Router.Closed(s, ErrClosed)
		} else {
			s.Kill(err)
			c.cfg.Router.Closed(s, err)
		}
	}
	c.dropParked()
	if err == nil {
		c.cfg.Router.Failed(ErrClosed)
		c.setState(Disconnected, nil)
		return
	}
	c.setState(Failed, err)
	c.cfg.Router.Failed(failedErr(err))
}

// connectedIfRegistered enters Connected once the current socket is open
// for traffic and the engine has registered it (workerregistered), so that
// a connected worker always knows its worker id.
func (c *Conn) connectedIfRegistered() {
	if c.sock != nil && c.opened == c.sock.gen && c.registered == c.sock.gen {
		c.setState(Connected, nil)
	}
}

func (c *Conn) retryState() State {
	if c.everOpened {
		return Reconnecting
	}
	return Connecting
}

func (c *Conn) fail(err error) {
	c.setState(Failed, err)
	c.dropParked()
	c.cfg.Router.Failed(failedErr(err))
}

func (c *Conn) scheduleRetry() {
	b := c.cfg.Backoff
	if b.MaxRetries >= 0 && c.attempt >= b.MaxRetries {
		c.log.Error("iii: giving up on the engine after the configured retries", "retries", b.MaxRetries, "err", c.LastError())
		c.fail(fmt.Errorf("gave up after %d reconnect attempts: %w", b.MaxRetries, c.LastError()))
		return
	}
	d := b.Delay(c.attempt)
	if c.cfg.OnRetry != nil {
		c.cfg.OnRetry(c.attempt, d)
	}
	c.attempt++
	sys, pid := c.sys, c.self
	c.retry = time.AfterFunc(d, func() { sys.Send(pid, &retryNow{}) })
}

// dial connects in the background and reports to the actor.
func (c *Conn) dial() {
	c.dialing = true
	if !c.everOpened {
		c.setState(Connecting, nil)
	} else {
		c.setState(Reconnecting, nil)
	}
	c.gen++
	gen := c.gen
	var reattach *wire.Reattach
	if c.workerID != "" { // credentials of the previous connection, taken now
		reattach = &wire.Reattach{PreviousWorkerID: c.workerID, ReattachToken: c.token}
	}
	sys, pid := c.sys, c.self
	c.sockets.Add(1)
	go func() {
		defer c.sockets.Done()
		s, err := c.connect(pid, gen, reattach)
		if s != nil {
			c.mu.Lock()
			if c.closed { // the actor may be gone: nobody else would close s
				c.mu.Unlock()
				s.Kill(ErrClosed)
				return
			}
			c.dialSock[s] = struct{}{}
			c.mu.Unlock()
		}
		if dialedHook != nil {
			dialedHook()
		}
		sys.Send(pid, &dialed{s: s, err: err, gen: gen})
	}()
}

// connect dials; reattach, if any, is queued before anything else can be.
func (c *Conn) connect(pid *actor.PID, gen uint64, reattach *wire.Reattach) (*Socket, error) {
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.DialTimeout)
	defer cancel()
	var bc *bufconn.Conn
	d := websocket.Dialer{
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			nc, err := (&net.Dialer{KeepAlive: 30 * time.Second}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			// A network write that makes no progress for the idle
			// timeout fails: the engine stopped reading.
			bc = &bufconn.Conn{Conn: nc, WriteTimeout: c.cfg.IdleTimeout}
			return bc, nil
		},
		TLSClientConfig:  c.cfg.TLSConfig,
		HandshakeTimeout: c.cfg.DialTimeout,
		ReadBufferSize:   64 << 10,
		WriteBufferSize:  64 << 10,
		// Without TLS the socket writes its frames with bufconn's
		// WriteFrame, not with gorilla's writers: a pool that is never
		// filled keeps gorilla from allocating its write buffer up front
		// (it allocates one on first use: over TLS).
		WriteBufferPool: bufconn.NoBufferPool{},
	}
	ws, resp, err := d.DialContext(ctx, c.cfg.URL, c.cfg.Header)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("dial %s: %w (HTTP %s)", RedactURL(c.cfg.URL), err, resp.Status)
		}
		return nil, fmt.Errorf("dial %s: %w", RedactURL(c.cfg.URL), err)
	}
	bc.Buffer()
	sys := c.sys
	c.sockets.Add(1)
	s := newSocket(ws, bc, socketConfig{
		gen: gen, base: c.cfg.BaseContext, queue: c.cfg.QueueSize, ping: c.cfg.PingInterval, idle: c.cfg.IdleTimeout, log: c.log, readLimit: c.cfg.ReadLimit,
		onFrame: func(s *Socket, m wire.Message) { c.frame(pid, s, m) },
		onClose: func(s *Socket, err error) {
			sys.Send(pid, &socketClosed{s: s, err: err})
		},
	})
	go func() { // account for the socket's goroutines in Close
		s.Wait()
		c.sockets.Done()
	}()
	if reattach != nil {
		_ = s.Send(c.ctx, reattach)
	}
	return s, nil
}

// frame handles the connection-level frames and routes the rest.
func (c *Conn) frame(self *actor.PID, s *Socket, m wire.Message) {
	switch m := m.(type) {
	case *wire.Ping:
		_ = s.TrySend(&wire.Pong{})
	case *wire.WorkerRegistered:
		c.sys.Send(self, &workerRegistered{s: s, m: m})
	case *wire.ErrorFrame:
		c.log.Error("iii: the engine refused the connection", "code", m.Error.Code, "message", m.Error.Message)
		c.mu.Lock()
		c.lastErr = &RefusedError{Code: m.Error.Code, Message: m.Error.Message}
		c.mu.Unlock()
	case *wire.RegistrationRejected:
		if err := NewRegistrationRejectedError(m); err.Fatal() {
			// A worker conflict, or a code this SDK does not know: the
			// engine closes the connection, and a reconnect would be
			// rejected again.
			c.log.Error("iii: the engine refused this worker for good", "err", err)
			c.sys.Send(self, &fatal{s: s, err: err})
			if fatalHook != nil {
				fatalHook()
			}
			return
		}
		c.cfg.Router.Frame(s, m)
	default:
		c.cfg.Router.Frame(s, m)
	}
}

// RefusedError is a refusal by the engine: an auth failure (code
// AUTH_ERROR) or a registration rejected for good.
type RefusedError struct {
	Code    string
	Message string
}

// Error implements the error interface.
func (e *RefusedError) Error() string { return "iii: engine refused: " + e.Code + ": " + e.Message }

// stateNotifier calls OnState for each change, in order, on its own
// goroutine. At most maxQueuedStates changes wait for it: beyond that the
// oldest are dropped (and logged), the latest always delivered.
type stateNotifier struct {
	mu      sync.Mutex
	queue   []State
	wake    chan struct{}
	done    chan struct{}
	closed  bool
	fn      func(State)
	log     *slog.Logger
	g       atomic.Uint64 // id of the notifier's goroutine
	dropped int           // changes dropped because the callback fell behind
}

// maxQueuedStates bounds the state changes waiting for a callback that
// does not return (a flapping connection would grow the queue for as long
// as it blocks).
const maxQueuedStates = 1024

func (n *stateNotifier) start(fn func(State), log *slog.Logger) {
	n.fn, n.log = fn, log
	if fn == nil {
		return
	}
	n.wake = make(chan struct{}, 1)
	n.done = make(chan struct{})
	go func() {
		defer close(n.done)
		n.g.Store(goid.ID())
		for range n.wake {
			for {
				n.mu.Lock()
				if len(n.queue) == 0 {
					n.mu.Unlock()
					break
				}
				st := n.queue[0]
				n.queue = n.queue[1:]
				n.mu.Unlock()
				n.call(st)
			}
		}
	}()
}

// call runs the callback; a panic in it is logged, not fatal to the
// process, and later changes are still delivered.
func (n *stateNotifier) call(st State) {
	defer func() {
		if v := recover(); v != nil {
			n.log.Error("iii: OnStateChange panicked", "state", st, "panic", fmt.Sprint(v))
		}
	}()
	n.fn(st)
}

func (n *stateNotifier) push(st State) {
	if n.fn == nil {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return
	}
	if len(n.queue) >= maxQueuedStates {
		// The callback is that far behind: the oldest change it has not
		// seen goes, and the latest state still reaches it.
		n.queue = n.queue[1:]
		n.dropped++
		if n.dropped == 1 || n.dropped%maxQueuedStates == 0 {
			n.log.Warn("iii: OnStateChange is not keeping up; dropping the oldest state changes it has not seen", "dropped", n.dropped)
		}
	}
	n.queue = append(n.queue, st)
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// close delivers what is queued and stops the goroutine. It waits for that
// until ctx ends, except when called from the callback itself (which would
// wait for itself): then the goroutine ends after the callback returns. It
// reports false if it gave up waiting.
func (n *stateNotifier) close(ctx context.Context) bool {
	if n.fn == nil {
		return true
	}
	n.mu.Lock()
	if !n.closed {
		n.closed = true
		close(n.wake)
	}
	n.mu.Unlock()
	if n.g.Load() == goid.ID() {
		return true
	}
	select {
	case <-n.done:
		return true
	case <-ctx.Done():
		return false
	}
}

// failedErr is ErrFailed with its cause, if any, on one line.
func failedErr(err error) error {
	if err == nil {
		return ErrFailed
	}
	return fmt.Errorf("%w: %w", ErrFailed, err)
}
