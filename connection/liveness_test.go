package connection

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/iii-go/iii/actors"
	"github.com/iii-go/iii/test/iiitest"
)

// startConn connects a Conn with short keepalive settings to url and
// returns it with its state changes.
func startConn(t *testing.T, url string, ping, idle time.Duration) (*Conn, <-chan State) {
	t.Helper()
	sys := actors.NewSystem(nil)
	t.Cleanup(func() { sys.Stop(time.Second) })
	states := make(chan State, 100)
	c, err := New(sys, Config{
		URL: url, PingInterval: ping, IdleTimeout: idle,
		Backoff: Backoff{Initial: time.Hour, Max: time.Hour, Multiplier: 1, MaxRetries: -1},
		OnState: func(s State) { states <- s },
		Router:  nopRouter{},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, states
}

func waitState(t *testing.T, states <-chan State, want State) {
	t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case s := <-states:
			if s == want {
				return
			}
		case <-timeout:
			t.Fatalf("never reached %v", want)
		}
	}
}

// TestSilentEngineIsDroppedWithinIdleTimeout: an engine that goes silent
// (it reads, but answers nothing, not even pings) is dropped once nothing
// has arrived for IdleTimeout, not IdleTimeout plus a ping interval.
func TestSilentEngineIsDroppedWithinIdleTimeout(t *testing.T) {
	const ping, idle = time.Second, 2 * time.Second
	type span struct{ lastSent, closed time.Time }
	spans := make(chan span, 1)
	var handlers sync.WaitGroup
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		handlers.Add(1)
		defer handlers.Done()
		ws, err := (&websocket.Upgrader{}).Upgrade(rw, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		ws.SetPingHandler(func(string) error { return nil }) // no pong
		_ = ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"workerregistered","worker_id":"w1"}`))
		sent := time.Now() // the last frame the worker gets, sent before it arrives
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				spans <- span{sent, time.Now()}
				return
			}
		}
	}))
	defer func() { srv.Close(); handlers.Wait() }()
	c, states := startConn(t, "ws"+strings.TrimPrefix(srv.URL, "http"), ping, idle)
	waitState(t, states, Reconnecting)
	if err := c.LastError(); !errors.Is(err, ErrIdleTimeout) {
		t.Fatalf("LastError() = %v, want ErrIdleTimeout", err)
	}
	s := <-spans
	silent := s.closed.Sub(s.lastSent)
	if silent < idle {
		t.Fatalf("dropped after %v of silence, before the idle timeout %v", silent, idle)
	}
	// Detection used to take IdleTimeout plus up to a ping interval (3 s
	// here); the bound is IdleTimeout. Half a ping interval absorbs
	// scheduling noise.
	if silent > idle+ping/2 {
		t.Fatalf("dropped after %v of silence; the idle timeout is %v", silent, idle)
	}
}

// TestBlackholedEngineIsDroppedWithinIdleTimeout: through a proxy that
// discards everything the engine sends, the worker's pings still go out,
// nothing comes back, and the connection is dropped within the idle
// timeout of the last frame.
func TestBlackholedEngineIsDroppedWithinIdleTimeout(t *testing.T) {
	const ping, idle = time.Second, 2 * time.Second
	eng := iiitest.NewEngine(t)
	p := iiitest.NewProxy(t, eng.URL)
	c, states := startConn(t, p.URL, ping, idle)
	waitState(t, states, Connected)
	p.Blackhole(iiitest.Downstream)
	start := time.Now() // nothing arrives after this
	waitState(t, states, Reconnecting)
	if took := time.Since(start); took > idle+ping/2 {
		t.Fatalf("noticed after %v; the idle timeout is %v", took, idle)
	}
	if err := c.LastError(); !errors.Is(err, ErrIdleTimeout) {
		t.Fatalf("LastError() = %v, want ErrIdleTimeout", err)
	}
}
