// Package otelws exports OpenTelemetry data to an iii engine the way the
// official SDKs do: OTLP/JSON in binary WebSocket frames prefixed "OTLP"
// (traces), "MTRC" (metrics) or "LOGS" (logs), on a connection of its own to
// the engine's /otel endpoint.
//
// A Conn is that connection: it reconnects with backoff and holds a bounded
// number of frames while the engine is unreachable. A Pipeline batches
// spans and log records into frames on one goroutine; the hot path only
// puts them on bounded queues and never blocks. A MetricExporter turns the
// OpenTelemetry metric SDK's collections into frames. Anything that does not
// fit is dropped and counted: telemetry is lost at worst, and nothing here
// ever waits on the network on behalf of the caller.
//
// It is an implementation package of the iii SDK (github.com/iii-go/iii),
// importable for the SDK's own use: it follows the SDK's version (iii.Version)
// and its API may change in any release. Programs use the root package iii,
// which documents every type they need.
package otelws

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/iii-go/iii/connection"
)

// Defaults of Config.
const (
	DefaultDialTimeout      = 10 * time.Second
	DefaultWriteTimeout     = 10 * time.Second
	DefaultMaxPendingFrames = 1000 // as the Node SDK's MAX_PENDING_MESSAGES
	DefaultMaxPendingBytes  = 16 << 20
	// stableAfter is how long a connection must have lived for the next
	// reconnect to start again from the shortest delay. An endpoint that
	// accepts and then closes at once (a refusal by the engine's auth gate)
	// thus still backs off.
	stableAfter = 10 * time.Second
)

// ErrClosed is returned by Flush after Close.
var ErrClosed = errors.New("otelws: connection closed")

// ErrUnavailable is returned by Flush when frames remain queued and the
// connection is not up (it is waiting to retry) and the caller asked not to
// wait for a reconnect.
var ErrUnavailable = errors.New("otelws: the telemetry endpoint is unavailable")

// Config configures a Conn.
type Config struct {
	// URL is the telemetry endpoint, e.g. ws://127.0.0.1:49134/otel (see
	// EndpointURL).
	URL string
	// Header is sent with the handshake (the worker's, for the engine's
	// auth function).
	Header http.Header
	// TLSConfig is used for wss:// URLs.
	TLSConfig *tls.Config
	// DialTimeout bounds each connection attempt; default 10 s.
	DialTimeout time.Duration
	// WriteTimeout bounds each write; a peer that does not take a frame for
	// this long is dead. Default 10 s.
	WriteTimeout time.Duration
	// Backoff is the reconnect schedule; MaxRetries is ignored (telemetry
	// retries for as long as the Conn is open). Zero means
	// connection.DefaultBackoff.
	Backoff connection.Backoff
	// MaxPendingFrames and MaxPendingBytes bound the frames waiting to be
	// written; beyond them the oldest frames are dropped. Defaults 1000 and
	// 16 MiB.
	MaxPendingFrames int
	MaxPendingBytes  int
	// PingInterval is how often the Conn pings the endpoint; default
	// connection.DefaultPingInterval (20 s), and at most IdleTimeout/2.
	PingInterval time.Duration
	// IdleTimeout bounds how long a dead or half-open endpoint goes
	// unnoticed: the Conn drops the socket, and reconnects, once nothing (a
	// pong, a frame) has arrived for IdleTimeout. The engine answers
	// pings on /otel, so a healthy idle socket stays up. Default
	// connection.DefaultIdleTimeout (60 s).
	IdleTimeout time.Duration
	// Log receives connection diagnostics; nil discards them.
	Log *slog.Logger
}

// ErrIdleTimeout is why a socket is dropped when nothing arrived on it
// for Config.IdleTimeout: the endpoint is dead or the path to it half-open.
var ErrIdleTimeout = errors.New("otelws: nothing from the telemetry endpoint within the idle timeout")

// EndpointURL returns the telemetry endpoint of an engine worker URL: the
// same address with "/otel" appended to its path (unless it ends so
// already), as the Node SDK computes it.
func EndpointURL(workerURL string) (string, error) {
	u, err := url.Parse(workerURL)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its text quotes the whole URL, credentials and all
		}
		return "", fmt.Errorf("otelws: %q: %w", connection.RedactURL(workerURL), err)
	}
	if u.Scheme != "ws" && u.Scheme != "wss" {
		return "", fmt.Errorf("otelws: %q: scheme must be ws or wss", connection.RedactURL(workerURL))
	}
	p := strings.TrimRight(u.EscapedPath(), "/")
	if !strings.HasSuffix(p, "/otel") {
		p += "/otel"
	}
	if u.Path, err = url.PathUnescape(p); err != nil {
		return "", err
	}
	u.RawPath = p
	return u.String(), nil
}

