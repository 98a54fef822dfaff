package bufconn_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/iii-go/iii/internal/bufconn"
)

// discardServer upgrades and then reads and drops everything.
func discardServer(b *testing.B) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		_, _ = io.Copy(io.Discard, ws.NetConn())
	}))
	b.Cleanup(srv.Close)
	return srv
}

// BenchmarkWriteFrame compares a client's two ways of writing one masked
// data frame through the coalescing buffer and flushing it (to nowhere,
// after a real handshake on loopback TCP, so that the syscall's noise is
// left out): gorilla/websocket's WriteMessage (the payload copied into gorilla's
// write buffer, masked there, then copied into bufconn's: two copies, and
// a message over gorilla's buffer size goes out as several fragments) and
// WriteFrame (masked straight into bufconn's buffer: one copy). The buffer
// sizes are the SDK's.
func BenchmarkWriteFrame(b *testing.B) {
	for _, size := range []int{100, 10 << 10, 1 << 20} {
		for _, path := range []string{"gorilla", "direct"} {
			b.Run(fmt.Sprintf("%s/%d", path, size), func(b *testing.B) {
				srv := discardServer(b)
				var bc *bufconn.Conn
				d := websocket.Dialer{ReadBufferSize: 64 << 10, WriteBufferSize: 64 << 10,
					NetDial: func(network, addr string) (net.Conn, error) {
						nc, err := net.Dial(network, addr)
						if err != nil {
							return nil, err
						}
						bc = bufconn.New(nc)
						return bc, nil
					}}
				ws, _, err := d.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
				if err != nil {
					b.Fatal(err)
				}
				defer ws.Close()
				bc.Buffer()
				// From here on the bytes go nowhere: what is measured is
				// the user-space cost of a frame, without the syscall's
				// noise.
				bc.Conn = discardConn{bc.Conn}
				p := []byte(strings.Repeat("x", size))
				b.SetBytes(int64(size))
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					if path == "gorilla" {
						err = ws.WriteMessage(websocket.TextMessage, p)
					} else {
						err = bc.WriteFrame(bufconn.OpText, p, true)
					}
					if err == nil {
						err = bc.Flush()
					}
					if err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// discardConn drops what is written to it.
type discardConn struct{ net.Conn }

func (discardConn) Write(p []byte) (int, error) { return len(p), nil }
