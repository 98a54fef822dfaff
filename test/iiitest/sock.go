package iiitest

import (
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	"github.com/iii-go/iii/internal/bufconn"
)

// Outbound queue defaults (see WithOutboundLimits).
const (
	// DefaultOutboundFrames is the number of queued frames above which a
	// connection that sends to another one waits for the queue to drain.
	DefaultOutboundFrames = 4096
	// DefaultOutboundBytes is the hard bound on the bytes queued for one
	// connection.
	DefaultOutboundBytes = 128 << 20
	// DefaultOutboundWait is how long a sender waits for a full queue that
	// makes no progress.
	DefaultOutboundWait = time.Second
)

// closeGrace is how long a socket that sent a Close frame waits for the
// peer's Close (or for its queued frames to be written) before the TCP
// connection is closed.
const closeGrace = time.Second

type itemKind uint8

const (
	itemText itemKind = iota
	itemBinary
	itemPong
	itemClose // a Close frame; the socket is torn down after it
)

type outItem struct {
	kind itemKind
	buf  *frameBuf
}

// frameBuf is a pooled buffer holding one outbound frame.
type frameBuf struct{ b []byte }

var framePool = sync.Pool{New: func() any { return &frameBuf{b: make([]byte, 0, 512)} }}

func getBuf() *frameBuf { return framePool.Get().(*frameBuf) }

func (f *frameBuf) release() {
	if f == nil || cap(f.b) > 64<<10 {
		return
	}
	f.b = f.b[:0]
	framePool.Put(f)
}

// sock is one upgraded WebSocket with its writer goroutine. The goroutine
// that upgraded it is its reader: it owns the socket's lifetime and calls
// finish when it stops reading.
//
// Outbound frames go through an in-memory queue drained by the writer
// goroutine, which writes every queued frame into the netConn and flushes
// when the queue is empty, so a burst of frames costs one syscall.
type sock struct {
	e  *Engine
	ws *websocket.Conn
	nc *netConn

	mu        sync.Mutex
	items     []outItem
	bytes     int64
	closed    bool // no more items accepted
	closing   bool // writer exits once the queue is empty
	congested bool // a sender timed out waiting; don't wait again until progress
	space     chan struct{}
	dropped   int64

	wake       chan struct{}
	dead       chan struct{} // closed by kill
	killOnce   sync.Once
	writerDone chan struct{}
	stalled    atomic.Bool
	echoClose  atomic.Bool // answer the peer's Close (channel writers only)
	otel       bool        // an /otel connection: gets Close(None) at shutdown
	onePong    bool        // answer a ping with one pong (channel writers), not two
}

// errMessageTooBig and errInvalidUTF8 end a read loop; the connection is
// then dropped without a Close frame, as the engine does.
var (
	errMessageTooBig = errors.New("iiitest: message over the size limit")
	errInvalidUTF8   = errors.New("iiitest: text message is not valid UTF-8")
)

func newSock(e *Engine, ws *websocket.Conn, nc *netConn) *sock {
	s := &sock{
		e:          e,
		ws:         ws,
		nc:         nc,
		wake:       make(chan struct{}, 1),
		dead:       make(chan struct{}),
		writerDone: make(chan struct{}),
	}
	nc.Buffer()
	nc.limitFrames(e.cfg.maxFrameSize)
	// No gorilla read limit: gorilla answers an oversized message with a
	// Close 1009, the engine just drops the connection (readFrame).
	ws.SetPingHandler(func(data string) error {
		if s.stalled.Load() {
			return nil
		}
		// On "/" and "/otel" the engine answers a ping itself and its
		// WebSocket library queues a pong too: the peer gets two.
		n := 2
		if s.onePong {
			n = 1
		}
		for range n {
			fb := getBuf()
			fb.b = append(fb.b, data...)
			s.push(itemPong, fb, false)
		}
		return nil
	})
	ws.SetCloseHandler(func(code int, text string) error {
		if !s.echoClose.Load() {
			// The engine ends its read loop on the peer's Close and drops
			// the socket: the Close reply tungstenite queues is never
			// flushed, and the peer sees the TCP connection end.
			return nil
		}
		if !s.stalled.Load() {
			fb := getBuf()
			if code != websocket.CloseNoStatusReceived {
				fb.b = websocket.FormatCloseMessage(code, "")
			}
			s.push(itemClose, fb, false)
		}
		return nil
	})
	return s
}

// start runs the writer goroutine; the engine's WaitGroup already counts
// the caller, and the writer is counted separately.
func (s *sock) start() {
	s.e.wg.Add(1)
	go func() {
		defer s.e.wg.Done()
		s.writeLoop()
	}()
}

