package iiitest

import (
	"bytes"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/iii-go/iii/connection/wire"
)

func TestWorkerRegisteredIsTheFirstFrameWithFreshIDAndToken(t *testing.T) {
	e := NewEngine(t)
	a, b := dial(t, e), dial(t, e)
	for _, id := range []string{a.id, a.token, b.id, b.token} {
		u, err := wire.ParseUUID(id)
		if err != nil || u[6]>>4 != 4 || u.String() != id {
			t.Fatalf("%q is not a lower-case UUID v4 (%v)", id, err)
		}
	}
	if a.id == b.id || a.token == b.token || a.id == a.token {
		t.Fatalf("ids and tokens must be distinct: %s %s %s %s", a.id, a.token, b.id, b.token)
	}
	ws, err := e.WaitWorkers(ctxT(t), 2)
	if err != nil || len(ws) != 2 || ws[0].ID != a.id || ws[1].ID != b.id {
		t.Fatalf("Workers = %+v, %v", ws, err)
	}
}

func TestJSONPingGetsJSONPong(t *testing.T) {
	e := NewEngine(t)
	c := dial(t, e)
	c.sendRaw(`{"type":"ping"}`)
	f := c.next()
	if f.typ != websocket.TextMessage || string(f.data) != `{"type":"pong"}` {
		t.Fatalf("got %d %q", f.typ, f.data)
	}
}

func TestWebSocketPingGetsPongWithSamePayload(t *testing.T) {
	e := NewEngine(t)
	c := dial(t, e)
	if err := c.ws.WriteControl(websocket.PingMessage, []byte("hello"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	// Two pongs, as from the engine: its own answer and its WebSocket
	// library's automatic one.
	for range 2 {
		f := c.next()
		if f.typ != websocket.PongMessage || string(f.data) != "hello" {
			t.Fatalf("got %d %q", f.typ, f.data)
		}
	}
	c.expectQuiet()
}

func TestBinaryJSONFramesAreProcessedLikeText(t *testing.T) {
	e := NewEngine(t)
	c := dial(t, e)
	if err := c.ws.WriteMessage(websocket.BinaryMessage, []byte(`{"type":"ping"}`)); err != nil {
		t.Fatal(err)
	}
	expectMsg[*wire.Pong](t, c)
}

func TestGarbageAndTruncatedFramesAreDroppedWithoutClosing(t *testing.T) {
	e := NewEngine(t)
	c := dial(t, e)
	for _, s := range []string{
		`not json`,
		`{"type":"invokefunction","function_id":"x","data":{`,
		`{"type":"registerfunction"}`,
		`[1,2,3]`,
		`{"type":"ping"} trailing`,
	} {
		c.sendRaw(s)
	}
	if err := c.ws.WriteMessage(websocket.BinaryMessage, []byte{0, 1, 2, 3, 4}); err != nil {
		t.Fatal(err)
	}
	c.expectQuiet()
	if n := e.FrameCount(wire.KindInvalid); n != 6 {
		t.Fatalf("FrameCount(invalid) = %d, want 6", n)
	}
	if len(e.Received(c.id)) != 0 {
		t.Fatalf("dropped frames were journaled: %v", e.Received(c.id))
	}
}

func TestEmptyFramesAreSkipped(t *testing.T) {
	e := NewEngine(t)
	c := dial(t, e)
	c.sendRaw("")
	c.sendRaw("  \n\t ")
	c.expectQuiet()
	if n := e.FrameCount(wire.KindInvalid); n != 0 {
		t.Fatalf("blank frames counted as invalid: %d", n)
	}
}

func TestUnknownTypesAreDropped(t *testing.T) {
	e := NewEngine(t)
	c := dial(t, e)
	c.sendRaw(`{"type":"bogus","id":"x"}`)
	c.sendRaw(`{"type":"RegisterFunction","id":"x"}`) // the discriminator is case-sensitive
	c.expectQuiet()
	if _, ok := e.Functions()["x"]; ok {
		t.Fatal("a frame of an unknown type registered a function")
	}
	if n := e.FrameCount(wire.KindInvalid); n != 2 {
		t.Fatalf("FrameCount(invalid) = %d", n)
	}
}

func TestInvalidInvocationIDMakesTheFrameUndecodable(t *testing.T) {
	e := NewEngine(t)
	c := dial(t, e)
	c.sendRaw(`{"type":"invokefunction","invocation_id":"not-a-uuid","function_id":"missing::fn","data":{}}`)
	c.sendRaw(`{"type":"invocationresult","invocation_id":"1234","function_id":"f"}`)
	c.expectQuiet() // no function_not_found: the frame was dropped
	if n := e.FrameCount(wire.KindInvalid); n != 2 {
		t.Fatalf("FrameCount(invalid) = %d", n)
	}
}

func TestUnknownPathIs404(t *testing.T) {
	e := NewEngine(t)
	resp, err := http.Get("http://" + e.Addr + "/nope")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("status %d", resp.StatusCode)
	}
}

// expectDropped waits until the double ends c's connection and checks that
// it sent no Close frame: the engine drops the socket on a read error.
func expectDropped(t *testing.T, c *client) {
	t.Helper()
	err := c.waitClosed()
	var ce *websocket.CloseError
	if errors.As(err, &ce) && ce.Code != websocket.CloseAbnormalClosure {
		t.Fatalf("closed with a Close frame: %v", err)
	}
}

func TestFrameOverTheSizeLimitDropsOnlyThatConnection(t *testing.T) {
	e := NewEngine(t, WithMaxFrameSize(1024))
	big, other := dial(t, e), dial(t, e)
	big.register("big::fn")
	waitFn(t, e, "big::fn")
	big.sendRaw(`{"type":"ping","pad":"` + strings.Repeat("x", 2000) + `"}`)
	expectDropped(t, big)
	if err := e.WaitFunctionGone(ctxT(t), "big::fn"); err != nil {
		t.Fatal("cleanup did not run for the oversized connection")
	}
	// A frame just under the limit still works on the other connection.
	other.sendRaw(`{"type":"ping","pad":"` + strings.Repeat("x", 900) + `"}`)
	expectMsg[*wire.Pong](t, other)
	dial(t, e).expectQuiet()
}

// dialFragmenting connects a raw client whose messages go out in frames
// of at most about 512 bytes (gorilla fragments at its write buffer size).
func dialFragmenting(t *testing.T, e *Engine) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{WriteBufferSize: 512}
	ws, _, err := d.Dial(e.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	ws.SetReadDeadline(time.Now().Add(testTimeout))
	if _, _, err := ws.ReadMessage(); err != nil { // workerregistered
		t.Fatal(err)
	}
	return ws
}

func TestFragmentedMessageUnderTheMessageLimitIsAccepted(t *testing.T) {
	e := NewEngine(t, WithMaxFrameSize(1024), WithMaxMessageSize(4096))
	ws := dialFragmenting(t, e)
	if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping","pad":"`+strings.Repeat("x", 3000)+`"}`)); err != nil {
		t.Fatal(err)
	}
	_, b, err := ws.ReadMessage()
	if err != nil || string(b) != `{"type":"pong"}` {
		t.Fatalf("got %s, %v", b, err)
	}
}

