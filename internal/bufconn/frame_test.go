package bufconn_test

import (
	"bytes"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/iii-go/iii/internal/bufconn"
)

// bufListener hands out its connections as buffering-ready bufconn.Conns,
// so that a server's hijacked connection is one (as in the engine double).
type bufListener struct{ net.Listener }

func (l bufListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return bufconn.New(c), nil
}

var frameSizes = []int{0, 1, 7, 8, 9, 125, 126, 127, 1000, 65535, 65536,
	bufconn.FlushAt - 1, bufconn.FlushAt, bufconn.FlushAt + 3, 3*bufconn.FlushAt + 5, 1<<20 + 7}

func payload(n int) []byte {
	p := make([]byte, n)
	x := uint32(2463534242)
	for i := range p {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		p[i] = byte(x)
	}
	return p
}

// TestWriteFrameReadByGorilla: frames written with WriteFrame, masked by a
// client and unmasked by a server, of every length encoding and across
// the buffer's size, read back by gorilla/websocket as the messages sent,
// including several coalesced before one flush.
func TestWriteFrameReadByGorilla(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srvErr := make(chan error, 1)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			srvErr <- err
			return
		}
		defer ws.Close()
		bc := ws.NetConn().(*bufconn.Conn)
		bc.Buffer()
		srvErr <- func() error {
			// Echo each message back, unmasked, with WriteFrame.
			for range 2 * len(frameSizes) {
				mt, p, err := ws.ReadMessage()
				if err != nil {
					return err
				}
				op := bufconn.OpBinary
				if mt == websocket.TextMessage {
					op = bufconn.OpText
				}
				if err := bc.WriteFrame(op, p, false); err != nil {
					return err
				}
				if err := bc.Flush(); err != nil {
					return err
				}
			}
			return nil
		}()
	}))
	srv.Listener = bufListener{ln}
	srv.Start()
	defer srv.Close()

	var bc *bufconn.Conn
	d := websocket.Dialer{NetDial: func(network, addr string) (net.Conn, error) {
		nc, err := net.Dial(network, addr)
		if err != nil {
			return nil, err
		}
		bc = bufconn.New(nc)
		return bc, nil
	}}
	ws, _, err := d.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	bc.Buffer()
	ws.SetReadLimit(8 << 20)
	read := func(size int, wantType int) {
		t.Helper()
		mt, got, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("reading the echo of %d bytes: %v", size, err)
		}
		if mt != wantType || !bytes.Equal(got, payload(size)) {
			t.Fatalf("echo of %d bytes: type %d, %d bytes, equal %v", size, mt, len(got), bytes.Equal(got, payload(size)))
		}
	}
	// One frame per flush, text.
	for _, n := range frameSizes {
		if err := bc.WriteFrame(bufconn.OpText, payload(n), true); err != nil {
			t.Fatal(err)
		}
		if err := bc.Flush(); err != nil {
			t.Fatal(err)
		}
		read(n, websocket.TextMessage)
	}
	// All frames before one flush, binary, each from a sub-slice at an odd
	// offset (alignment of the masking).
	for _, n := range frameSizes {
		p := append([]byte{0}, payload(n)...)[1:]
		if err := bc.WriteFrame(bufconn.OpBinary, p, true); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(p, payload(n)) {
			t.Fatalf("WriteFrame modified its payload of %d bytes", n)
		}
	}
	if err := bc.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, n := range frameSizes {
		read(n, websocket.BinaryMessage)
	}
	if err := <-srvErr; err != nil {
		t.Fatalf("server: %v", err)
	}
}

// TestWriteFrameIsBounded: a big frame to a peer that never reads fails
// with the write timeout, and the connection stays broken.
func TestWriteFrameIsBounded(t *testing.T) {
	for _, masked := range []bool{true, false} {
		c, _ := pipe(t, 20*time.Millisecond)
		if err := c.WriteFrame(bufconn.OpBinary, make([]byte, 1<<20), masked); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("masked %v: WriteFrame to a peer that never reads = %v, want a deadline error", masked, err)
		}
		if err := c.WriteFrame(bufconn.OpBinary, []byte("x"), masked); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("masked %v: WriteFrame after a failed write = %v", masked, err)
		}
	}
}

// TestWriteFrameDoesNotAllocate: once the buffer has grown, a frame of any
// size costs no allocation, masked or not.
func TestWriteFrameDoesNotAllocate(t *testing.T) {
	c := bufconn.New(discardConn{})
	c.Buffer()
	for _, n := range []int{100, 10 << 10, 1 << 20} {
		p := make([]byte, n)
		for _, masked := range []bool{true, false} {
			write := func() {
				if err := c.WriteFrame(bufconn.OpText, p, masked); err != nil {
					t.Fatal(err)
				}
				if err := c.Flush(); err != nil {
					t.Fatal(err)
				}
			}
			write() // grow the buffer
			if a := testing.AllocsPerRun(20, write); a != 0 {
				t.Errorf("WriteFrame of %d bytes, masked %v: %v allocations", n, masked, a)
			}
		}
	}
}
