package connection

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/iii-go/iii/actors"
	"github.com/iii-go/iii/connection/wire"
)

// TestLargeMessageGoesOutAsOneMaskedFrame: the socket writes each message
// as one final, masked text frame, however large (gorilla's writer cut a
// message into fragments of its 64 KiB buffer), and the payload unmasks to
// the encoded message.
func TestLargeMessageGoesOutAsOneMaskedFrame(t *testing.T) {
	big := `"` + strings.Repeat("x", 300<<10) + `"`
	want := (&wire.InvokeFunction{FunctionID: "big", Data: json.RawMessage(big)}).AppendJSON(nil)
	type frame struct {
		fin, masked bool
		op          byte
		payload     []byte
	}
	frames := make(chan frame, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		defer close(frames)
		if err := ws.WriteMessage(websocket.TextMessage, (&wire.WorkerRegistered{WorkerID: "w"}).AppendJSON(nil)); err != nil {
			return
		}
		nc := ws.NetConn() // the raw frames, below gorilla's reader
		for {
			var h [14]byte
			if _, err := io.ReadFull(nc, h[:2]); err != nil {
				return
			}
			f := frame{fin: h[0]&0x80 != 0, op: h[0] & 0x0f, masked: h[1]&0x80 != 0}
			n := uint64(h[1] & 0x7f)
			switch n {
			case 126:
				if _, err := io.ReadFull(nc, h[2:4]); err != nil {
					return
				}
				n = uint64(binary.BigEndian.Uint16(h[2:4]))
			case 127:
				if _, err := io.ReadFull(nc, h[2:10]); err != nil {
					return
				}
				n = binary.BigEndian.Uint64(h[2:10])
			}
			var key [4]byte
			if f.masked {
				if _, err := io.ReadFull(nc, key[:]); err != nil {
					return
				}
			}
			f.payload = make([]byte, n)
			if _, err := io.ReadFull(nc, f.payload); err != nil {
				return
			}
			for i := range f.payload {
				f.payload[i] ^= key[i&3]
			}
			frames <- f
		}
	}))
	defer srv.Close()
	c, states := startConn(t, "ws"+strings.TrimPrefix(srv.URL, "http"), time.Hour, time.Hour)
	waitState(t, states, Connected)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := c.Send(ctx, &wire.InvokeFunction{FunctionID: "big", Data: json.RawMessage(big)}, nil, time.Time{}); err != nil {
		t.Fatal(err)
	}
	for {
		var f frame
		var ok bool
		select {
		case f, ok = <-frames:
		case <-ctx.Done():
			t.Fatal("the large message never arrived")
		}
		if !ok {
			t.Fatal("the connection ended before the large message arrived")
		}
		if !f.masked {
			t.Fatalf("an unmasked frame from a client (opcode %d)", f.op)
		}
		if f.op == 0 || !f.fin {
			t.Fatalf("a fragmented message: opcode %d, FIN %v, %d bytes", f.op, f.fin, len(f.payload))
		}
		if f.op == websocket.TextMessage && len(f.payload) > 1<<10 {
			if !bytes.Equal(f.payload, want) {
				t.Fatalf("the large frame (%d bytes) is not the encoded message (%d bytes)", len(f.payload), len(want))
			}
			return
		}
	}
}

// TestFramesGoThroughTLS: over wss the frames go through the TLS
// connection (the coalescing buffer is under TLS, so frames written to it
// straight would reach the engine in clear text, breaking the stream), and
// a large message arrives whole.
func TestFramesGoThroughTLS(t *testing.T) {
	big := `"` + strings.Repeat("y", 200<<10) + `"`
	got := make(chan []byte, 4)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		ws.SetReadLimit(8 << 20)
		if err := ws.WriteMessage(websocket.TextMessage, (&wire.WorkerRegistered{WorkerID: "w"}).AppendJSON(nil)); err != nil {
			return
		}
		for {
			_, p, err := ws.ReadMessage()
			if err != nil {
				close(got)
				return
			}
			got <- p
		}
	}))
	defer srv.Close()
	sys := actors.NewSystem(nil)
	defer sys.Stop(time.Second)
	states := make(chan State, 100)
	c, err := New(sys, Config{
		URL:       "wss" + strings.TrimPrefix(srv.URL, "https"),
		TLSConfig: srv.Client().Transport.(*http.Transport).TLSClientConfig,
		Backoff:   Backoff{Initial: time.Hour, Max: time.Hour, Multiplier: 1, MaxRetries: -1},
		OnState:   func(s State) { states <- s },
		Router:    nopRouter{},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	waitState(t, states, Connected)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	m := &wire.InvokeFunction{FunctionID: "big", Data: json.RawMessage(big)}
	want := m.AppendJSON(nil)
	if err := c.Send(ctx, m, nil, time.Time{}); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case p, ok := <-got:
			if !ok {
				t.Fatal("the server's read failed before the message arrived (frames outside TLS?)")
			}
			if bytes.Equal(p, want) {
				return
			}
		case <-ctx.Done():
			t.Fatal("the message never arrived")
		}
	}
}
