// Package bufconn is the net.Conn under the WebSockets of the SDK, of the
// test double and of the benchmark's raw client: it coalesces the frames
// written between two flushes into one syscall, and it keeps writes to the
// network bounded in time even though gorilla/websocket clears the write
// deadline before every frame it writes.
package bufconn

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// FlushAt is the buffered size at which a Write goes to the network by
// itself; a single write at least this big skips the buffer.
const FlushAt = 64 << 10

// Conn is a net.Conn whose writes can be buffered. Until Buffer is called
// (during the HTTP handshake) it passes everything straight through. After
// that, Write appends to a buffer that Flush sends in one syscall.
//
// Write deadlines while buffering: gorilla/websocket calls
// SetWriteDeadline before every frame, with a zero time unless the caller
// set one, so honouring it would leave every network write unbounded (and
// cost a timer update per frame for writes that only append to memory).
// Conn therefore ignores a zero deadline while buffering. A non-zero one
// (WriteControl's, say) bounds the next network write only. Every network
// write also runs with a deadline of WriteTimeout from its start when
// WriteTimeout is positive; the earlier of the two applies. A write that
// misses its deadline fails with an error that matches
// os.ErrDeadlineExceeded, and, since part of a frame may have gone out,
// every later Write and Flush fails with the same error.
//
// Methods are safe for concurrent use; gorilla/websocket serialises its own
// writes, and the mutex orders them with Flush.
type Conn struct {
	net.Conn // the network connection; use it directly to bypass the buffer

	// WriteTimeout, if positive, bounds each network write made while
	// buffering. Set it before Buffer.
	WriteTimeout time.Duration
	// Flushes, if not nil, counts the network writes of buffered bytes.
	Flushes *atomic.Int64

	buffering atomic.Bool
	mu        sync.Mutex
	buf       []byte
	next      time.Time // a deadline for the next network write only
	applied   bool      // a deadline is set on Conn
	err       error     // sticky: the stream is broken
}

// New wraps c; writes pass straight through until Buffer.
func New(c net.Conn) *Conn { return &Conn{Conn: c} }

// Buffer switches buffering on.
func (c *Conn) Buffer() { c.buffering.Store(true) }

// Buffering reports whether buffering is on.
func (c *Conn) Buffering() bool { return c.buffering.Load() }

// Write sends p, or buffers it while buffering is on. A write that makes
// the buffer exceed FlushAt flushes first.
func (c *Conn) Write(p []byte) (int, error) {
	if !c.buffering.Load() {
		return c.Conn.Write(p)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	if len(c.buf)+len(p) > FlushAt && len(c.buf) > 0 {
		if err := c.flushLocked(); err != nil {
			return 0, err
		}
	}
	if len(p) >= FlushAt {
		return c.writeLocked(p)
	}
	c.buf = append(c.buf, p...)
	return len(p), nil
}

// Flush writes what is buffered.
func (c *Conn) Flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	return c.flushLocked()
}

// Buffered returns the number of bytes waiting for Flush.
func (c *Conn) Buffered() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.buf)
}

func (c *Conn) flushLocked() error {
	if len(c.buf) == 0 {
		return nil
	}
	if c.Flushes != nil {
		c.Flushes.Add(1)
	}
	_, err := c.writeLocked(c.buf)
	if cap(c.buf) > 4*FlushAt {
		c.buf = nil // do not pin a large frame's buffer
	} else {
		c.buf = c.buf[:0]
	}
	return err
}

// writeLocked writes p to the network under the write deadline.
func (c *Conn) writeLocked(p []byte) (int, error) {
	d := c.next
	c.next = time.Time{}
	if c.WriteTimeout > 0 {
		if t := time.Now().Add(c.WriteTimeout); d.IsZero() || t.Before(d) {
			d = t
		}
	}
	if !d.IsZero() || c.applied {
		if err := c.Conn.SetWriteDeadline(d); err != nil {
			c.err = err
			return 0, err
		}
		c.applied = !d.IsZero()
	}
	n, err := c.Conn.Write(p)
	if err != nil {
		c.err = err
	}
	return n, err
}

// SetWriteDeadline sets the write deadline of the network connection, or,
// while buffering, the deadline of the next network write (a zero t is
// ignored then; see Conn).
func (c *Conn) SetWriteDeadline(t time.Time) error {
	if !c.buffering.Load() {
		return c.Conn.SetWriteDeadline(t)
	}
	if !t.IsZero() {
		c.mu.Lock()
		c.next = t
		c.mu.Unlock()
	}
	return nil
}

// SetDeadline sets the read deadline, and the write deadline as
// SetWriteDeadline does.
func (c *Conn) SetDeadline(t time.Time) error {
	if !c.buffering.Load() {
		return c.Conn.SetDeadline(t)
	}
	if err := c.Conn.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}
