// Package channel holds the per-channel actors of an iii worker: one
// supervised actor per open end (Reader or Writer) of a data channel, each
// owning the WebSocket of that end on the engine's /ws/channels endpoint.
//
// The actor is the owner and lifecycle manager of its socket: it is spawned
// under the worker's root supervisor (or under a shared standalone system
// for ends opened without a worker), starts the goroutines that use the
// socket, closes the socket when the end is closed, fails, or its
// supervisor stops (a worker's Shutdown), and waits for those goroutines to
// exit before it stops.
//
// The data does not travel through the actor's mailbox. A Writer copies
// each chunk into a bounded Go channel drained by the writer goroutine the
// actor started: a slow reader blocks Write (memory stays bounded), a
// WriteContext whose context ends leaves the stream intact, and Close or a
// Shutdown never wait behind a blocked write. A Reader reads frames
// straight from the socket into the caller's buffer, with no goroutine,
// queue or copy in between.
//
// Measured (bench_test.go, 2 cores shared with other jobs, so wall times
// vary by ±30 %): handing a 64 KiB chunk on costs 1.7 µs through the Go
// channel and 2.8 µs as a protoactor message (BenchmarkChunkHandoff), about
// 1 % of the 200 µs a chunk takes end to end through the engine double, so
// neither hurts throughput (BenchmarkDataPath: all six writer/reader
// combinations within noise, CPU per stream within ±7 %). The actor hop was
// not kept because mailboxes give no back-pressure (unbounded, or bounded
// with a spinning sender) and a blocking socket write inside Receive would
// need a dispatcher of its own; the reader's queue was not kept because it
// adds a copy and a goroutine for nothing. BenchmarkThroughput compares the
// Writer and Reader of this package with raw gorilla/websocket ends.
//
// It is an implementation package of the iii SDK (github.com/iii-go/iii),
// importable for the SDK's own use: it follows the SDK's version (iii.Version)
// and its API may change in any release. Programs use the root package iii,
// which documents every type they need.
package channel

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/gorilla/websocket"

	"github.com/iii-go/iii/actors"
)

// ChunkSize is the largest binary frame a Writer sends: writes are cut
// into frames of at most this size, as the other SDKs do.
const ChunkSize = 64 << 10

// Defaults.
const (
	// DefaultDialTimeout bounds the WebSocket handshake of an end.
	DefaultDialTimeout = 10 * time.Second
	// DefaultQueueChunks is how many chunks a Writer queues ahead of its
	// socket; with ChunkSize it bounds a Writer's buffered data to 512 KiB.
	DefaultQueueChunks = 8
	// CloseDelay is how long a Writer waits after its last data before it
	// sends its Close frame, as the engine expects (it drains frames for
	// 10 ms after a Close).
	CloseDelay = 10 * time.Millisecond
	// closeGrace bounds the wait for the engine's answer to a Close frame.
	closeGrace = time.Second
)

// Errors of channel ends. Every error an end returns (except io.EOF) is an
// *Error wrapping one of these or the cause from the network.
var (
	// ErrNotFound: the engine answered HTTP 404: no channel with this id,
	// or the access key is wrong.
	ErrNotFound = errors.New("iii: channel not found (unknown channel id or wrong access key)")
	// ErrTaken: the end is open already, in this process, or (for a
	// writer) elsewhere, which the engine reports by closing the socket at
	// once. The engine hands each end out once.
	ErrTaken = errors.New("iii: channel end already taken")
	// ErrClosed: the end was closed.
	ErrClosed = errors.New("iii: channel end closed")
	// ErrLost: the socket dropped mid-stream: the engine went away, or (for
	// a writer) the reader went away and the engine dropped the writer.
	ErrLost = errors.New("iii: channel connection lost")
	// ErrStopped: the supervisor of the end stopped (its worker shut down).
	ErrStopped = errors.New("iii: channel end stopped")
	// ErrInvalid: the end's configuration is unusable (bad URL or ref).
	ErrInvalid = errors.New("iii: invalid channel reference")
)

