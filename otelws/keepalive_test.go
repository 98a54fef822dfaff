package otelws_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/iii-go/iii/otelws"
)

// pingServer is a /otel endpoint on loopback that counts the pings it gets
// and answers them unless deaf.
type pingServer struct {
	srv   *httptest.Server
	pings atomic.Int32
	deaf  atomic.Bool
	conns atomic.Int32
}

func newPingServer(t *testing.T) *pingServer {
	s := &pingServer{}
	up := websocket.Upgrader{}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		s.conns.Add(1)
		ws.SetPingHandler(func(data string) error {
			s.pings.Add(1)
			if s.deaf.Load() {
				return nil
			}
			return ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
		})
		for {
			if _, _, err := ws.NextReader(); err != nil {
				return
			}
		}
	}))
	s.srv.Listener.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.srv.Listener = ln
	s.srv.Start()
	t.Cleanup(s.srv.Close)
	return s
}

func (s *pingServer) url() string { return "ws" + s.srv.URL[len("http"):] + "/otel" }

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// An idle socket whose peer answers pings stays up; one whose peer stops
// answering (a half-open path) is dropped within the idle timeout and
// redialled.
func TestConnPingsAndDropsASilentPeer(t *testing.T) {
	s := newPingServer(t)
	c := otelws.Dial(otelws.Config{URL: s.url(), Backoff: fast, PingInterval: 50 * time.Millisecond, IdleTimeout: time.Second})
	defer c.Close(context.Background())
	// Many idle timeouts' worth of pings, all answered: still the first socket.
	waitUntil(t, "50 pings", func() bool { return s.pings.Load() >= 50 })
	if st := c.Stats(); !st.Connected || st.Reconnects != 0 || s.conns.Load() != 1 {
		t.Fatalf("a healthy idle socket was dropped: %+v, %d connections", st, s.conns.Load())
	}
	s.deaf.Store(true)
	waitUntil(t, "the silent socket to be replaced", func() bool { return c.Stats().Reconnects >= 1 })
}

// Close returns once its context ends even while a write is blocked on an
// endpoint that takes nothing (a stalled peer), however long the write
// timeout: it cuts the write short instead of waiting it out.
func TestCloseCutsAWriteBlockedOnAStalledPeer(t *testing.T) {
	release := make(chan struct{})
	up := websocket.Upgrader{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		<-release // never reads
	}))
	srv.Listener.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.Listener = ln
	srv.Start()
	defer srv.Close()
	defer close(release)

	c := otelws.Dial(otelws.Config{URL: "ws" + srv.URL[len("http"):] + "/otel", Backoff: fast,
		WriteTimeout: time.Hour, IdleTimeout: time.Hour, PingInterval: time.Hour,
		MaxPendingFrames: 1000, MaxPendingBytes: 1 << 30})
	frame := make([]byte, 1<<20)
	for range 64 { // far more than the loopback socket buffers hold
		c.Send(frame)
	}
	waitUntil(t, "the writer to take the frames", func() bool { st := c.Stats(); return st.Connected && st.Queued < 64 })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	closed := make(chan struct{})
	go func() { c.Close(ctx); close(closed) }()
	select {
	case <-closed:
	case <-time.After(30 * time.Second): // a failure bound, far below the hour-long write timeout
		t.Fatal("Close waited for the blocked write")
	}
}

// Close cuts a write short even when it comes between two chunks of a
// large frame, while the peer still reads, and the peer then stops
// reading: gorilla sets the write deadline again before every chunk, which
// undid a deadline set once from outside and left the next chunk blocked
// for the whole write timeout.
func TestCloseCutsAWriteThatResumesAfterIt(t *testing.T) {
	frame := make([]byte, 128<<20)
	for round := range 5 {
		var stopReading atomic.Bool
		release := make(chan struct{})
		up := websocket.Upgrader{}
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ws, err := up.Upgrade(w, r, nil)
			if err != nil {
				return
			}
			defer ws.Close()
			nc := ws.NetConn()
			buf := make([]byte, 64<<10)
			for !stopReading.Load() { // at full speed: the writer is mostly between chunks, not blocked
				if _, err := nc.Read(buf); err != nil {
					return
				}
			}
			<-release // then nothing more
		}))
		c := otelws.Dial(otelws.Config{URL: "ws" + srv.URL[len("http"):] + "/otel", Backoff: fast,
			WriteTimeout: time.Hour, IdleTimeout: time.Hour, PingInterval: time.Hour,
			MaxPendingFrames: 1000, MaxPendingBytes: 1 << 30})
		c.Send(frame) // one frame, long enough to be mid-way when Close cuts it
		waitUntil(t, "the writer to take the frame", func() bool { st := c.Stats(); return st.Connected && st.Queued == 0 })
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		closed := make(chan struct{})
		go func() { c.Close(ctx); close(closed) }()
		time.Sleep(20 * time.Millisecond) // Close's context has ended: the cut is made
		stopReading.Store(true)
		select {
		case <-closed:
		case <-time.After(30 * time.Second): // a failure bound, far below the hour-long write timeout
			t.Fatalf("round %d: Close waited for a write that resumed after the cut", round)
		}
		cancel()
		close(release)
		srv.Close()
	}
}
