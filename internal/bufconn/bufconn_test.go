package bufconn_test

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/iii-go/iii/internal/bufconn"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// pipe returns a buffering Conn on one end of a synchronous in-memory
// pipe (a write blocks until the other end reads it) and the other end.
func pipe(t *testing.T, timeout time.Duration) (*bufconn.Conn, net.Conn) {
	t.Helper()
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	c := &bufconn.Conn{Conn: a, WriteTimeout: timeout, Flushes: new(atomic.Int64)}
	c.Buffer()
	return c, b
}

func TestWritesWaitForFlushAndLeaveInOneWrite(t *testing.T) {
	c, peer := pipe(t, 0)
	for _, s := range []string{"one ", "two ", "three"} {
		if n, err := c.Write([]byte(s)); err != nil || n != len(s) {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	if got := c.Buffered(); got != len("one two three") {
		t.Fatalf("Buffered() = %d before Flush", got)
	}
	got := make(chan []byte, 1)
	go func() {
		b := make([]byte, 64)
		n, _ := peer.Read(b) // one Read gets one Write of the pipe
		got <- b[:n]
	}()
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	if b := <-got; string(b) != "one two three" {
		t.Fatalf("the peer read %q in its first read", b)
	}
	if n := c.Flushes.Load(); n != 1 {
		t.Fatalf("Flushes = %d, want 1", n)
	}
}

func TestWritesPassThroughUntilBuffering(t *testing.T) {
	a, peer := net.Pipe()
	defer a.Close()
	defer peer.Close()
	c := bufconn.New(a)
	go func() { _, _ = c.Write([]byte("hello")) }()
	b := make([]byte, 5)
	if _, err := io.ReadFull(peer, b); err != nil || string(b) != "hello" {
		t.Fatalf("read %q, %v", b, err)
	}
	// Before Buffer, deadlines are the network connection's own.
	if err := c.SetWriteDeadline(time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Write after a past deadline = %v, want a deadline error", err)
	}
}

// TestZeroDeadlineDoesNotUnboundFlush is the write half of the SDK's
// liveness: gorilla clears the write deadline before every frame, and a
// Flush to a peer that stopped reading must still give up after
// WriteTimeout.
func TestZeroDeadlineDoesNotUnboundFlush(t *testing.T) {
	c, _ := pipe(t, 20*time.Millisecond) // the peer never reads
	if err := c.SetWriteDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("frame")); err != nil {
		t.Fatal(err)
	}
	if err := c.SetWriteDeadline(time.Time{}); err != nil { // what gorilla does per frame
		t.Fatal(err)
	}
	err := c.Flush()
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Flush to a peer that never reads = %v, want a deadline error", err)
	}
	// Part of a frame may be out: the stream is broken for good.
	if _, err := c.Write([]byte("more")); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Write after a failed flush = %v", err)
	}
	if err := c.Flush(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Flush after a failed flush = %v", err)
	}
}

// TestLargeWriteIsBoundedToo: a write of FlushAt bytes or more skips the
// buffer and runs under the same deadline.
func TestLargeWriteIsBoundedToo(t *testing.T) {
	c, _ := pipe(t, 20*time.Millisecond)
	if _, err := c.Write(make([]byte, bufconn.FlushAt)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a large Write to a peer that never reads = %v, want a deadline error", err)
	}
}

// TestExplicitDeadlineBoundsTheNextWriteOnly: a non-zero deadline set while
// buffering (gorilla's WriteControl) applies to the next network write,
// and does not linger to fail later ones.
func TestExplicitDeadlineBoundsTheNextWriteOnly(t *testing.T) {
	c, peer := pipe(t, 0)
	go func() { _, _ = io.Copy(io.Discard, peer) }()
	deadline := time.Now().Add(20 * time.Millisecond)
	if err := c.SetWriteDeadline(deadline); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(); err != nil {
		t.Fatalf("Flush before the deadline: %v", err)
	}
	for time.Now().Before(deadline.Add(10 * time.Millisecond)) {
		time.Sleep(5 * time.Millisecond) // let the deadline pass
	}
	if _, err := c.Write([]byte("data")); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(); err != nil {
		t.Fatalf("Flush after a used deadline passed: %v", err)
	}

	// And an explicit deadline does bound a write to a peer that stopped.
	c2, _ := pipe(t, time.Hour)
	_ = c2.SetWriteDeadline(time.Now().Add(20 * time.Millisecond))
	_, _ = c2.Write([]byte("ping"))
	if err := c2.Flush(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Flush past an explicit deadline = %v", err)
	}
}

// TestWebSocketToAPeerThatNeverReads: end to end under gorilla/websocket
// on loopback TCP, a writer of 1 MiB messages to a server that upgraded
// and then never reads fails within the write timeout instead of
// blocking for good.
func TestWebSocketToAPeerThatNeverReads(t *testing.T) {
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		<-stop // upgraded, and never reads
	}))
	defer srv.Close()
	defer close(stop)
	var bc *bufconn.Conn
	d := websocket.Dialer{NetDial: func(network, addr string) (net.Conn, error) {
		nc, err := net.Dial(network, addr)
		if err != nil {
			return nil, err
		}
		bc = &bufconn.Conn{Conn: nc, WriteTimeout: 100 * time.Millisecond}
		return bc, nil
	}}
	ws, _, err := d.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	bc.Buffer()
	payload := make([]byte, 1<<20)
	for i := 0; ; i++ {
		err := ws.WriteMessage(websocket.BinaryMessage, payload)
		if err == nil {
			err = bc.Flush()
		}
		if err != nil {
			// gorilla hides the error's type but keeps it a timeout.
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Fatalf("write %d failed with %v, want a timeout", i, err)
			}
			return
		}
		if i > 10_000 { // 10 GiB through kernel buffers: the peer must be reading
			t.Fatal("writes to a peer that never reads kept succeeding")
		}
	}
}
