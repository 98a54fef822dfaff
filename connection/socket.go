package connection

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/iii-go/iii/connection/wire"
	"github.com/iii-go/iii/internal/bufconn"
)

// Socket errors.
var (
	// ErrSocketClosed: the socket died or was closed before the frame was queued.
	ErrSocketClosed = errors.New("iii: connection closed")
	// ErrIdleTimeout: nothing arrived for the idle timeout (a half-open socket).
	ErrIdleTimeout = errors.New("iii: no frame from the engine within the idle timeout")
)

// maxBatch bounds how many queued frames the writer coalesces before it
// flushes, so that one busy producer cannot starve the socket of flushes.
const maxBatch = 256

// Socket is one WebSocket to the engine: one reader goroutine, one writer
// goroutine draining a bounded queue, and a watchdog. Frames queued
// together are written with one syscall. A Socket never reconnects; the
// connection actor makes a new one. Its methods are safe for concurrent use.
//
// Liveness: the writer pings the engine every ping interval. The watchdog
// kills the socket once nothing (a frame, a ping or a pong) has arrived for
// the idle timeout, whatever the writer is doing, and every network write
// fails once it has made no progress for the idle timeout. So a dead or
// stalled engine is noticed within the idle timeout of its last frame (of
// the start of the blocked write, if it keeps sending but stops reading).
type Socket struct {
	gen       uint64
	ws        *websocket.Conn
	bc        *bufconn.Conn
	direct    bool // bc carries the WebSocket itself (no TLS between): frames go to it straight
	out       chan wire.Message
	done      chan struct{}
	ctx       context.Context // cancelled, with the cause of death, when the socket dies
	cancel    context.CancelCauseFunc
	closeMu   sync.Mutex
	err       error
	dead      atomic.Bool  // set before done is closed
	start     time.Time    // the socket's birth, the origin of lastRead
	lastRead  atomic.Int64 // when the last frame (or ping, pong) arrived, since start
	onFrame   func(*Socket, wire.Message)
	onClose   func(*Socket, error)
	log       *slog.Logger
	ping      time.Duration
	idle      time.Duration
	readLimit int64
	wg        sync.WaitGroup
}

// Gen is the socket's generation: 1 for the first connection, then +1 per reconnect.
func (s *Socket) Gen() uint64 { return s.gen }

// Done is closed once the socket is dead.
func (s *Socket) Done() <-chan struct{} { return s.done }

// Context returns a context that is cancelled when the socket dies (its
// cause is why) or its parent, Config.BaseContext, ends.
func (s *Socket) Context() context.Context { return s.ctx }

// Err returns why the socket died, or nil while it lives.
func (s *Socket) Err() error {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	return s.err
}

