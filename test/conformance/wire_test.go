package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/connection/wire"
)

// Wire-level checks: what the engine does with raw WebSocket frames, where
// the SDK would hide it.

// rawWorker connects a raw WebSocket worker and reads its workerregistered.
func (tg *target) rawWorker(t *testing.T) *websocket.Conn {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(tg.url+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	ws.SetReadDeadline(time.Now().Add(15 * time.Second))
	m := readMsg(t, ws)
	if _, ok := m.(*wire.WorkerRegistered); !ok {
		t.Fatalf("first frame %T, want workerregistered", m)
	}
	return ws
}

func readMsg(t *testing.T, ws *websocket.Conn) wire.Message {
	t.Helper()
	for {
		_, b, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		m, err := wire.Decode(b)
		if err != nil {
			t.Fatalf("frame %s: %v", b, err)
		}
		if _, ok := m.(*wire.InvokeFunction); ok {
			continue // an engine event this connection subscribed to by no one; not expected, skip
		}
		return m
	}
}

// expectDropped reads until the connection ends and checks that the engine
// sent no Close frame (the client sees 1006, an abnormal closure).
func expectDropped(t *testing.T, ws *websocket.Conn) {
	t.Helper()
	ws.SetReadDeadline(time.Now().Add(15 * time.Second))
	for {
		_, _, err := ws.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) {
			var ne interface{ Timeout() bool }
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("the connection stayed open")
			}
			return // EOF or reset
		}
		if ce.Code != websocket.CloseAbnormalClosure {
			t.Fatalf("the engine sent a Close frame: %v", err)
		}
		return
	}
}

// The engine answers a JSON ping with a JSON pong, and a WebSocket ping
// with at least one pong.
func TestWirePing(t *testing.T) {
	tg := newTarget(t)
	ws := tg.rawWorker(t)
	if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping"}`)); err != nil {
		t.Fatal(err)
	}
	if _, ok := readMsg(t, ws).(*wire.Pong); !ok {
		t.Fatal("no JSON pong")
	}
	pongs := make(chan string, 4)
	ws.SetPongHandler(func(s string) error { pongs <- s; return nil })
	if err := ws.WriteControl(websocket.PingMessage, []byte("p1"), time.Time{}); err != nil {
		t.Fatal(err)
	}
	// The pong is processed while reading: a JSON ping makes the engine
	// send something after it.
	if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping"}`)); err != nil {
		t.Fatal(err)
	}
	readMsg(t, ws)
	if n := len(pongs); n == 0 {
		t.Fatal("no pong for a WebSocket ping")
	} else {
		t.Logf("%d pong(s) for one WebSocket ping", n)
	}
}

// The engine does not answer the worker's Close frame: it drops the
// connection.
func TestWireWorkerCloseIsNotEchoed(t *testing.T) {
	tg := newTarget(t)
	ws := tg.rawWorker(t)
	if err := ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Time{}); err != nil {
		t.Fatal(err)
	}
	expectDropped(t, ws)
}

// A text message that is not valid UTF-8 drops the connection, without a
// Close frame.
func TestWireInvalidUTF8DropsTheConnection(t *testing.T) {
	tg := newTarget(t)
	ws := tg.rawWorker(t)
	if err := ws.WriteMessage(websocket.TextMessage, []byte("\xff\xfe")); err != nil {
		t.Fatal(err)
	}
	expectDropped(t, ws)
}

