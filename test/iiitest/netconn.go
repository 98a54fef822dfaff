package iiitest

import (
	"net"
	"sync/atomic"

	"github.com/iii-go/iii/internal/bufconn"
)

// statFlushes counts socket writes of buffered frames (for the benchmark).
var statFlushes atomic.Int64

// listener wraps accepted connections in a bufconn.Conn so that the writer
// goroutine of an upgraded WebSocket can coalesce frames. The double sets
// no write timeout: gorilla's per-frame deadline resets are ignored while
// buffering, and shutdown bounds its writes on the underlying Conn.
type listener struct{ net.Listener }

// Accept wraps the accepted connection in a bufconn.Conn.
func (l listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &bufconn.Conn{Conn: c, Flushes: &statFlushes}, nil
}