// Alive reports whether the socket can still send.
func (s *Socket) Alive() bool {
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// Send queues m for writing. It blocks while the queue is full, until ctx
// ends or the socket dies. A nil ctx never ends. A nil error means queued,
// not written: a frame queued as the socket dies is dropped with it (at
// most once delivery; the calls bound to the socket fail with it).
func (s *Socket) Send(ctx context.Context, m wire.Message) error {
	if s.dead.Load() {
		return ErrSocketClosed
	}
	select {
	case s.out <- m: // the common case: room in the queue
		return nil
	default:
	}
	var cdone <-chan struct{}
	if ctx != nil {
		cdone = ctx.Done()
	}
	select {
	case s.out <- m:
		return nil
	case <-s.done:
		return ErrSocketClosed
	case <-cdone:
		return ctx.Err()
	}
}

// TrySend queues m unless the queue is full or the socket is dead.
func (s *Socket) TrySend(m wire.Message) bool {
	select {
	case <-s.done:
		return false
	default:
	}
	select {
	case s.out <- m:
		return true
	default:
		return false
	}
}

// Releaser is a message from a pool: the writer calls Release once it has
// encoded the message (a message that is never written is left to the
// garbage collector). The sender must not touch it after Send.
type Releaser interface {
	Release()
}

// closeMarker, queued behind the frames waiting to be written, makes the
// writer close the socket once they are out.
type closeMarker struct{ err error }

func (*closeMarker) Kind() wire.Kind              { return wire.KindInvalid }
func (*closeMarker) AppendJSON(dst []byte) []byte { return dst }

// closeGrace bounds how long Close waits for queued frames to be written.
const closeGrace = time.Second

// Close closes the socket gracefully: the frames already queued are
// written (for at most a second), then a normal Close frame.
func (s *Socket) Close(err error) {
	ctx, cancel := context.WithTimeout(context.Background(), closeGrace)
	defer cancel()
	if s.Send(ctx, &closeMarker{err: err}) == nil {
		select {
		case <-s.done:
		case <-ctx.Done():
		}
	}
	s.closeNow(err)
}

// closeNow sends a Close frame and closes the connection.
func (s *Socket) closeNow(err error) {
	if s.setErr(err) {
		_ = s.ws.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		_ = s.bc.Flush()
		_ = s.ws.Close()
	}
}

// Kill closes the TCP connection without a Close frame.
func (s *Socket) Kill(err error) {
	if s.setErr(err) {
		_ = s.ws.Close()
	}
}

// setErr records the first cause of death and closes done.
func (s *Socket) setErr(err error) bool {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.err != nil {
		return false
	}
	if err == nil {
		err = ErrSocketClosed
	}
	s.err = err
	s.dead.Store(true)
	close(s.done)
	s.cancel(err)
	return true
}

// Wait blocks until both goroutines of the socket have exited.
func (s *Socket) Wait() { s.wg.Wait() }

type socketConfig struct {
	gen       uint64
	base      context.Context // parent of the socket's context; nil: Background
	readLimit int64
	queue     int
	ping      time.Duration
	idle      time.Duration
	log       *slog.Logger
	onFrame   func(*Socket, wire.Message)
	onClose   func(*Socket, error)
}

// newSocket starts the goroutines of a socket on ws, whose net.Conn is bc
// (buffering already on).
func newSocket(ws *websocket.Conn, bc *bufconn.Conn, cfg socketConfig) *Socket {
	s := &Socket{
		gen: cfg.gen, ws: ws, bc: bc,
		out:     make(chan wire.Message, cfg.queue),
		done:    make(chan struct{}),
		start:   time.Now(),
		onFrame: cfg.onFrame, onClose: cfg.onClose, log: cfg.log,
		ping: cfg.ping, idle: cfg.idle, readLimit: cfg.readLimit,
		direct: ws.NetConn() == net.Conn(bc),
	}
	if cfg.base == nil {
		cfg.base = context.Background()
	}
	s.ctx, s.cancel = context.WithCancelCause(cfg.base)
	ws.SetReadLimit(cfg.readLimit)
	ws.SetPingHandler(func(data string) error {
		s.touch()
		err := ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
		if err == nil {
			err = bc.Flush()
		}
		if err != nil && !errors.Is(err, websocket.ErrCloseSent) {
			return err
		}
		return nil
	})
	ws.SetPongHandler(func(string) error {
		s.touch()
		return nil
	})
	s.wg.Add(3)
	go s.readLoop()
	go s.writeLoop()
	go s.watchdog()
	return s
}

// touch records that something arrived from the engine.
func (s *Socket) touch() { s.lastRead.Store(int64(time.Since(s.start))) }

// watchdog kills the socket once nothing has arrived for the idle timeout.
// It runs on a goroutine of its own, so a writer blocked on the network
// does not delay it.
func (s *Socket) watchdog() {
	defer s.wg.Done()
	t := time.NewTimer(s.idle)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-s.done:
			return
		}
		silent := time.Since(s.start) - time.Duration(s.lastRead.Load())
		if silent >= s.idle {
			s.log.Warn("iii: no frame from the engine within the idle timeout; dropping the connection", "idle", s.idle)
			s.Kill(ErrIdleTimeout)
			return
		}
		t.Reset(s.idle - silent)
	}
}

func (s *Socket) readLoop() {
	defer s.wg.Done()
	var buf []byte
	var names wire.Interner // function ids recur: decode them without allocating
	for {
		mt, r, err := s.ws.NextReader()
		if err != nil {
			s.Kill(err)
			break
		}
		s.touch()
		buf, err = readAll(r, buf[:0])
		if err != nil {
			if errors.Is(err, websocket.ErrReadLimit) {
				s.log.Error("iii: the engine sent a frame over the read limit; reconnecting", "limit", s.readLimit)
			}
			s.Kill(err)
			break
		}
		if len(buf) == 0 {
			continue
		}
		if mt == websocket.BinaryMessage {
			if k, _ := wire.SplitTelemetry(buf); k != wire.TelemetryNone {
				continue // the engine never sends telemetry to workers
			}
		}
		// The message aliases the frame and travels on (to a handler, to a
		// waiting caller), so what it aliases gets memory of its own: the
		// payload alone for invocations and results (the frame's other
		// fields are strings already); the rarer kinds are decoded again
		// from a copy of the frame.
		m, err := wire.DecodeInterned(buf, &names)
		switch mm := m.(type) {
		case nil:
		case *wire.InvokeFunction:
			mm.Data, mm.Metadata = ownRaw(mm.Data), ownRaw(mm.Metadata)
		case *wire.InvocationResult:
			mm.Result = ownRaw(mm.Result)
		default:
			m, err = wire.DecodeInterned(bytes.Clone(buf), &names)
		}
		if err != nil {
			s.undecodable(bytes.Clone(buf), err)
		} else {
			s.onFrame(s, m)
		}
		if cap(buf) > 8<<20 {
			buf = nil // do not pin a very large frame's buffer
		}
	}
	s.onClose(s, s.Err())
}