func TestMessageOverTheSizeLimitDropsTheConnection(t *testing.T) {
	e := NewEngine(t, WithMaxFrameSize(1024), WithMaxMessageSize(2048))
	ws := dialFragmenting(t, e)
	if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping","pad":"`+strings.Repeat("x", 3000)+`"}`)); err != nil {
		t.Fatal(err)
	}
	// Dropped: EOF (1006) or, when the double closes with the rest of the
	// message still unread, a connection reset; never a Close frame.
	_, _, err := ws.ReadMessage()
	var ce *websocket.CloseError
	if err == nil || (errors.As(err, &ce) && ce.Code != websocket.CloseAbnormalClosure) {
		t.Fatalf("want the connection dropped without a Close frame, got %v", err)
	}
}

func TestInvalidUTF8TextDropsTheConnection(t *testing.T) {
	e := NewEngine(t)
	c := dial(t, e)
	c.sendRaw("\xff\xfe")
	expectDropped(t, c)
}

func TestWorkerCloseIsNotEchoed(t *testing.T) {
	e := NewEngine(t)
	c := dial(t, e)
	if err := c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Time{}); err != nil {
		t.Fatal(err)
	}
	expectDropped(t, c)
}

func TestAuthFailureSendsErrorFrameThenCloses(t *testing.T) {
	e := NewEngine(t, WithAuth(func(r *http.Request) error {
		if r.Header.Get("Authorization") == "Bearer good" {
			return nil
		}
		return errors.New("auth function returned no result")
	}))
	bad := dialURL(t, e.URL, nil)
	f := bad.next()
	if want := `{"type":"error","error":{"code":"AUTH_ERROR","message":"auth function returned no result"}}`; string(f.data) != want {
		t.Fatalf("got %s, want %s", f.data, want)
	}
	err := bad.waitClosed()
	if !websocket.IsCloseError(err, websocket.CloseNoStatusReceived) {
		t.Fatalf("want a Close frame without a code, got %v", err)
	}
	if len(e.Workers()) != 0 {
		t.Fatal("an unauthenticated connection became a worker")
	}
	good := dialURL(t, e.URL, map[string]string{"Authorization": "Bearer good"})
	expectMsg[*wire.WorkerRegistered](t, good)
	// /otel goes through the same gate.
	otel := dialURL(t, e.URL+"/otel", nil)
	if f := otel.next(); !bytes.Contains(f.data, []byte("AUTH_ERROR")) {
		t.Fatalf("/otel: got %s", f.data)
	}
}