// Dir is the direction of an end.
type Dir uint8

// The directions.
const (
	Read  Dir = iota + 1 // the reading end
	Write                // the writing end
)

// String returns the name used in logs and error texts.
func (d Dir) String() string {
	switch d {
	case Read:
		return "read"
	case Write:
		return "write"
	}
	return fmt.Sprintf("Dir(%d)", uint8(d))
}

// Error is an error of one end of a channel. Use errors.As to read it and
// errors.Is to match the sentinel it wraps.
type Error struct {
	Op        string // "open", "read", "write" or "close"
	ChannelID string
	Dir       Dir
	// StatusCode is the engine's HTTP status when opening failed before
	// the WebSocket upgrade (404: ErrNotFound), or 0.
	StatusCode int
	Err        error
}

// Error implements the error interface.
func (e *Error) Error() string {
	return fmt.Sprintf("iii: channel %s (%s end): %s: %s", e.ChannelID, e.Dir, e.Op, strings.TrimPrefix(fmt.Sprint(e.Err), "iii: "))
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// lostError is ErrLost with its network cause (and io.ErrUnexpectedEOF for
// a reader: the stream ended without the engine's end-of-stream).
type lostError struct {
	cause error
	extra error
}

// Error implements the error interface.
func (e *lostError) Error() string { return ErrLost.Error() + ": " + e.cause.Error() }

func (e *lostError) Unwrap() []error {
	if e.extra != nil {
		return []error{ErrLost, e.extra, e.cause}
	}
	return []error{ErrLost, e.cause}
}

// Config configures an end.
type Config struct {
	// URL is the end's WebSocket URL:
	// <engine>/ws/channels/<id>?key=<key>&dir=read|write.
	URL       string
	ChannelID string
	// Sys supervises the end's actor: the worker's actor system. Nil means
	// the standalone system shared by all ends opened without a worker; it
	// is started with the first such end and stopped after the last one.
	Sys *actors.System
	// Ctx ends when the owner of the end shuts down (the worker's context);
	// it bounds opening. Nil means context.Background().
	Ctx context.Context
	// StopErr is the error of operations after the supervisor stopped the
	// end; default ErrStopped.
	StopErr     error
	TLSConfig   *tls.Config
	DialTimeout time.Duration // default DefaultDialTimeout
	QueueChunks int           // Writer only; default DefaultQueueChunks
	// ReadLimit bounds one WebSocket message a Reader reads; default
	// DefaultReadLimit. A bigger one fails the reader with ErrTooLarge.
	ReadLimit int64
	Log       *slog.Logger
}

// DefaultReadLimit is the default Config.ReadLimit (16 MiB).
const DefaultReadLimit = 16 << 20

// ErrTooLarge: a message exceeded the reader's ReadLimit, or a stream the
// bound of Reader.ReadAllLimit.
var ErrTooLarge = errors.New("iii: channel message or stream too large")

func (c *Config) defaults() {
	if c.Ctx == nil {
		c.Ctx = context.Background()
	}
	if c.StopErr == nil {
		c.StopErr = ErrStopped
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.ReadLimit <= 0 {
		c.ReadLimit = DefaultReadLimit
	}
	if c.QueueChunks <= 0 {
		c.QueueChunks = DefaultQueueChunks
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
}

// end is what a Reader and a Writer share: opening (once, lazily), the
// socket, the actor that owns it, and the first error that ended it.
type end struct {
	cfg Config
	dir Dir

	openMu  sync.Mutex // held while opening
	opened  bool       // the socket is up and the actor spawned
	closed  bool       // Close was called (or open failed for good)
	openErr error

	ws   *websocket.Conn
	sys  *actors.System
	own  bool                  // sys is the standalone system, acquired for this end
	goes func(*websocket.Conn) // starts the end's goroutines (on the actor)

	errMu sync.Mutex
	pid   *actor.PID    // set by the actor when it starts
	err   error         // why the socket is dead; nil while it lives
	dead  chan struct{} // closed when the socket is dead
	wg    sync.WaitGroup
	gone  chan struct{} // closed once the actor stopped and everything is released
}

func newEnd(cfg Config, dir Dir) end {
	cfg.defaults()
	return end{cfg: cfg, dir: dir, dead: make(chan struct{}), gone: make(chan struct{})}
}

func (e *end) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	var ce *Error
	if errors.As(err, &ce) {
		return err
	}
	return &Error{Op: op, ChannelID: e.cfg.ChannelID, Dir: e.dir, Err: err}
}

// open connects the end once; later calls return the first outcome. start
// runs on the actor when it starts.
func (e *end) open(ctx context.Context) error {
	e.openMu.Lock()
	defer e.openMu.Unlock()
	if e.opened || e.openErr != nil {
		return e.openErr
	}
	if e.closed {
		return e.wrap("open", ErrClosed)
	}
	err := e.connect(ctx)
	if err != nil {
		var ce *Error
		if !errors.As(err, &ce) {
			err = e.wrap("open", err)
		}
		if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			e.openErr = err // a cancelled open may be retried
		}
		return err
	}
	e.opened = true
	return nil
}

func (e *end) connect(ctx context.Context) error {
	if err := e.cfg.Ctx.Err(); err != nil {
		return e.cfg.StopErr
	}
	if !take(e.cfg.ChannelID, e.dir) {
		return ErrTaken
	}
	sys := e.cfg.Sys
	if sys == nil {
		sys, e.own = acquireStandalone(), true
	}
	fail := func(err error) error {
		release(e.cfg.ChannelID, e.dir)
		if e.own {
			releaseStandalone()
			e.own = false
		}
		return err
	}
	ws, err := e.dial(ctx)
	if err != nil {
		return fail(err)
	}
	e.ws, e.sys = ws, sys
	props := actor.PropsFromProducer(func() actor.Actor { return &endActor{e: e} }, actor.WithDispatcher(sys.Dispatcher))
	pid, err := sys.Spawn("", props)
	if err != nil {
		_ = ws.NetConn().Close()
		e.ws = nil
		if errors.Is(err, actors.ErrStopped) {
			err = e.cfg.StopErr
		}
		return fail(err)
	}
	_ = pid // the actor records its PID itself when it starts
	return nil
}

// dial performs the WebSocket handshake.
func (e *end) dial(ctx context.Context) (*websocket.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.DialTimeout)
	defer cancel()
	stop := context.AfterFunc(e.cfg.Ctx, cancel)
	defer stop()
	d := websocket.Dialer{
		TLSClientConfig:  e.cfg.TLSConfig,
		HandshakeTimeout: e.cfg.DialTimeout,
		ReadBufferSize:   ChunkSize,
		WriteBufferSize:  ChunkSize, // one frame per chunk (gorilla fragments at its buffer size)
	}
	ws, resp, err := d.DialContext(ctx, e.cfg.URL, nil)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err == nil {
		if e.dir == Read {
			ws.SetReadLimit(e.cfg.ReadLimit) // what the engine forwards comes from another worker
		} else {
			ws.SetReadLimit(-1) // a writer reads control frames only
		}
		return ws, nil
	}
	if e.cfg.Ctx.Err() != nil {
		return nil, e.cfg.StopErr
	}
	if resp != nil {
		ce := &Error{Op: "open", ChannelID: e.cfg.ChannelID, Dir: e.dir, StatusCode: resp.StatusCode,
			Err: fmt.Errorf("HTTP %s", resp.Status)}
		if resp.StatusCode == http.StatusNotFound {
			ce.Err = ErrNotFound
		}
		return nil, ce
	}
	return nil, err
}

