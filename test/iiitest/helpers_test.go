package iiitest

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/iii-go/iii/connection/wire"
)

func TestMain(m *testing.M) {
	if os.Getenv("IIITEST_BENCH_SERVE") == "1" {
		serveForBench() // the child process of BenchmarkRouteEngineProcess
		return
	}
	goleak.VerifyTestMain(m)
}

// testTimeout bounds every wait in the tests; it is a failure deadline, not
// a measurement.
const testTimeout = 10 * time.Second

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// frame is one frame a raw client received.
type frame struct {
	typ  int
	data []byte
	msg  wire.Message // nil for frames that don't decode
}

// client is a raw gorilla/websocket worker.
type client struct {
	t      testing.TB
	ws     *websocket.Conn
	id     string
	token  string
	frames chan frame
	done   chan struct{}
	mu     sync.Mutex
	pongs  []string
	err    error
}

func dialURL(t testing.TB, url string, hdr map[string]string) *client {
	t.Helper()
	h := make(map[string][]string)
	for k, v := range hdr {
		h[k] = []string{v}
	}
	ws, _, err := websocket.DefaultDialer.Dial(url, h)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	c := &client{t: t, ws: ws, frames: make(chan frame, 1024), done: make(chan struct{})}
	ws.SetPongHandler(func(s string) error {
		c.mu.Lock()
		c.pongs = append(c.pongs, s)
		c.mu.Unlock()
		c.frames <- frame{typ: websocket.PongMessage, data: []byte(s)}
		return nil
	})
	go c.readLoop()
	t.Cleanup(c.close)
	return c
}

func (c *client) readLoop() {
	defer close(c.done)
	defer close(c.frames)
	for {
		typ, data, err := c.ws.ReadMessage()
		if err != nil {
			c.mu.Lock()
			c.err = err
			c.mu.Unlock()
			return
		}
		f := frame{typ: typ, data: data}
		if m, err := wire.Decode(data); err == nil {
			f.msg = m
		}
		c.frames <- f
	}
}

func (c *client) close() {
	c.ws.Close()
	<-c.done
}

// dial connects a worker and reads its workerregistered.
func dial(t testing.TB, e *Engine) *client {
	t.Helper()
	c := dialURL(t, e.URL, nil)
	wr := expectMsg[*wire.WorkerRegistered](t, c)
	c.id, c.token = wr.WorkerID, wr.ReattachToken
	return c
}

func (c *client) sendRaw(s string) {
	c.t.Helper()
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *client) send(m wire.Message) {
	c.t.Helper()
	if err := c.ws.WriteMessage(websocket.TextMessage, wire.Encode(m)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// next returns the next frame, failing the test if none arrives.
func (c *client) next() frame {
	c.t.Helper()
	select {
	case f, ok := <-c.frames:
		if !ok {
			c.t.Fatalf("connection closed while waiting for a frame: %v", c.err)
		}
		return f
	case <-time.After(testTimeout):
		c.t.Fatalf("no frame within %v", testTimeout)
	}
	return frame{}
}

// nextMsg returns the next decoded message, skipping WS pongs.
func (c *client) nextMsg() wire.Message {
	c.t.Helper()
	for {
		f := c.next()
		if f.typ == websocket.PongMessage {
			continue
		}
		if f.msg == nil {
			c.t.Fatalf("undecodable frame from the engine: %q", f.data)
		}
		return f.msg
	}
}

func expectMsg[T wire.Message](t testing.TB, c *client) T {
	t.Helper()
	m := c.nextMsg()
	v, ok := m.(T)
	if !ok {
		t.Fatalf("got %T %s, want %T", m, wire.Encode(m), *new(T))
	}
	return v
}

// sync sends a JSON ping and returns every message that arrived before the
// pong: anything the engine queued for c before it processed the ping.
func (c *client) sync() []wire.Message {
	c.t.Helper()
	c.send(&wire.Ping{})
	var got []wire.Message
	for {
		m := c.nextMsg()
		if _, ok := m.(*wire.Pong); ok {
			return got
		}
		got = append(got, m)
	}
}

// expectQuiet fails if anything arrived for c before a ping round trip.
func (c *client) expectQuiet() {
	c.t.Helper()
	if got := c.sync(); len(got) > 0 {
		c.t.Fatalf("unexpected frames: %s", encodeAll(got))
	}
}

// waitClosed waits until the engine closes the connection and returns the
// read error.
func (c *client) waitClosed() error {
	c.t.Helper()
	for {
		select {
		case _, ok := <-c.frames:
			if !ok {
				c.mu.Lock()
				defer c.mu.Unlock()
				return c.err
			}
		case <-time.After(testTimeout):
			c.t.Fatalf("connection not closed within %v", testTimeout)
		}
	}
}

func encodeAll(ms []wire.Message) string {
	var parts []string
	for _, m := range ms {
		parts = append(parts, string(wire.Encode(m)))
	}
	return strings.Join(parts, "\n")
}

func (c *client) register(id string) {
	c.t.Helper()
	c.send(&wire.RegisterFunction{ID: id})
}

// call sends a synchronous invokefunction and returns its id.
func (c *client) call(fn string, data string) wire.UUID {
	c.t.Helper()
	id := wire.NewUUID()
	c.send(&wire.InvokeFunction{InvocationID: id, HasInvocationID: true, FunctionID: fn, Data: json.RawMessage(data)})
	return id
}

// callSync calls fn and waits for its result.
func (c *client) callSync(fn string, data string) *wire.InvocationResult {
	c.t.Helper()
	id := c.call(fn, data)
	r := expectMsg[*wire.InvocationResult](c.t, c)
	if r.InvocationID != id {
		c.t.Fatalf("result for %s, want %s", r.InvocationID, id)
	}
	return r
}

// builtin calls an engine:: builtin and decodes its result into out.
func (c *client) builtin(fn string, data string, out any) *wire.ErrorBody {
	c.t.Helper()
	r := c.callSync(fn, data)
	if r.Error != nil {
		return r.Error
	}
	if out != nil {
		if err := json.Unmarshal(r.Result, out); err != nil {
			c.t.Fatalf("%s result %s: %v", fn, r.Result, err)
		}
	}
	return nil
}

// waitFn waits until the engine knows function id.
func waitFn(t testing.TB, e *Engine, id string) {
	t.Helper()
	if err := e.WaitFunction(ctxT(t), id); err != nil {
		t.Fatalf("function %s never registered: %v", id, err)
	}
}

func mustJSON(t testing.TB, raw json.RawMessage) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("bad JSON %s: %v", raw, err)
	}
	return m
}
