package connection

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/iii-go/iii/actors"
	"github.com/iii-go/iii/connection/wire"
)

func TestRegistrationRejectedErrorMatches(t *testing.T) {
	err := error(&RegistrationRejectedError{Code: wire.WorkerNamespaceConflict, Namespace: "orders", WorkerName: "w", OwnerWorkerID: "o"})
	var refused *RefusedError
	if !errors.Is(err, ErrRegistrationRejected) || !errors.As(err, &refused) || refused.Code != wire.WorkerNamespaceConflict {
		t.Fatalf("%v does not match", err)
	}
	want := `iii: registration rejected: WORKER_NAMESPACE_CONFLICT: worker name "w" in namespace "orders" is held by worker o`
	if err.Error() != want {
		t.Fatalf("Error() = %q", err.Error())
	}
	for code, fatal := range map[string]bool{wire.WorkerNamespaceConflict: true, wire.FunctionNamespaceConflict: false, "SOMETHING_NEW": true} {
		if got := (&RegistrationRejectedError{Code: code}).Fatal(); got != fatal {
			t.Errorf("Fatal(%s) = %v", code, got)
		}
	}
}

// rejectingEngine accepts WebSocket connections, registers each and sends
// it rej, then keeps it open until the peer closes. It counts connections.
func rejectingEngine(t *testing.T, rej *wire.RegistrationRejected) (url string, conns *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conns = new(atomic.Int32)
	var wg sync.WaitGroup
	up := websocket.Upgrader{}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		wg.Add(1)
		defer wg.Done()
		defer ws.Close()
		conns.Add(1)
		_ = ws.WriteMessage(websocket.TextMessage, wire.Encode(&wire.WorkerRegistered{WorkerID: "w1"}))
		_ = ws.WriteMessage(websocket.TextMessage, wire.Encode(rej))
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				return
			}
		}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() {
		srv.Close()
		wg.Wait()
	})
	return "ws://" + ln.Addr().String(), conns
}

type frameRouter struct {
	nopRouter
	frames chan wire.Message
}

func (r frameRouter) Frame(_ *Socket, m wire.Message) { r.frames <- m }

func dialRejecting(t *testing.T, rej *wire.RegistrationRejected) (*Conn, frameRouter, *atomic.Int32) {
	t.Helper()
	url, conns := rejectingEngine(t, rej)
	sys := actors.NewSystem(nil)
	t.Cleanup(func() { sys.Stop(time.Second) })
	r := frameRouter{frames: make(chan wire.Message, 10)}
	c, err := New(sys, Config{URL: url, Router: r,
		Backoff: Backoff{Initial: time.Millisecond, Max: time.Millisecond, Multiplier: 1, MaxRetries: -1}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c, r, conns
}

// A code the SDK does not know is fatal, as in the official SDKs: the
// connection fails for good and is not dialled again.
func TestUnknownRejectionCodeIsFatal(t *testing.T) {
	c, _, conns := dialRejecting(t, &wire.RegistrationRejected{Code: "SOMETHING_NEW", Namespace: "orders", WorkerName: "w", OwnerWorkerID: "o"})
	requireFailedForGood(t, c, conns, "SOMETHING_NEW")
}

// requireFailedForGood waits for c to fail with a rejection of code, then
// checks that it dials no more (conns counts the connections made).
func requireFailedForGood(t *testing.T, c *Conn, conns *atomic.Int32, code string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for c.State() != Failed {
		if time.Now().After(deadline) {
			t.Fatalf("state %v, last error %v", c.State(), c.LastError())
		}
		time.Sleep(5 * time.Millisecond)
	}
	var rej *RegistrationRejectedError
	if !errors.As(c.LastError(), &rej) || rej.Code != code {
		t.Fatalf("last error %v", c.LastError())
	}
	time.Sleep(50 * time.Millisecond) // fifty retry intervals: none may dial
	if n := conns.Load(); n != 1 || c.State() != Failed {
		t.Fatalf("%d connections, state %v", n, c.State())
	}
}

// A function conflict costs the function only: the frame goes to the
// router and the connection stays up.
func TestFunctionRejectionIsNotFatal(t *testing.T) {
	c, r, _ := dialRejecting(t, &wire.RegistrationRejected{Code: wire.FunctionNamespaceConflict, Namespace: "orders", FunctionID: "f", OwnerWorkerID: "o"})
	select {
	case m := <-r.frames:
		if rej, ok := m.(*wire.RegistrationRejected); !ok || rej.FunctionID != "f" {
			t.Fatalf("router got %s", wire.Encode(m))
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no frame")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := c.WaitConnected(ctx); err != nil || c.State() != Connected {
		t.Fatalf("WaitConnected: %v, state %v", err, c.State())
	}
}

// A refusal for good can reach the actor before the result of the dial
// that made its socket (the socket reads as soon as it exists): it is kept
// for that result, not dropped, which left the worker connected.
func TestRejectionBeforeTheDialIsReportedIsFatal(t *testing.T) {
	sent := make(chan struct{})
	var once sync.Once
	fatalHook = func() { once.Do(func() { close(sent) }) }
	dialedHook = func() {
		select { // the refusal goes to the actor first
		case <-sent:
		case <-time.After(10 * time.Second):
		}
	}
	t.Cleanup(func() { fatalHook, dialedHook = nil, nil })
	c, _, conns := dialRejecting(t, &wire.RegistrationRejected{Code: wire.WorkerNamespaceConflict, Namespace: "orders", WorkerName: "w", OwnerWorkerID: "o"})
	requireFailedForGood(t, c, conns, wire.WorkerNamespaceConflict)
}
