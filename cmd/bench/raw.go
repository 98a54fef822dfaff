package main

// The raw baseline: the same frames as the SDK exchanges, sent by the
// least code that can do it correctly. One WebSocket per client, one reader
// and one writer goroutine per socket, the connection/wire codec, writes
// coalesced while more frames are queued (as the SDK and the engine double
// do), no actors, no SDK. The handler answers inline on its read
// goroutine; the caller correlates results by invocation id in a map.

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/iii-go/iii/connection/wire"
	"github.com/iii-go/iii/internal/bufconn"
)

var errRawClosed = errors.New("raw: connection closed")

// noAction is an awaited call's action.
var noAction = wire.TriggerAction{}

// frameBuf is an encoded frame on its way to the writer, which returns it
// to framePool once written.
type frameBuf struct{ b []byte }

var framePool = sync.Pool{New: func() any { return &frameBuf{b: make([]byte, 0, 512)} }}

// rawConn is one WebSocket with a reader and a writer goroutine.
type rawConn struct {
	ws      *websocket.Conn
	bc      *bufconn.Conn
	out     chan *frameBuf
	quit    chan struct{} // closed by close
	dead    chan struct{} // closed when the socket failed or closed
	errOnce sync.Once
	err     error
	wg      sync.WaitGroup
	// writerDone is closed when the writer goroutine has returned.
	writerDone chan struct{}
}

// dialRaw connects to url and starts the goroutines; onFrame gets every
// text frame on the read goroutine and must not keep b.
func dialRaw(ctx context.Context, url string, onFrame func(b []byte)) (*rawConn, error) {
	var bc *bufconn.Conn
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second,
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			bc = bufconn.New(c)
			return bc, nil
		}}
	ws, resp, err := d.DialContext(ctx, url, nil)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		return nil, err
	}
	bc.Buffer()
	c := &rawConn{ws: ws, bc: bc, out: make(chan *frameBuf, 1024), quit: make(chan struct{}), dead: make(chan struct{}),
		writerDone: make(chan struct{})}
	c.wg.Add(2)
	go c.readLoop(onFrame)
	go c.writeLoop()
	return c, nil
}

func (c *rawConn) fail(err error) {
	c.errOnce.Do(func() {
		c.err = err
		close(c.dead)
		c.ws.Close()
	})
}

func (c *rawConn) readLoop(onFrame func([]byte)) {
	defer c.wg.Done()
	buf := make([]byte, 0, 4096)
	for {
		_, r, err := c.ws.NextReader()
		if err != nil {
			c.fail(err)
			return
		}
		if buf, err = readAll(r, buf[:0]); err != nil {
			c.fail(err)
			return
		}
		onFrame(buf)
		if cap(buf) > 4<<20 {
			buf = make([]byte, 0, 4096)
		}
	}
}

// writeLoop writes the queued frames and flushes when the queue is empty.
// Before flushing it yields once, so that goroutines about to queue a
// frame can join the same syscall (the SDK's writer does the same; without
// it a busy client makes a syscall for almost every frame).
func (c *rawConn) writeLoop() {
	defer c.wg.Done()
	defer close(c.writerDone)
	write := func(fb *frameBuf) error {
		err := c.ws.WriteMessage(websocket.TextMessage, fb.b)
		if cap(fb.b) <= 1<<20 {
			framePool.Put(fb)
		}
		return err
	}
	for {
		select {
		case fb := <-c.out:
			err := write(fb)
			for yielded := false; err == nil; {
				select {
				case fb = <-c.out:
					err = write(fb)
					continue
				default:
				}
				if yielded {
					break
				}
				yielded = true
				runtime.Gosched()
			}
			if err == nil {
				err = c.bc.Flush()
			}
			if err != nil {
				c.fail(err)
				return
			}
		case <-c.quit:
			return
		case <-c.dead:
			return
		}
	}
}