// Conn is a telemetry connection. Send never blocks; frames are written in
// order by one goroutine, which also dials and redials. Its methods are safe
// for concurrent use.
type Conn struct {
	cfg Config
	log *slog.Logger

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	done   chan struct{} // closed when the run goroutine has exited

	mu       sync.Mutex
	queue    [][]byte // frames waiting, oldest first
	head     int
	bytes    int
	accepted uint64 // frames accepted by Send, ever
	finished uint64 // frames written or dropped, ever
	up       bool   // a socket is open
	dialing  bool   // an attempt is in progress (not waiting out a backoff)
	closed   bool
	changed  chan struct{} // closed and replaced when finished, up or dialing change
	wake     chan struct{}

	sent       atomic.Uint64
	dropped    atomic.Uint64
	reconnects atomic.Uint64
}

// Dial starts a Conn; it connects in the background.
func Dial(cfg Config) *Conn {
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.Backoff.Initial <= 0 {
		cfg.Backoff = connection.DefaultBackoff
	}
	if cfg.MaxPendingFrames <= 0 {
		cfg.MaxPendingFrames = DefaultMaxPendingFrames
	}
	if cfg.MaxPendingBytes <= 0 {
		cfg.MaxPendingBytes = DefaultMaxPendingBytes
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = connection.DefaultIdleTimeout
	}
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = connection.DefaultPingInterval
	}
	cfg.PingInterval = min(cfg.PingInterval, max(cfg.IdleTimeout/2, time.Millisecond))
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Conn{cfg: cfg, log: log, done: make(chan struct{}), changed: make(chan struct{}),
		wake: make(chan struct{}, 1), dialing: true}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	go c.run()
	return c
}

// ConnStats are a Conn's counters.
type ConnStats struct {
	Sent uint64 // frames written
	// Dropped counts the frames queued and then discarded (the queue was
	// full, their write failed, or Close left them) and the frames Send
	// refused. A Pipeline's refused frames are not counted here but as
	// dropped spans or log records (PipelineStats): a lost item is
	// counted once.
	Dropped    uint64
	Queued     int    // frames waiting now
	QueuedSize int    // their size in bytes
	Reconnects uint64 // connections opened after the first
	Connected  bool   // a socket is open
}

// Stats returns the Conn's counters.
func (c *Conn) Stats() ConnStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return ConnStats{Sent: c.sent.Load(), Dropped: c.dropped.Load(), Queued: len(c.queue) - c.head,
		QueuedSize: c.bytes, Reconnects: c.reconnects.Load(), Connected: c.up}
}

// Send queues a frame (see wire.AppendTelemetry) for writing and returns at
// once. When the queue is over its bounds, the oldest frames are dropped to
// make room; a frame larger than the byte bound by itself is dropped, as is
// every frame once the Conn is closed. It reports whether the frame was
// queued. The Conn owns frame from then on. Every frame it is given ends
// up counted once in ConnStats, Sent or Dropped.
func (c *Conn) Send(frame []byte) bool {
	if c.enqueue(frame) {
		return true
	}
	c.dropped.Add(1)
	return false
}

// enqueue is Send without counting a refused frame: the Pipeline counts the
// spans or log records of its refused frames instead, so that nothing lost
// is counted twice (see ConnStats.Dropped).
func (c *Conn) enqueue(frame []byte) bool {
	c.mu.Lock()
	if c.closed || len(frame) > c.cfg.MaxPendingBytes {
		c.mu.Unlock()
		return false
	}
	c.accepted++
	for len(c.queue)-c.head >= c.cfg.MaxPendingFrames || c.bytes+len(frame) > c.cfg.MaxPendingBytes {
		c.dropFrontLocked()
	}
	if c.head > 0 && c.head == len(c.queue) {
		c.queue, c.head = c.queue[:0], 0
	}
	c.queue = append(c.queue, frame)
	c.bytes += len(frame)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return true
}

func (c *Conn) dropFrontLocked() {
	c.bytes -= len(c.queue[c.head])
	c.queue[c.head] = nil
	c.head++
	c.finished++
	c.dropped.Add(1)
	c.notifyLocked()
}

// take removes and returns every queued frame.
func (c *Conn) take() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.head == len(c.queue) {
		return nil
	}
	out := make([][]byte, len(c.queue)-c.head)
	copy(out, c.queue[c.head:])
	clear(c.queue)
	c.queue, c.head, c.bytes = c.queue[:0], 0, 0
	if cap(c.queue) > 4*c.cfg.MaxPendingFrames/3+16 {
		c.queue = nil
	}
	return out
}