// A single frame over 16 MiB drops the connection, without a Close frame;
// the same bytes in smaller frames are one valid message.
func TestWireFrameOver16MiBDropsTheConnection(t *testing.T) {
	tg := newTarget(t)
	pad := strings.Repeat("x", 17<<20)
	msg := []byte(`{"type":"ping","pad":"` + pad + `"}`)

	// Fragmented (gorilla writes one frame per write buffer): accepted.
	d := websocket.Dialer{WriteBufferSize: 1 << 20}
	frag, _, err := d.Dial(tg.url+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer frag.Close()
	frag.SetReadDeadline(time.Now().Add(15 * time.Second))
	readMsg(t, frag)
	w, err := frag.NextWriter(websocket.TextMessage)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(msg); i += 1 << 20 {
		w.Write(msg[i:min(i+1<<20, len(msg))])
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := readMsg(t, frag).(*wire.Pong); !ok {
		t.Fatal("fragmented 17 MiB message not answered")
	}

	// One frame: gorilla sends a message written at once as one frame when
	// its write buffer holds it.
	d = websocket.Dialer{WriteBufferSize: len(msg) + 64}
	one, _, err := d.Dial(tg.url+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer one.Close()
	one.SetReadDeadline(time.Now().Add(15 * time.Second))
	readMsg(t, one)
	one.WriteMessage(websocket.TextMessage, msg) // may fail once the engine drops us
	expectDropped(t, one)
}

// createChannelRaw creates a channel with engine::channels::create on a
// raw worker connection and returns its reader and writer URLs.
func (tg *target) createChannelRaw(t *testing.T) (readURL, writeURL string) {
	t.Helper()
	ws := tg.rawWorker(t)
	id := wire.NewUUID()
	if err := ws.WriteMessage(websocket.TextMessage, wire.Encode(&wire.InvokeFunction{InvocationID: id, HasInvocationID: true, FunctionID: "engine::channels::create", Data: json.RawMessage(`{}`)})); err != nil {
		t.Fatal(err)
	}
	r, ok := readMsg(t, ws).(*wire.InvocationResult)
	if !ok || r.Error != nil {
		t.Fatalf("channels::create: %+v", r)
	}
	var refs struct {
		Reader struct {
			ChannelID string `json:"channel_id"`
			AccessKey string `json:"access_key"`
		} `json:"reader"`
	}
	if err := json.Unmarshal(r.Result, &refs); err != nil {
		t.Fatal(err)
	}
	chURL := func(dir string) string {
		return tg.url + "/ws/channels/" + refs.Reader.ChannelID + "?key=" + url.QueryEscape(refs.Reader.AccessKey) + "&dir=" + dir
	}
	return chURL("read"), chURL("write")
}

// streamOne connects the reader (letting it send frames first), writes one
// item and closes the writer, and returns the reader, which has the item.
func streamOne(t *testing.T, readURL, writeURL string, before func(rd *websocket.Conn)) *websocket.Conn {
	t.Helper()
	rd, _, err := websocket.DefaultDialer.Dial(readURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rd.Close() })
	before(rd)
	wr, _, err := websocket.DefaultDialer.Dial(writeURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer wr.Close()
	wr.WriteMessage(websocket.TextMessage, []byte("item"))
	wr.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Time{})
	rd.SetReadDeadline(time.Now().Add(15 * time.Second))
	if _, b, err := rd.ReadMessage(); err != nil || string(b) != "item" {
		t.Fatalf("reader got %q, %v; want the item", b, err)
	}
	return rd
}

// A reader gets the items, then a Close with no status code, whether the
// writer finished normally or not.
func TestWireChannelStreamEndsWithACloseWithoutStatus(t *testing.T) {
	tg := newTarget(t)
	readURL, writeURL := tg.createChannelRaw(t)
	rd := streamOne(t, readURL, writeURL, func(*websocket.Conn) {})
	if _, _, err := rd.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseNoStatusReceived) {
		t.Fatalf("end of stream: %v; want a Close with no status code", err)
	}
}

// The engine never reads a channel reader's socket: the reader's ping gets
// no pong and its Close no reply. And because the bytes the reader sent
// are never read, the engine's socket closes with unread data at the end
// of the stream: the reader may get a connection reset instead of the
// final Close.
func TestWireChannelReaderSocketIsNotRead(t *testing.T) {
	tg := newTarget(t)
	pongs := 0
	readURL, writeURL := tg.createChannelRaw(t)
	rd := streamOne(t, readURL, writeURL, func(rd *websocket.Conn) {
		rd.SetPongHandler(func(string) error { pongs++; return nil })
		rd.WriteControl(websocket.PingMessage, []byte("p"), time.Time{})
		rd.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Time{})
	})
	_, _, err := rd.ReadMessage()
	var ce *websocket.CloseError
	if errors.As(err, &ce) && ce.Code != websocket.CloseNoStatusReceived {
		t.Fatalf("end of stream: %v; want a Close with no status code (a reply to the reader's Close?)", err)
	}
	if err == nil {
		t.Fatal("more than the item")
	}
	t.Logf("end of stream after the reader wrote: %v", err)
	if pongs != 0 {
		t.Fatalf("%d pong(s) on the reader socket", pongs)
	}
}