// send queues an encoded frame; the writer owns fb from then on.
func (c *rawConn) send(ctx context.Context, fb *frameBuf) error {
	select {
	case c.out <- fb:
		return nil
	case <-c.dead:
		return errRawClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// encode returns a pooled buffer holding m's frame. (Hot paths call
// getFrame and the concrete AppendJSON: a message passed as an interface
// escapes to the heap.)
func encode(m wire.Message) *frameBuf {
	fb := getFrame()
	fb.b = m.AppendJSON(fb.b)
	return fb
}

func getFrame() *frameBuf {
	fb := framePool.Get().(*frameBuf)
	fb.b = fb.b[:0]
	return fb
}

// close stops the writer, sends a Close frame and waits for both goroutines.
func (c *rawConn) close() {
	close(c.quit)
	<-c.writerDone // the Close frame goes through the writer's buffer
	_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	_ = c.bc.Flush()
	c.fail(errRawClosed)
	c.wg.Wait()
}

// readAll reads r to its end into buf.
func readAll(r io.Reader, buf []byte) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// rawCaller is a calling client: it sends invokefunction frames and
// correlates invocationresult frames by id.
type rawCaller struct {
	c       *rawConn
	names   wire.Interner // used by the read goroutine only
	mu      sync.Mutex
	pending map[wire.UUID]*rawCall
	prefix  [8]byte
	seq     atomic.Uint64
}

// rawCall is one goroutine's call slot, reused for each of its calls.
type rawCall struct {
	done  chan struct{}
	res   []byte // the result, copied out of the read buffer
	errb  wire.ErrorBody
	isErr bool
}

func dialRawCaller(ctx context.Context, url string) (*rawCaller, error) {
	rc := &rawCaller{pending: make(map[wire.UUID]*rawCall)}
	_, _ = rand.Read(rc.prefix[:])
	c, err := dialRaw(ctx, url, rc.onFrame)
	if err != nil {
		return nil, err
	}
	rc.c = c
	return rc, nil
}

// newID makes a unique id from a random prefix and a counter: as unique as
// a v4 UUID within a run, without a crypto/rand read per call.
func (rc *rawCaller) newID() wire.UUID {
	var u wire.UUID
	copy(u[:8], rc.prefix[:])
	binary.BigEndian.PutUint64(u[8:], rc.seq.Add(1))
	u[6] = u[6]&0x0f | 0x40
	return u
}

func (rc *rawCaller) onFrame(b []byte) {
	m, err := wire.DecodeInterned(b, &rc.names)
	if err != nil {
		return
	}
	r, ok := m.(*wire.InvocationResult)
	if !ok {
		return // workerregistered
	}
	rc.mu.Lock()
	call := rc.pending[r.InvocationID]
	delete(rc.pending, r.InvocationID)
	rc.mu.Unlock()
	if call == nil {
		return
	}
	call.res = append(call.res[:0], r.Result...)
	call.isErr = r.Error != nil
	if call.isErr {
		call.errb = *r.Error
	}
	call.done <- struct{}{}
}

// call makes an awaited call with slot; the result is in slot.res until
// slot's next call.
func (rc *rawCaller) call(ctx context.Context, slot *rawCall, fn string, payload []byte, action wire.TriggerAction) error {
	id := rc.newID()
	m := wire.InvokeFunction{InvocationID: id, HasInvocationID: true, FunctionID: fn, Data: payload, Action: action}
	fb := getFrame()
	fb.b = m.AppendJSON(fb.b)
	rc.mu.Lock()
	rc.pending[id] = slot
	rc.mu.Unlock()
	if err := rc.c.send(ctx, fb); err != nil {
		rc.forget(id, slot)
		return err
	}
	select {
	case <-slot.done:
	case <-ctx.Done():
		if rc.forget(id, slot) {
			return ctx.Err()
		}
		<-slot.done // the reader has it: take its answer
	case <-rc.c.dead:
		if rc.forget(id, slot) {
			return errRawClosed
		}
		<-slot.done
	}
	if slot.isErr {
		return &remoteErr{slot.errb}
	}
	return nil
}

// forget removes a call the reader has not taken yet; it reports whether
// it did.
func (rc *rawCaller) forget(id wire.UUID, slot *rawCall) bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.pending[id] == slot {
		delete(rc.pending, id)
		return true
	}
	return false
}

// void sends a fire-and-forget call.
func (rc *rawCaller) void(ctx context.Context, fn string, payload []byte) error {
	m := wire.InvokeFunction{FunctionID: fn, Data: payload, Action: wire.TriggerAction{Kind: wire.ActionVoid}}
	fb := getFrame()
	fb.b = m.AppendJSON(fb.b)
	return rc.c.send(ctx, fb)
}

// ctl calls a handler's control function.
func (rc *rawCaller) ctl(ctx context.Context, fn, op string) (ctlReply, error) {
	var r ctlReply
	slot := &rawCall{done: make(chan struct{}, 1)}
	if err := rc.call(ctx, slot, fn, mustJSON(ctlRequest{Op: op}), wire.TriggerAction{}); err != nil {
		return r, err
	}
	err := json.Unmarshal(slot.res, &r)
	return r, err
}

func (rc *rawCaller) close() { rc.c.close() }

type remoteErr struct{ body wire.ErrorBody }

func (e *remoteErr) Error() string { return e.body.Code + ": " + e.body.Message }

// rawHandler is a handling client: it registers the bench functions and
// answers every invokefunction inline on its read goroutine.
type rawHandler struct {
	c      *rawConn
	names  wire.Interner // used by the read goroutine only
	hs     *handlerState
	ids    map[string]string // function id → op
	parked []wire.InvokeFunction
}

func startRawHandler(ctx context.Context, url, ns string, hs *handlerState) (*rawHandler, error) {
	h := &rawHandler{hs: hs, ids: make(map[string]string)}
	for _, op := range handlerOps {
		h.ids[functionID(ns, "raw", op)] = op
	}
	c, err := dialRaw(ctx, url, h.onFrame)
	if err != nil {
		return nil, err
	}
	h.c = c
	for id := range h.ids {
		if err := c.send(ctx, encode(&wire.RegisterFunction{ID: id})); err != nil {
			c.close()
			return nil, err
		}
	}
	return h, nil
}

func (h *rawHandler) onFrame(b []byte) {
	m, err := wire.DecodeInterned(b, &h.names)
	if err != nil {
		return
	}
	inv, ok := m.(*wire.InvokeFunction)
	if !ok {
		return
	}
	res := wire.InvocationResult{InvocationID: inv.InvocationID, FunctionID: inv.FunctionID,
		Traceparent: inv.Traceparent, Baggage: inv.Baggage}
	switch h.ids[inv.FunctionID] {
	case opEcho:
		h.hs.echo.Add(1)
		res.Result = inv.Data
	case opSink:
		h.hs.onSink(inv.Data)
	case opJob:
		h.hs.job.Add(1)
	case opPark:
		h.hs.park.Add(1)
		h.hs.parked.Add(1)
		h.parked = append(h.parked, wire.InvokeFunction{InvocationID: inv.InvocationID, FunctionID: inv.FunctionID}) // interned: not the read buffer's
		return
	case opCtl:
		var req ctlRequest
		_ = json.Unmarshal(inv.Data, &req)
		if req.Op == "release" {
			h.releaseParked()
		}
		res.Result = mustJSON(h.hs.ctl(req.Op))
	default:
		res.Error = &wire.ErrorBody{Code: "function_not_found", Message: "function " + inv.FunctionID + " is not served here"}
	}
	fb := getFrame()
	fb.b = res.AppendJSON(fb.b)
	_ = h.c.send(context.Background(), fb)
}

func (h *rawHandler) releaseParked() {
	for _, p := range h.parked {
		_ = h.c.send(context.Background(), encode(&wire.InvocationResult{InvocationID: p.InvocationID, FunctionID: p.FunctionID}))
	}
	h.hs.parked.Add(-int64(len(h.parked)))
	h.parked = nil
}

func (h *rawHandler) close() { h.c.close() }