// push queues a frame. When wait is true and the queue holds more than the
// soft limit, push waits until the writer makes room, the socket dies, or
// the wait times out; this back-pressures the sending connection's reader
// (and through TCP its peer) instead of growing memory without bound.
// Past the hard byte limit the frame is dropped when the socket is stalled
// (nothing will ever be written) and otherwise the socket is closed as a
// slow consumer.
func (s *sock) push(kind itemKind, fb *frameBuf, wait bool) {
	cfg := &s.e.cfg
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		fb.release()
		return
	}
	if wait && len(s.items) >= cfg.outFrames && !s.congested && !s.stalled.Load() {
		deadline := time.Now().Add(cfg.outWait)
		for len(s.items) >= cfg.outFrames && !s.closed {
			if s.space == nil {
				s.space = make(chan struct{})
			}
			ch := s.space
			s.mu.Unlock()
			d := time.Until(deadline)
			timedOut := d <= 0
			if !timedOut {
				t := time.NewTimer(d)
				select {
				case <-ch:
				case <-t.C:
					timedOut = true
				case <-s.dead:
				}
				t.Stop()
			}
			s.mu.Lock()
			if timedOut {
				s.congested = true
				break
			}
		}
		if s.closed {
			s.mu.Unlock()
			fb.release()
			return
		}
	}
	if s.bytes+int64(len(fb.b)) > cfg.outBytes && len(s.items) > 0 {
		s.dropped++
		s.mu.Unlock()
		fb.release()
		if !s.stalled.Load() {
			s.e.log.Warn("iiitest: outbound queue over its byte limit, closing the connection as a slow consumer")
			s.kill()
		}
		return
	}
	s.items = append(s.items, outItem{kind, fb})
	s.bytes += int64(len(fb.b))
	first := len(s.items) == 1
	s.mu.Unlock()
	if first {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// isClosed reports whether the socket accepts no more frames.
func (s *sock) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// send queues a text frame.
func (s *sock) send(fb *frameBuf, wait bool) { s.push(itemText, fb, wait) }

func (s *sock) writeLoop() {
	defer close(s.writerDone)
	var batch []outItem
	for {
		s.mu.Lock()
		if s.stalled.Load() {
			s.mu.Unlock()
			<-s.dead
			return
		}
		if len(s.items) == 0 {
			closing := s.closing || s.closed
			s.mu.Unlock()
			if err := s.nc.Flush(); err != nil {
				s.kill() // the peer is gone: senders must not wait for this writer
				return
			}
			if closing {
				return
			}
			select {
			case <-s.wake:
			case <-s.dead:
				return
			}
			continue
		}
		batch, s.items = s.items, batch[:0]
		s.bytes = 0
		s.congested = false
		if s.space != nil {
			close(s.space)
			s.space = nil
		}
		s.mu.Unlock()
		for i, it := range batch {
			if err := s.write(it); err != nil {
				for _, rest := range batch[i:] {
					rest.buf.release()
				}
				clear(batch)
				if !errors.Is(err, websocket.ErrCloseSent) {
					s.kill()
				}
				s.nc.Flush()
				return
			}
			it.buf.release()
			batch[i] = outItem{}
		}
	}
}

func (s *sock) write(it outItem) error {
	switch it.kind {
	// Data frames go straight into the coalescing buffer (gorilla's
	// WriteMessage would copy them into its own buffer first).
	case itemText:
		return s.nc.WriteFrame(bufconn.OpText, it.buf.b, false)
	case itemBinary:
		return s.nc.WriteFrame(bufconn.OpBinary, it.buf.b, false)
	case itemPong:
		return s.ws.WriteControl(websocket.PongMessage, it.buf.b, time.Time{})
	case itemClose:
		err := s.ws.WriteControl(websocket.CloseMessage, it.buf.b, time.Time{})
		s.nc.Flush()
		// Give the peer closeGrace to answer; the reader then ends.
		s.nc.Conn.SetReadDeadline(time.Now().Add(closeGrace))
		if err == nil {
			err = websocket.ErrCloseSent
		}
		return err
	}
	return nil
}

// closeWith queues a Close frame with the given payload (nil: no status
// code, as the engine sends).
func (s *sock) closeWith(payload []byte) {
	fb := getBuf()
	fb.b = append(fb.b, payload...)
	s.push(itemClose, fb, false)
}

// kill closes the TCP connection at once, without a Close frame.
func (s *sock) kill() {
	s.killOnce.Do(func() {
		close(s.dead)
		s.nc.Conn.Close()
		s.mu.Lock()
		s.closed = true
		items := s.items
		s.items = nil
		s.bytes = 0
		if s.space != nil {
			close(s.space)
			s.space = nil
		}
		s.mu.Unlock()
		for _, it := range items {
			it.buf.release()
		}
	})
}

// finish is called by the reader when it stops: it lets the writer send
// what is queued (a Close reply, say) for at most closeGrace, then closes
// the connection and waits for the writer to exit.
func (s *sock) finish() {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	s.nc.Conn.SetWriteDeadline(time.Now().Add(closeGrace))
	t := time.NewTimer(closeGrace)
	select {
	case <-s.writerDone:
	case <-t.C:
	case <-s.dead:
	}
	t.Stop()
	s.kill()
	<-s.writerDone
}

// stall makes the socket half-open: nothing more is written, and what is
// read is discarded unprocessed. The socket is still read so that the
// double notices when the peer really closes it.
func (s *sock) stall() {
	s.stalled.Store(true)
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// readFrame reads the next data message into buf (reused) and returns it.
// A message over the message size limit, or a text message that is not
// valid UTF-8, is an error (the caller then drops the connection).
func (s *sock) readFrame(buf []byte) (int, []byte, error) {
	typ, buf, err := s.readMessage(buf)
	if err == nil && typ == websocket.TextMessage && !utf8.Valid(buf) {
		err = errInvalidUTF8
	}
	return typ, buf, err
}

func (s *sock) readMessage(buf []byte) (int, []byte, error) {
	limit := s.e.cfg.maxMessageSize
	typ, r, err := s.ws.NextReader()
	if err != nil {
		return 0, buf, err
	}
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if limit > 0 && int64(len(buf)) > limit {
			return typ, buf, errMessageTooBig
		}
		if err == io.EOF {
			return typ, buf, nil
		}
		if err != nil {
			return typ, buf, err
		}
	}
}
