package connection

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/iii-go/iii/actors"
	"github.com/iii-go/iii/connection/wire"
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
	t.Cleanup(func() { c.Close(context.Background()) })
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
	t.Cleanup(func() { srv.Close(); handlers.Wait() }) // after the Conn closes (cleanups run last first)
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

// recordBinder records the socket its call was bound to.
type recordBinder struct {
	mu sync.Mutex
	s  *Socket
}

func (b *recordBinder) Bind(s *Socket) { b.mu.Lock(); b.s = s; b.mu.Unlock() }

func (b *recordBinder) bound() *Socket { b.mu.Lock(); defer b.mu.Unlock(); return b.s }

// TestReplayThatFailsHalfWayReleasesEverything: a socket that dies while
// the parked frames are replayed (its queue full, its peer stalled) must
// give every parking slot back, tie the awaited calls it did not take to
// itself so that they fail with it at once, keep the Void frames parked,
// and never hold the connection's lock while it waits.
func TestReplayThatFailsHalfWayReleasesEverything(t *testing.T) {
	const slots = 8
	c := &Conn{cfg: Config{MaxParked: slots}, ctx: context.Background(),
		space: make(chan struct{}, slots), changed: make(chan struct{})}
	for range slots {
		c.space <- struct{}{}
	}
	var calls [4]*recordBinder
	for i := range calls {
		calls[i] = &recordBinder{}
		if err := c.Send(context.Background(), &wire.Ping{}, calls[i], time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	void := &wire.Pong{}
	if err := c.Send(context.Background(), void, nil, time.Time{}); err != nil {
		t.Fatal(err)
	}
	expired := &recordBinder{}
	if err := c.Send(context.Background(), &wire.Ping{}, expired, time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if free := len(c.space); free != slots-6 {
		t.Fatalf("%d free slots with 6 parked", free)
	}

	// A socket whose queue holds one frame and whose writer never runs.
	s := &Socket{out: make(chan wire.Message, 1), done: make(chan struct{})}
	s.ctx, s.cancel = context.WithCancelCause(context.Background())
	opened := make(chan struct{})
	go func() { defer close(opened); c.open(s) }()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitFor("the replay to fill the queue", func() bool { return calls[1].bound() == s })

	// The replay is stuck on the full queue; the lock must be free.
	got := make(chan State, 1)
	go func() { got <- c.State() }()
	select {
	case <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("State() blocked while the replay waited on a full socket queue")
	}
	// A call made now parks (s is not open for traffic yet).
	late := &recordBinder{}
	if err := c.Send(context.Background(), &wire.Ping{}, late, time.Time{}); err != nil {
		t.Fatal(err)
	}

	s.setErr(ErrSocketClosed) // the socket dies half way
	<-opened
	if c.Current() != nil {
		t.Fatal("a socket that died during its replay became Current")
	}
	for i, b := range calls {
		if b.bound() != s {
			t.Errorf("call %d is not bound to the dead socket: it would wait out its timeout", i)
		}
	}
	if expired.bound() != nil {
		t.Error("an expired call was sent")
	}
	c.mu.Lock()
	parked := append([]parked(nil), c.parked...)
	c.mu.Unlock()
	if len(parked) != 2 || parked[0].m != void || parked[1].b != late {
		t.Fatalf("still parked: %+v; want the Void frame, then the late call", parked)
	}
	if free := len(c.space); free != slots-2 {
		t.Fatalf("%d free slots with 2 parked; the replay leaked %d", free, slots-2-free)
	}
}

// TestUndecodableInvocationIsAnsweredAtOnce: an invokefunction that does
// not decode but whose invocation id is readable gets an error result at
// once, so its caller does not wait out its timeout.
func TestUndecodableInvocationIsAnsweredAtOnce(t *testing.T) {
	const id = "0b6f4a4e-8a59-4d5e-9b07-6c1b1d7f2a11"
	replies := make(chan *wire.InvocationResult, 1)
	var handlers sync.WaitGroup
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		handlers.Add(1)
		defer handlers.Done()
		ws, err := (&websocket.Upgrader{}).Upgrade(rw, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		_ = ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"workerregistered","worker_id":"w1"}`))
		// "data" is required: the frame does not decode.
		_ = ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"invokefunction","invocation_id":"`+id+`","function_id":"orders::create"}`))
		for {
			_, b, err := ws.ReadMessage()
			if err != nil {
				return
			}
			if m, err := wire.Decode(b); err == nil {
				if res, ok := m.(*wire.InvocationResult); ok {
					replies <- res
					return
				}
			}
		}
	}))
	t.Cleanup(func() { srv.Close(); handlers.Wait() }) // after the Conn closes (cleanups run last first)
	startConn(t, "ws"+strings.TrimPrefix(srv.URL, "http"), time.Second, 10*time.Second)
	select {
	case res := <-replies:
		if res.InvocationID.String() != id || res.FunctionID != "orders::create" ||
			res.Error == nil || res.Error.Code != CodeDeserializationError {
			t.Fatalf("reply %+v (error %+v)", res, res.Error)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no reply to an invocation that does not decode")
	}
}

// TestPingIntervalIsCappedByTheIdleTimeout: with a short IdleTimeout and
// the default 20 s PingInterval, a healthy but idle connection must stay
// up: the worker pings at least twice per idle timeout.
func TestPingIntervalIsCappedByTheIdleTimeout(t *testing.T) {
	const idle = 300 * time.Millisecond
	eng := iiitest.NewEngine(t)
	c, states := startConn(t, eng.URL, 0, idle)
	waitState(t, states, Connected)
	s := c.Current()
	time.Sleep(4 * idle) // asserting that nothing happens
	if c.Current() != s || !s.Alive() {
		t.Fatalf("an idle, healthy connection was dropped: %v", c.LastError())
	}
}
