package iiitest

import (
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