// requeue puts frames taken but not written back at the front of the queue.
func (c *Conn) requeue(frames [][]byte) {
	if len(frames) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	q := make([][]byte, 0, len(frames)+len(c.queue)-c.head)
	q = append(append(q, frames...), c.queue[c.head:]...)
	c.queue, c.head = q, 0
	for _, f := range frames {
		c.bytes += len(f)
	}
	for len(c.queue)-c.head > c.cfg.MaxPendingFrames || c.bytes > c.cfg.MaxPendingBytes {
		c.dropFrontLocked()
	}
}

// finish records n frames as written (ok) or lost.
func (c *Conn) finish(n int, ok bool) {
	if n == 0 {
		return
	}
	if ok {
		c.sent.Add(uint64(n))
	} else {
		c.dropped.Add(uint64(n))
	}
	c.mu.Lock()
	c.finished += uint64(n)
	c.notifyLocked()
	c.mu.Unlock()
}

func (c *Conn) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *Conn) setState(up, dialing bool) {
	c.mu.Lock()
	c.up, c.dialing = up, dialing
	c.notifyLocked()
	c.mu.Unlock()
}

// Flush waits until every frame accepted before the call has been written or
// dropped, or ctx ends. If waitReconnect is false it gives up with
// ErrUnavailable as soon as frames remain and the connection is down and
// waiting to retry (a dial in progress is still waited for).
func (c *Conn) Flush(ctx context.Context, waitReconnect bool) error {
	c.mu.Lock()
	target := c.accepted
	c.mu.Unlock()
	for {
		c.mu.Lock()
		finished, up, dialing, closed, ch := c.finished, c.up, c.dialing, c.closed, c.changed
		c.mu.Unlock()
		switch {
		case finished >= target:
			return nil
		case closed:
			return ErrClosed
		case !waitReconnect && !up && !dialing:
			return ErrUnavailable
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Close stops the Conn: it first waits, within ctx, for the queued frames
// to be written if a socket is open or being opened (never for a
// reconnect), then closes the socket with a Close frame and drops what is
// left. It returns once the Conn's goroutines have exited.
func (c *Conn) Close(ctx context.Context) {
	_ = c.Flush(ctx, false)
	c.mu.Lock()
	c.closed = true
	c.notifyLocked()
	c.mu.Unlock()
	c.cancel()
	<-c.done
	c.mu.Lock()
	for c.head < len(c.queue) {
		c.dropFrontLocked()
	}
	c.mu.Unlock()
}

// run dials, writes, and redials with backoff until Close.
func (c *Conn) run() {
	defer close(c.done)
	attempt := 0
	opened := false
	for {
		c.setState(false, true)
		ws, nc, err := c.dial()
		if err != nil {
			if c.ctx.Err() != nil {
				return
			}
			c.log.Debug("iii: cannot connect the telemetry endpoint", "url", connection.RedactURL(c.cfg.URL), "err", err)
		} else {
			if opened {
				c.reconnects.Add(1)
			}
			opened = true
			c.setState(true, false)
			start := time.Now()
			err = c.serve(ws, nc)
			if c.ctx.Err() != nil {
				return
			}
			c.log.Debug("iii: lost the telemetry connection; reconnecting", "url", connection.RedactURL(c.cfg.URL), "err", err)
			if time.Since(start) >= stableAfter {
				attempt = 0
			}
		}
		c.setState(false, false)
		t := time.NewTimer(c.cfg.Backoff.Delay(attempt))
		attempt++
		select {
		case <-t.C:
		case <-c.ctx.Done():
			t.Stop()
			return
		}
	}
}

// dial opens a socket to the endpoint; nc is the network connection under
// it, whose writes serve can cut short.
func (c *Conn) dial() (ws *websocket.Conn, nc *cuttableConn, err error) {
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.DialTimeout)
	defer cancel()
	d := websocket.Dialer{
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := (&net.Dialer{KeepAlive: 30 * time.Second}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			nc = &cuttableConn{Conn: conn}
			return nc, nil
		},
		TLSClientConfig:  c.cfg.TLSConfig,
		HandshakeTimeout: c.cfg.DialTimeout,
		WriteBufferSize:  64 << 10,
	}
	ws, resp, err := d.DialContext(ctx, c.cfg.URL, c.cfg.Header)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		if resp != nil {
			return nil, nil, fmt.Errorf("dial %s: %w (HTTP %s)", connection.RedactURL(c.cfg.URL), err, resp.Status)
		}
		return nil, nil, fmt.Errorf("dial %s: %w", connection.RedactURL(c.cfg.URL), err)
	}
	return ws, nc, nil
}

// cuttableConn is the network connection under a socket, whose writes the
// Conn's Close can cut short. Setting its write deadline once from outside
// is not enough: gorilla/websocket sets the deadline again before every
// frame it writes (every 64 KiB of a large message), which undid the cut
// when it came between two of them, and the next write then waited for
// the whole write timeout on a peer that had stopped reading.
type cuttableConn struct {
	net.Conn
	mu  sync.Mutex
	cut bool // every write deadline is in the past
}

// past is a write deadline that has passed.
var past = time.Unix(1, 0)

// SetWriteDeadline sets the write deadline, or one in the past while
// writes are cut.
func (c *cuttableConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cut {
		t = past
	}
	return c.Conn.SetWriteDeadline(t)
}

// SetDeadline sets the read deadline, and the write deadline as
// SetWriteDeadline does.
func (c *cuttableConn) SetDeadline(t time.Time) error {
	if err := c.Conn.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

// cutWrites makes the write in progress, if any, and every later one fail
// at once (cut), or lets writes wait for their deadlines again.
func (c *cuttableConn) cutWrites(cut bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cut = cut
	if cut {
		_ = c.Conn.SetWriteDeadline(past)
	}
}

// serve writes queued frames on ws until it fails or the Conn closes. A
// reader goroutine answers control frames and notices the peer's close;
// the writer pings every PingInterval and gives the socket up once nothing
// has arrived for IdleTimeout, and a write blocked for that long fails.
func (c *Conn) serve(ws *websocket.Conn, nc *cuttableConn) error {
	dead := make(chan struct{})
	var readErr error
	var lastRead atomic.Int64 // UnixNano of the last frame, ping or pong
	touch := func() { lastRead.Store(time.Now().UnixNano()) }
	touch()
	ws.SetPongHandler(func(string) error { touch(); return nil })
	ws.SetPingHandler(func(data string) error {
		touch()
		err := ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
		if err != nil && !errors.Is(err, websocket.ErrCloseSent) {
			return err
		}
		return nil
	})
	go func() {
		defer close(dead)
		for {
			_, r, err := ws.NextReader()
			if err != nil {
				readErr = err
				return
			}
			touch()
			// The engine sends nothing on /otel but pongs and Close; the
			// engine double's auth gate sends an error frame first.
			if _, err := io.Copy(io.Discard, r); err != nil {
				readErr = err
				return
			}
		}
	}()
	// Once the Conn closes (Close has flushed what it could in its own
	// time), a write still blocked on a peer that does not read is cut
	// short: Close must not wait out the write timeout.
	stop := context.AfterFunc(c.ctx, func() { nc.cutWrites(true) })
	defer func() {
		stop()
		_ = ws.Close()
		<-dead
	}()
	ping := time.NewTicker(c.cfg.PingInterval)
	defer ping.Stop()
	writeTimeout := min(c.cfg.WriteTimeout, c.cfg.IdleTimeout)
	for {
		frames := c.take()
		for i, f := range frames {
			_ = ws.SetWriteDeadline(time.Now().Add(writeTimeout))
			if c.ctx.Err() != nil { // closed (checked after the set: see stop)
				_ = ws.SetWriteDeadline(time.Now())
			}
			if err := ws.WriteMessage(websocket.BinaryMessage, f); err != nil {
				c.finish(i, true)
				c.finish(1, false) // it may have gone out in part
				c.requeue(frames[i+1:])
				return err
			}
		}
		c.finish(len(frames), true)
		for _, f := range frames {
			putFrame(f)
		}
		select {
		case <-c.wake:
		case <-ping.C:
			if time.Since(time.Unix(0, lastRead.Load())) >= c.cfg.IdleTimeout {
				c.log.Warn("iii: nothing from the telemetry endpoint within the idle timeout; reconnecting",
					"url", connection.RedactURL(c.cfg.URL), "idle", c.cfg.IdleTimeout)
				return ErrIdleTimeout
			}
			if err := ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeTimeout)); err != nil {
				return err
			}
		case <-dead:
			return readErr
		case <-c.ctx.Done():
			// No write is under way: the Close frame gets its second.
			nc.cutWrites(false)
			_ = ws.WriteControl(websocket.CloseMessage,
				websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
			return c.ctx.Err()
		}
	}
}

// framePool holds written frames, for reuse as the buffers of new ones
// (see getFrame): a batch of spans is a frame of up to a few hundred KiB.
var framePool sync.Pool // of *[]byte

// getFrame returns an empty buffer of at least size bytes, reused if a
// written frame that large is at hand.
func getFrame(size int) []byte {
	if p, _ := framePool.Get().(*[]byte); p != nil && cap(*p) >= size {
		return (*p)[:0]
	}
	return make([]byte, 0, size)
}

// putFrame keeps a written frame for reuse, unless it is small or huge.
func putFrame(f []byte) {
	if c := cap(f); c >= 4<<10 && c <= 4<<20 {
		framePool.Put(&f)
	}
}