// fail records why the socket died (the first cause wins), closes the
// connection, and tells the actor, which then stops.
func (e *end) fail(err error) {
	e.errMu.Lock()
	if e.err != nil {
		e.errMu.Unlock()
		return
	}
	e.err = err
	close(e.dead)
	pid := e.pid
	e.errMu.Unlock()
	if e.ws != nil {
		_ = e.ws.NetConn().Close()
	}
	if pid != nil {
		e.sys.Send(pid, socketDead{})
	}
}

// deadErr returns why the socket died, or nil.
func (e *end) deadErr() error {
	e.errMu.Lock()
	defer e.errMu.Unlock()
	return e.err
}

// markClosed marks the end closed by its user; it reports whether the end
// had been opened (and so has a socket to close).
func (e *end) markClosed() (opened bool) {
	e.openMu.Lock()
	defer e.openMu.Unlock()
	e.closed = true
	return e.opened
}

// socketDead tells the actor that its socket is dead.
type socketDead struct{}

// endActor owns one end's socket from open to close. Its state lives in
// the end, so a restart (a bug in Receive) loses nothing; the goroutines
// are started once.
type endActor struct {
	e *end
}

func (a *endActor) Receive(ctx actor.Context) {
	e := a.e
	switch ctx.Message().(type) {
	case *actor.Started:
		e.errMu.Lock()
		e.pid = ctx.Self()
		dead := e.err != nil
		e.errMu.Unlock()
		if dead { // closed before the actor ran
			ctx.Stop(ctx.Self())
			return
		}
		if e.goes != nil {
			start := e.goes
			e.goes = nil
			start(e.ws)
		}
	case socketDead:
		ctx.Stop(ctx.Self())
	case *actor.Stopping:
		// The end was closed or failed, or the supervisor is stopping
		// (the worker shuts down): in any case the socket goes now.
		e.fail(e.cfg.StopErr)
		e.wg.Wait()
	case *actor.Stopped:
		release(e.cfg.ChannelID, e.dir)
		if e.own {
			go func() { // Stop waits for this actor: not on its goroutine
				releaseStandalone()
				close(e.gone)
			}()
			return
		}
		close(e.gone)
	}
}