func TestHandshakeTimeoutClosesSilentConnections(t *testing.T) {
	e := NewEngine(t, WithHandshakeTimeout(50*time.Millisecond))
	conn, err := net.Dial("tcp", e.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(testTimeout))
	var buf [1]byte
	if _, err := conn.Read(buf[:]); err == nil {
		// The server may answer 408 before closing; then EOF must follow.
		if _, err = conn.Read(make([]byte, 4096)); err == nil {
			_, err = conn.Read(make([]byte, 4096))
		}
		if err == nil {
			t.Fatal("connection still open")
		}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the engine did not close a connection that never sent its request")
	}
}

func TestTheDoubleNeverPings(t *testing.T) {
	e := NewEngine(t)
	c := dial(t, e)
	c.register("a::b")
	for _, m := range c.sync() {
		if m.Kind() == wire.KindPing {
			t.Fatal("the engine sent a ping")
		}
	}
}

func TestRegisterServiceIsAcceptedSilently(t *testing.T) {
	e := NewEngine(t)
	c := dial(t, e)
	c.send(&wire.RegisterService{ID: "orders", Name: "Orders"})
	c.expectQuiet()
	got := e.Received(c.id)
	if len(got) != 1 || got[0].Kind() != wire.KindRegisterService {
		t.Fatalf("Received = %s", encodeAll(got))
	}
}

func TestReceivedRecordsControlFramesInOrderAsPrivateCopies(t *testing.T) {
	// It checks the FIFO order the double keeps by default.
	t.Setenv(UnorderedEnv, "")
	e := NewEngine(t)
	c := dial(t, e)
	c.send(&wire.RegisterTriggerType{ID: "t::x", Description: "d"})
	c.send(&wire.RegisterFunction{ID: "a::one", Metadata: []byte(`{"k":1}`)})
	c.sendRaw(`{"type":"invokefunction","function_id":"engine::workers::register","data":{"pid":1},"action":{"type":"void"}}`)
	c.send(&wire.RegisterTrigger{ID: "tr1", TriggerType: "t::x", FunctionID: "a::one", Config: []byte(`{}`)})
	c.call("a::one", `{}`) // not journaled
	c.sync()
	// Overwrite the engine's read buffer with other bytes.
	c.sendRaw(`{"type":"ping","pad":"` + strings.Repeat("z", 200) + `"}`)
	expectMsg[*wire.Pong](t, c) // its own pong, so that sync waits for the next
	c.sync()
	got := e.Received(c.id)
	want := []wire.Kind{wire.KindRegisterTriggerType, wire.KindRegisterFunction, wire.KindRegisterTrigger}
	if len(got) != len(want) {
		t.Fatalf("Received = %s", encodeAll(got))
	}
	for i, k := range want {
		if got[i].Kind() != k {
			t.Fatalf("Received[%d] = %s, want %s", i, got[i].Kind(), k)
		}
	}
	if rf := got[1].(*wire.RegisterFunction); string(rf.Metadata) != `{"k":1}` {
		t.Fatalf("journaled metadata aliases a reused buffer: %s", rf.Metadata)
	}
	j := e.Journal(c.id)
	if len(j) != 4 || j[2].(*wire.InvokeFunction).FunctionID != "engine::workers::register" {
		t.Fatalf("Journal = %s", encodeAll(j))
	}
	if e.FrameCount(wire.KindRegisterFunction) != 1 || e.FrameCount(wire.KindInvokeFunction) != 2 || e.FrameCount(wire.KindPing) != 3 {
		t.Fatalf("FrameCount: reg %d invoke %d ping %d", e.FrameCount(wire.KindRegisterFunction), e.FrameCount(wire.KindInvokeFunction), e.FrameCount(wire.KindPing))
	}
}

func TestUnregisterTriggerTypeIsIgnored(t *testing.T) {
	e := NewEngine(t)
	p := dial(t, e)
	p.send(&wire.RegisterTriggerType{ID: "fs::watch", Description: "d"})
	p.send(&wire.UnregisterTriggerType{ID: "fs::watch"})
	p.sync()
	b := dial(t, e)
	b.send(&wire.RegisterTrigger{ID: "t1", TriggerType: "fs::watch", FunctionID: "f::g", Config: []byte(`{}`)})
	b.sync()
	rt := expectMsg[*wire.RegisterTrigger](t, p)
	if rt.ID != "t1" {
		t.Fatalf("provider got %s", wire.Encode(rt))
	}
	if e.FrameCount(wire.KindUnregisterTriggerType) != 1 {
		t.Fatal("unregistertriggertype not counted")
	}
}