// ownRaw returns a copy of b (nil stays nil).
func ownRaw(b json.RawMessage) json.RawMessage {
	if b == nil {
		return nil
	}
	return append(json.RawMessage(make([]byte, 0, len(b))), b...)
}

// CodeDeserializationError is the error code of the answer to an
// invocation whose frame does not decode, and of the failure of a call
// whose result frame does not decode: the engine's code for input that
// does not match its schema.
const CodeDeserializationError = "deserialization_error"

// undecodable handles a frame that does not decode. If its invocation id
// can still be read, nobody is left waiting for a timeout: an invocation
// is answered at once with an error (unless the socket's queue is full:
// then, as for an overload refusal, the answer is dropped), and a result fails its call at once
// (through the router, as a result carrying that error). Anything else is
// dropped, as the engine does.
func (s *Socket) undecodable(frame []byte, err error) {
	v, ok := wire.Salvage(frame)
	switch {
	case ok && v.Kind == wire.KindInvokeFunction:
		s.log.Warn("iii: an invocation does not decode; answering it with an error",
			"function", v.FunctionID, "invocation", v.InvocationID.String(), "err", err)
		res := &wire.InvocationResult{InvocationID: v.InvocationID, FunctionID: v.FunctionID,
			Error: &wire.ErrorBody{Code: CodeDeserializationError, Message: "the worker cannot decode this invocation: " + err.Error()}}
		if !s.TrySend(res) {
			// The read loop never waits for room, and a flood of such frames
			// must not pile up goroutines: as with an overload refusal, the
			// answer is dropped and that caller sees its timeout.
			s.log.Warn("iii: no room to answer an undecodable invocation; dropping the answer",
				"function", v.FunctionID, "invocation", v.InvocationID.String())
		}
	case ok && v.Kind == wire.KindInvocationResult:
		s.log.Warn("iii: the result of a call does not decode; failing the call",
			"function", v.FunctionID, "invocation", v.InvocationID.String(), "err", err)
		s.onFrame(s, &wire.InvocationResult{InvocationID: v.InvocationID, FunctionID: v.FunctionID,
			Error: &wire.ErrorBody{Code: CodeDeserializationError, Message: "the worker cannot decode the result of this call: " + err.Error()}})
	default:
		s.log.Warn("iii: dropping a frame that does not decode", "err", err)
	}
}

// readAll reads r to the end into buf, growing it as needed.
func readAll(r io.Reader, buf []byte) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

func (s *Socket) writeLoop() {
	defer s.wg.Done()
	tick := time.NewTicker(s.ping)
	defer tick.Stop()
	var buf []byte
	var closing *closeMarker
	write := func(m wire.Message) error {
		if c, ok := m.(*closeMarker); ok {
			closing = c
			return nil
		}
		buf = m.AppendJSON(buf[:0])
		if r, ok := m.(Releaser); ok {
			r.Release() // encoded: the sender's pooled message is free again
		}
		if s.direct {
			// Framed and masked straight into the coalescing buffer: one
			// copy of the encoded frame (gorilla's WriteMessage makes two,
			// and fragments a message larger than its buffer).
			return s.bc.WriteFrame(bufconn.OpText, buf, true)
		}
		// Over TLS, frames go through the TLS connection above bc.
		return s.ws.WriteMessage(websocket.TextMessage, buf)
	}
	for {
		select {
		case m := <-s.out:
			err := write(m)
			yielded := false
			for n := 1; err == nil && closing == nil && n < maxBatch; n++ {
				select {
				case m = <-s.out:
					err = write(m)
					continue
				default:
				}
				if !yielded {
					// Let the goroutines that are about to queue a frame
					// do so, and send theirs with the same syscall.
					yielded = true
					runtime.Gosched()
					n--
					continue
				}
				break
			}
			if err == nil {
				err = s.bc.Flush()
			}
			if cap(buf) > 1<<20 {
				buf = nil // do not pin a large frame's buffer
			}
			if err != nil {
				s.Kill(err)
				return
			}
			if closing != nil {
				s.closeNow(closing.err)
				return
			}
		case <-tick.C:
			err := s.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(s.idle))
			if err == nil {
				err = s.bc.Flush()
			}
			if err != nil {
				s.Kill(err)
				return
			}
		case <-s.done:
			return
		}
	}
}
