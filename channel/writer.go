package channel

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// Writer is the writing end of a channel. It connects on first use (or
// Open). Binary data is cut into frames of at most ChunkSize; each chunk is
// copied into a bounded queue that the end's writer goroutine drains into
// the socket, so Write returns once its data is queued and blocks while
// the queue is full: a slow reader (through the engine's bounded buffer and
// TCP) slows Write down, and a Writer never buffers more than QueueChunks
// chunks. An error of the socket is reported by the next call.
//
// Its methods are safe for concurrent use; concurrent writes are
// serialised, each one's data kept contiguous.
type Writer struct {
	end
	turn      chan struct{} // a token: serialises writers and Close, waitable with a context
	q         chan item
	closeSent atomic.Bool   // Close was called
	closing   atomic.Bool   // the Close frame is being written
	watchDone chan struct{} // closed when the socket's reader exits
	done      chan error    // the writer goroutine's outcome of the close sequence
}

type itemKind uint8

const (
	itemBinary itemKind = iota
	itemText
	itemClose
)

type item struct {
	kind itemKind
	buf  *[]byte // itemBinary: pooled chunk
	text []byte  // itemText
}

var chunks = sync.Pool{New: func() any { b := make([]byte, 0, ChunkSize); return &b }}

// NewWriter returns the writing end described by cfg, not yet connected.
func NewWriter(cfg Config) *Writer {
	w := &Writer{end: newEnd(cfg, Write), turn: make(chan struct{}, 1), watchDone: make(chan struct{}), done: make(chan error, 1)}
	w.q = make(chan item, w.cfg.QueueChunks)
	w.goes = w.start
	return w
}

// Open connects the end now, if it is not connected yet.
func (w *Writer) Open(ctx context.Context) error { return w.open(ctx) }

// Write writes p as binary data; see WriteContext.
func (w *Writer) Write(p []byte) (int, error) { return w.WriteContext(context.Background(), p) }

// WriteContext writes p as binary frames of at most ChunkSize. It returns
// once all of p is queued, or with the number of bytes queued and an error
// if the end fails or ctx ends first (the data not queued is not sent, and
// the stream stays usable).
func (w *Writer) WriteContext(ctx context.Context, p []byte) (int, error) {
	if err := w.lock(ctx); err != nil {
		return 0, w.wrap("write", err)
	}
	defer w.unlock()
	if err := w.ready(ctx, "write"); err != nil {
		return 0, err
	}
	n := 0
	for n < len(p) {
		c := min(len(p)-n, ChunkSize)
		bp := chunks.Get().(*[]byte)
		*bp = append((*bp)[:0], p[n:n+c]...)
		if err := w.enqueue(ctx, item{kind: itemBinary, buf: bp}); err != nil {
			chunks.Put(bp)
			return n, w.wrap("write", err)
		}
		n += c
	}
	return n, nil
}

// SendText sends text as one text frame.
func (w *Writer) SendText(ctx context.Context, text []byte) error {
	if err := w.lock(ctx); err != nil {
		return w.wrap("write", err)
	}
	defer w.unlock()
	if err := w.ready(ctx, "write"); err != nil {
		return err
	}
	return w.wrap("write", w.enqueue(ctx, item{kind: itemText, text: text}))
}

