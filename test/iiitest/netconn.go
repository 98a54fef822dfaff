package iiitest

import (
	"encoding/binary"
	"errors"
	"net"
	"sync/atomic"

	"github.com/iii-go/iii/internal/bufconn"
)

// statFlushes counts socket writes of buffered frames (for the benchmark).
var statFlushes atomic.Int64

// listener wraps accepted connections in a netConn so that the writer
// goroutine of an upgraded WebSocket can coalesce frames. The double sets
// no write timeout: gorilla's per-frame deadline resets are ignored while
// buffering, and shutdown bounds its writes on the underlying Conn.
type listener struct{ net.Listener }

// Accept wraps the accepted connection in a netConn.
func (l listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &netConn{Conn: &bufconn.Conn{Conn: c, Flushes: &statFlushes}}, nil
}

// netConn is the double's side of a connection: a bufconn.Conn whose reads
// also follow the WebSocket frame headers (see limitFrames).
type netConn struct {
	*bufconn.Conn

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
func (c *netConn) limitFrames(max int64) {
	if max > 0 {
		c.scan.max = uint64(max)
	}
}

// Read reads from the connection and checks the frame sizes (see
// limitFrames).
func (c *netConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if c.scan.max > 0 && n > 0 {
		if ferr := c.scan.feed(p[:n]); ferr != nil {
			return 0, ferr
		}
	}
	return n, err
}