// Reusing the invocation id of a pending call fails the earlier call with
// invocation_error "channel closed"; the later call is answered normally.
func TestWireReusedPendingInvocationID(t *testing.T) {
	tg := newTarget(t)
	h := tg.worker(t)
	fn := tg.id("slow")
	release := make(chan struct{})
	calls := make(chan int, 2)
	if _, err := iii.RegisterFunction(h, fn, func(ctx context.Context, n int) (int, error) {
		calls <- n
		<-release
		return n, nil
	}); err != nil {
		t.Fatal(err)
	}
	defer close(release)
	eventually(t, "the function listed", func() bool { return functionListed(t, h, fn) })
	c := tg.rawWorker(t)
	id := wire.NewUUID()
	for n := 1; n <= 2; n++ {
		c.WriteMessage(websocket.TextMessage, wire.Encode(&wire.InvokeFunction{InvocationID: id, HasInvocationID: true, FunctionID: fn, Data: json.RawMessage(strconv.Itoa(n))}))
	}
	recv(t, calls, "the first call")
	recv(t, calls, "the second call")
	r, ok := readMsg(t, c).(*wire.InvocationResult)
	if !ok || r.InvocationID != id || r.Error == nil || r.Error.Code != "invocation_error" || r.Error.Message != "channel closed" {
		t.Fatalf("first answer %s; want invocation_error \"channel closed\"", wire.Encode(r))
	}
	release <- struct{}{}
	r, ok = readMsg(t, c).(*wire.InvocationResult)
	if !ok || r.InvocationID != id || r.Error != nil {
		t.Fatalf("second answer %s; want a result", wire.Encode(r))
	}
}

// A channel writer's Close is answered (the engine reads on for 10 ms to
// drain, which flushes the reply).
func TestWireChannelWriterCloseIsAnswered(t *testing.T) {
	tg := newTarget(t)
	_, writeURL := tg.createChannelRaw(t)
	wr, _, err := websocket.DefaultDialer.Dial(writeURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer wr.Close()
	wr.WriteMessage(websocket.TextMessage, []byte("item"))
	wr.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Time{})
	wr.SetReadDeadline(time.Now().Add(15 * time.Second))
	_, _, err = wr.ReadMessage()
	t.Logf("writer after its Close: %v", err)
	if !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
		t.Fatalf("writer after its Close: %v; want the Close echoed", err)
	}
}

// The handler gets the caller's traceparent as the engine re-injects it
// through OpenTelemetry's W3C propagator: normalised to version 00 with the
// sampled flag only, or dropped when the propagator rejects it; the baggage
// names the target function either way.
func TestWireTraceparentIsNormalisedOrDropped(t *testing.T) {
	tg := newTarget(t)
	h := tg.rawWorker(t)
	fn := tg.id("traced")
	h.WriteMessage(websocket.TextMessage, wire.Encode(&wire.RegisterFunction{ID: fn}))
	probe := tg.worker(t)
	eventually(t, "the function listed", func() bool { return functionListed(t, probe, fn) })
	c := tg.rawWorker(t)
	const tr, sp = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	for _, tc := range []struct{ sent, got string }{
		{"00-" + tr + "-" + sp + "-01", "00-" + tr + "-" + sp + "-01"},
		{"00-" + tr + "-" + sp + "-02", "00-" + tr + "-" + sp + "-00"},
		{"00-" + tr + "-" + sp + "-03", ""},
		{"01-" + tr + "-" + sp + "-09-extra", "00-" + tr + "-" + sp + "-01"},
		{"00-4BF92F3577B34DA6A3CE929D0E0E4736-" + sp + "-01", ""},
		{"00-" + tr + "-0000000000000000-01", ""},
		{"garbage", ""},
	} {
		c.WriteMessage(websocket.TextMessage, wire.Encode(&wire.InvokeFunction{FunctionID: fn, Data: json.RawMessage(`{}`), Traceparent: tc.sent}))
		h.SetReadDeadline(time.Now().Add(15 * time.Second))
		var inv *wire.InvokeFunction
		for inv == nil {
			_, b, err := h.ReadMessage()
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if m, err := wire.Decode(b); err == nil {
				if i, ok := m.(*wire.InvokeFunction); ok && i.FunctionID == fn {
					inv = i
				}
			}
		}
		if inv.Traceparent != tc.got || inv.Baggage != "iii.function.id="+fn {
			t.Errorf("traceparent %q: handler got %q with baggage %q, want %q", tc.sent, inv.Traceparent, inv.Baggage, tc.got)
		}
	}
}
