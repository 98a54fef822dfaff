package iiitest

import (
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// statFlushes counts socket writes of buffered frames (for the benchmark).
var statFlushes atomic.Int64

// flushThreshold is how many buffered bytes make a write go to the socket
// at once instead of waiting for the writer to run out of queued frames.
const flushThreshold = 64 << 10

// listener wraps accepted connections in a bufConn so that the writer
// goroutine of an upgraded WebSocket can coalesce frames.
type listener struct{ net.Listener }

// Accept wraps the accepted connection in a bufConn.
func (l listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &bufConn{Conn: c}, nil
}

// bufConn is a net.Conn whose writes can be buffered. gorilla/websocket
// writes every frame straight to its net.Conn, one syscall per frame; once
// buffering is switched on (after the HTTP upgrade), Write appends to a
// buffer that Flush sends in one syscall. Writes pass straight through
// while buffering is off (HTTP responses, the upgrade response).
type bufConn struct {
	net.Conn

	mu        sync.Mutex
	buf       []byte
	buffering bool
	err       error

	// used by the reading goroutine only, once scanning is on
	scan frameScanner
}

// errFrameTooBig fails a read when the peer announces a WebSocket frame
// larger than the frame limit.
var errFrameTooBig = errors.New("iiitest: frame over the size limit")

// frameScanner follows the WebSocket frame headers in the bytes read from
// a client, so that a frame announcing more than max payload bytes fails
// the read at once: the connection is then dropped without a Close frame,
// as the engine (tungstenite) does on a capacity error.
type frameScanner struct {
	max       uint64 // 0: scanning off
	hdr       [14]byte
	hn        int    // header bytes collected
	remaining uint64 // payload bytes of the current frame still to pass
}

// feed checks the frame headers in p (the next bytes of the stream).
func (f *frameScanner) feed(p []byte) error {
	for len(p) > 0 {
		if f.remaining > 0 {
			n := min(uint64(len(p)), f.remaining)
			f.remaining -= n
			p = p[n:]
			continue
		}
		f.hdr[f.hn] = p[0]
		f.hn++
		p = p[1:]
		if f.hn < 2 {
			continue
		}
		need := 2
		l7 := f.hdr[1] & 0x7f
		switch l7 {
		case 126:
			need += 2
		case 127:
			need += 8
		}
		if f.hdr[1]&0x80 != 0 {
			need += 4 // masking key
		}
		if f.hn < need {
			continue
		}
		length := uint64(l7)
		switch l7 {
		case 126:
			length = uint64(binary.BigEndian.Uint16(f.hdr[2:4]))
		case 127:
			length = binary.BigEndian.Uint64(f.hdr[2:10])
		}
		f.hn = 0
		if length > f.max {
			return errFrameTooBig
		}
		f.remaining = length
	}
	return nil
}

// limitFrames makes reads fail when a frame of more than max bytes is
// announced. It must be called before the first read after the upgrade.
func (c *bufConn) limitFrames(max int64) {
	if max > 0 {
		c.scan.max = uint64(max)
	}
}

// Read reads from the connection and checks the frame sizes (see
// limitFrames).
func (c *bufConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if c.scan.max > 0 && n > 0 {
		if ferr := c.scan.feed(p[:n]); ferr != nil {
			return 0, ferr
		}
	}
	return n, err
}

// startBuffering switches buffering on.
func (c *bufConn) startBuffering() {
	c.mu.Lock()
	c.buffering = true
	c.mu.Unlock()
}

// Write sends p, or buffers it while buffering is on.
func (c *bufConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if !c.buffering {
		c.mu.Unlock()
		return c.Conn.Write(p)
	}
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	c.buf = append(c.buf, p...)
	if len(c.buf) >= flushThreshold {
		if err := c.flushLocked(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// Flush writes the buffered bytes to the socket.
func (c *bufConn) Flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.flushLocked()
}

func (c *bufConn) flushLocked() error {
	if c.err != nil {
		return c.err
	}
	if len(c.buf) == 0 {
		return nil
	}
	statFlushes.Add(1)
	_, err := c.Conn.Write(c.buf)
	if cap(c.buf) > 4*flushThreshold {
		c.buf = nil // don't keep a huge frame's buffer
	} else {
		c.buf = c.buf[:0]
	}
	c.err = err
	return err
}

// SetWriteDeadline is a no-op while buffering: gorilla sets a deadline
// before every frame, which would cost a timer update per frame for
// writes that only append to memory. The double never sets write
// deadlines on data frames; shutdown uses the underlying Conn directly.
func (c *bufConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	b := c.buffering
	c.mu.Unlock()
	if b {
		return nil
	}
	return c.Conn.SetWriteDeadline(t)
}

// SetDeadline only sets the read deadline while buffering (see SetWriteDeadline).
func (c *bufConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	b := c.buffering
	c.mu.Unlock()
	if b {
		return c.Conn.SetReadDeadline(t)
	}
	return c.Conn.SetDeadline(t)
}
