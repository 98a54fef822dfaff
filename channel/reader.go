package channel

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// Reader is the reading end of a channel: an io.Reader over the binary
// frames, with the text frames interleaved in them delivered to the
// OnText callbacks in stream order. It connects on first use (or Open).
//
// Read reads frames straight from the socket into the caller's buffer (no
// goroutine, queue or copy in between): a reader that does not read leaves
// the data in the engine's bounded buffer, which back-pressures the writer.
//
// Read, ReadAll and the callbacks they run must not be called
// concurrently with each other; Close and OnText may be called at any time.
type Reader struct {
	end
	rmu sync.Mutex // held by Read
	cur io.Reader  // the binary frame being read, or nil
	eof bool       // the engine ended the stream
	buf []byte     // reused for text frames

	closing atomic.Bool // Close was called: a Close frame now is the engine's answer

	hmu      sync.Mutex
	handlers []func([]byte)
}

// NewReader returns the reading end described by cfg, not yet connected.
func NewReader(cfg Config) *Reader {
	return &Reader{end: newEnd(cfg, Read)}
}

// Open connects the end now, if it is not connected yet.
func (r *Reader) Open(ctx context.Context) error { return r.open(ctx) }

// OnText adds a callback for the text frames of the stream. Callbacks run
// on the goroutine that calls Read, in order: a frame's callbacks run after
// Read has returned every byte that precedes the frame in the stream and
// before it returns any byte that follows. A frame read while no callback
// is set is dropped. The slice is the callback's to keep.
func (r *Reader) OnText(fn func(text []byte)) {
	if fn == nil {
		return
	}
	r.hmu.Lock()
	r.handlers = append(r.handlers, fn)
	r.hmu.Unlock()
}

// Read implements io.Reader over the binary data. It returns io.EOF once
// the writer has closed the stream and everything has been read, and an
// error matching ErrLost if the socket dropped, or the engine closed it
// with a code other than 1000 or none, before the end of the stream (it
// then also matches io.ErrUnexpectedEOF, and errors.As finds the
// *websocket.CloseError of an abnormal Close).
func (r *Reader) Read(p []byte) (int, error) {
	r.rmu.Lock()
	defer r.rmu.Unlock()
	if r.eof {
		return 0, io.EOF
	}
	if err := r.open(context.Background()); err != nil {
		return 0, err
	}
	for {
		if r.cur != nil {
			n, err := r.cur.Read(p)
			if err == io.EOF {
				r.cur = nil
				if n > 0 || len(p) == 0 {
					return n, nil
				}
				continue
			}
			if err != nil {
				return n, r.readErr(err)
			}
			return n, nil
		}
		if err := r.deadErr(); err != nil {
			return 0, r.wrap("read", err)
		}
		kind, fr, err := r.ws.NextReader()
		if err != nil {
			return 0, r.readErr(err)
		}
		if kind == websocket.BinaryMessage {
			r.cur = fr
			if len(p) == 0 {
				return 0, nil
			}
			continue
		}
		b := bytes.NewBuffer(r.buf[:0])
		if _, err := b.ReadFrom(fr); err != nil {
			return 0, r.readErr(err)
		}
		r.buf = b.Bytes()
		r.dispatch(r.buf)
		if cap(r.buf) > ChunkSize {
			r.buf = nil
		}
	}
}

func (r *Reader) dispatch(text []byte) {
	r.hmu.Lock()
	hs := r.handlers
	r.hmu.Unlock()
	for _, h := range hs {
		h(bytes.Clone(text))
	}
}

// readErr maps an error of the socket: a normal Close frame from the
// engine is the end of the stream; anything else ends the reader with an
// error.
func (r *Reader) readErr(err error) error {
	if derr := r.deadErr(); derr != nil { // closed or stopped by us
		return r.wrap("read", derr)
	}
	if r.closing.Load() {
		return r.wrap("read", ErrClosed)
	}
	if errors.Is(err, websocket.ErrReadLimit) {
		terr := fmt.Errorf("%w: a message exceeds the read limit of %d bytes", ErrTooLarge, r.cfg.ReadLimit)
		r.fail(terr)
		return r.wrap("read", terr)
	}
	if cleanEnd(err) {
		r.eof = true
		r.fail(ErrClosed) // gorilla answered the Close; release the end
		return io.EOF
	}
	lerr := &lostError{cause: err, extra: io.ErrUnexpectedEOF}
	r.fail(lerr)
	return r.wrap("read", lerr)
}

// cleanEnd reports whether err is a Close frame that ends a stream
// normally: the engine's end of stream has no status code (1005 as gorilla
// reports it), and a peer that sends 1000 means the same. Any other code
// (1001 going away, 1009 too big, 1011 internal error, ...) arrives in the
// middle of a stream that did not end: the reader fails with ErrLost, the
// *websocket.CloseError as its cause.
func cleanEnd(err error) bool {
	var ce *websocket.CloseError
	return errors.As(err, &ce) && (ce.Code == websocket.CloseNoStatusReceived || ce.Code == websocket.CloseNormalClosure)
}

// ReadAll reads the stream to its end and returns the binary data. If ctx
// ends first, the reader is closed and ctx's error returned.
func (r *Reader) ReadAll(ctx context.Context) ([]byte, error) {
	if err := r.open(ctx); err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { r.fail(ctx.Err()) })
	defer stop()
	var b bytes.Buffer
	_, err := b.ReadFrom(r)
	if err != nil {
		return b.Bytes(), err
	}
	return b.Bytes(), nil
}

// ReadAllLimit is ReadAll for a stream of at most max bytes: once the
// stream exceeds max, the reader is closed and an error matching
// ErrTooLarge returned, with the first max bytes.
func (r *Reader) ReadAllLimit(ctx context.Context, max int64) ([]byte, error) {
	if err := r.open(ctx); err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { r.fail(ctx.Err()) })
	defer stop()
	var b bytes.Buffer
	if _, err := b.ReadFrom(io.LimitReader(r, max+1)); err != nil {
		return b.Bytes(), err
	}
	if int64(b.Len()) > max {
		_ = r.Close()
		return b.Bytes()[:max], r.wrap("read", fmt.Errorf("%w: the stream exceeds %d bytes", ErrTooLarge, max))
	}
	return b.Bytes(), nil
}

// Close closes the reader: a Close frame (1000, "channel_close") goes to
// the engine and the connection is closed at once (the engine never reads
// a reader's socket, so no Close reply is awaited; it notices on its next
// forward, and the writer's write after that fails), and a Read in
// progress returns an error matching ErrClosed. Close
// returns once the end is released. A Reader never opened is not
// connected. Calls after the first return nil.
func (r *Reader) Close() error {
	if !r.markClosed() {
		return nil
	}
	r.closing.Store(true)
	if r.deadErr() == nil {
		msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "channel_close")
		_ = r.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(closeGrace))
	}
	r.fail(ErrClosed)
	_ = r.waitGone(context.Background())
	return nil
}