// waitGone waits until the end's actor has stopped and its goroutines have
// exited, or ctx ends.
func (e *end) waitGone(ctx context.Context) error {
	select {
	case <-e.gone:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Open ends in this process, by channel id and direction: the engine hands
// each end out once, and a second local open of a reader would look like
// an empty stream.
var local struct {
	sync.Mutex
	ends map[localKey]struct{}
}

type localKey struct {
	id  string
	dir Dir
}

func take(id string, dir Dir) bool {
	local.Lock()
	defer local.Unlock()
	k := localKey{id, dir}
	if _, ok := local.ends[k]; ok {
		return false
	}
	if local.ends == nil {
		local.ends = make(map[localKey]struct{})
	}
	local.ends[k] = struct{}{}
	return true
}

func release(id string, dir Dir) {
	local.Lock()
	delete(local.ends, localKey{id, dir})
	local.Unlock()
}

// The standalone system supervises ends opened without a worker. It is
// started by the first such end and stopped when the last one has stopped,
// so that it leaves no goroutine behind.
var standalone struct {
	sync.Mutex
	sys *actors.System
	n   int
}

func acquireStandalone() *actors.System {
	standalone.Lock()
	defer standalone.Unlock()
	if standalone.sys == nil {
		standalone.sys = actors.NewSystem(nil)
	}
	standalone.n++
	return standalone.sys
}

func releaseStandalone() {
	standalone.Lock()
	standalone.n--
	var stop *actors.System
	if standalone.n == 0 {
		stop, standalone.sys = standalone.sys, nil
	}
	standalone.Unlock()
	if stop != nil {
		stop.Stop(5 * time.Second)
	}
}