// lock takes the writer's turn, or fails when ctx ends or the socket dies.
func (w *Writer) lock(ctx context.Context) error {
	select {
	case w.turn <- struct{}{}:
		return nil
	default:
	}
	select {
	case w.turn <- struct{}{}:
		return nil
	case <-w.dead:
		return w.deadErr()
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (w *Writer) unlock() { <-w.turn }

// ready opens the end if needed and checks that it can take data.
func (w *Writer) ready(ctx context.Context, op string) error {
	if err := w.open(ctx); err != nil {
		return err
	}
	if w.closeSent.Load() {
		return w.wrap(op, ErrClosed)
	}
	if err := w.deadErr(); err != nil {
		return w.wrap(op, err)
	}
	return nil
}

func (w *Writer) enqueue(ctx context.Context, it item) error {
	if err := w.deadErr(); err != nil {
		return err
	}
	select {
	case w.q <- it:
		return nil
	default:
	}
	select {
	case w.q <- it:
		return nil
	case <-w.dead:
		return w.deadErr()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close ends the stream; see CloseContext.
func (w *Writer) Close() error { return w.CloseContext(context.Background()) }

// CloseContext ends the stream: the queued data is written, then, after
// CloseDelay, a Close frame (1000, "stream_complete"); the reader gets EOF
// once it has read everything. It returns when the engine has answered the
// Close (at most a second after it was sent) and the end is released, with
// the first error the end met, if any. If ctx ends first the socket is
// dropped (the engine takes that for the end of the stream too) and ctx's
// error is returned.
//
// A Writer never opened (no Write, SendText or Open) is not connected by
// Close, so that closing a Writer whose ref was handed to someone else
// takes nothing from them; to send an empty stream, Open it first. Calls
// after the first return nil.
func (w *Writer) CloseContext(ctx context.Context) error {
	if err := w.lock(ctx); err != nil {
		// A write holds the turn, blocked by a reader that does not read:
		// drop the socket, which ends that write too.
		if w.markClosed() {
			w.fail(err)
			_ = w.waitGone(context.Background())
		}
		return w.wrap("close", err)
	}
	defer w.unlock()
	if w.closeSent.Load() {
		return nil
	}
	w.closeSent.Store(true)
	if !w.markClosed() {
		return nil
	}
	err := w.enqueue(ctx, item{kind: itemClose})
	if err == nil {
		select {
		case err = <-w.done:
		case <-w.dead: // the writer goroutine may have exited before taking it
			err = w.deadErr()
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	if errors.Is(err, ErrClosed) {
		err = nil
	}
	if err != nil {
		w.fail(err)
	} else {
		w.fail(ErrClosed)
	}
	_ = w.waitGone(context.Background()) // prompt: the socket is closed
	return w.wrap("close", err)
}

// start runs on the actor when it starts: the socket's writer goroutine and
// the goroutine that reads it (the engine sends nothing on a writer socket
// but a Close when the end was taken already; reading also notices the
// socket dropping while the writer is idle).
func (w *Writer) start(ws *websocket.Conn) {
	w.wg.Add(2)
	go w.watch(ws)
	go w.writeLoop(ws)
}

func (w *Writer) watch(ws *websocket.Conn) {
	defer w.wg.Done()
	defer close(w.watchDone)
	ws.SetCloseHandler(func(int, string) error { return nil }) // no reply: the writer closes
	for {
		_, _, err := ws.NextReader()
		if err == nil {
			continue // nothing is expected; ignore it
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) && ce.Code != websocket.CloseAbnormalClosure {
			// The engine closes a writer socket only when the end was
			// taken, with no status code; an answer to our own Close
			// echoes its code (or never comes).
			if !w.closing.Load() || ce.Code == websocket.CloseNoStatusReceived {
				w.fail(ErrTaken)
			}
			return
		}
		if !w.closing.Load() {
			w.fail(&lostError{cause: err})
		}
		return
	}
}

func (w *Writer) writeLoop(ws *websocket.Conn) {
	defer w.wg.Done()
	for {
		var it item
		select {
		case it = <-w.q:
		case <-w.dead:
			w.drainQueue()
			return
		}
		var err error
		switch it.kind {
		case itemBinary:
			err = ws.WriteMessage(websocket.BinaryMessage, *it.buf)
			chunks.Put(it.buf)
		case itemText:
			err = ws.WriteMessage(websocket.TextMessage, it.text)
		case itemClose:
			w.done <- w.closeSequence(ws)
			return
		}
		if err != nil {
			w.failWrite(ws, err)
			w.drainQueue()
			return
		}
	}
}

// closeSequence waits CloseDelay, sends the Close frame and waits for the
// engine's answer (or the socket dropping).
func (w *Writer) closeSequence(ws *websocket.Conn) error {
	t := time.NewTimer(CloseDelay)
	select {
	case <-t.C:
	case <-w.dead:
		t.Stop()
		return w.deadErr()
	}
	if err := w.deadErr(); err != nil {
		return err
	}
	w.closing.Store(true)
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "stream_complete")
	if err := ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(closeGrace)); err != nil {
		w.failWrite(ws, err)
		return w.deadErr()
	}
	_ = ws.NetConn().SetReadDeadline(time.Now().Add(closeGrace))
	select {
	case <-w.watchDone:
	case <-w.dead:
	}
	if err := w.deadErr(); err != nil && !errors.Is(err, ErrClosed) {
		return err
	}
	return ErrClosed
}

// failWrite records a failed write. The engine may have closed the socket
// because the end was taken: the watcher, reading what arrived before the
// drop, tells (within closeGrace).
func (w *Writer) failWrite(ws *websocket.Conn, err error) {
	_ = ws.NetConn().SetReadDeadline(time.Now().Add(closeGrace))
	select {
	case <-w.watchDone:
	case <-w.dead:
	}
	w.fail(&lostError{cause: err})
}

func (w *Writer) drainQueue() {
	for {
		select {
		case it := <-w.q:
			if it.buf != nil {
				chunks.Put(it.buf)
			}
		default:
			return
		}
	}
}
