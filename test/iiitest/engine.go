package iiitest

import (
	"context"
	"errors"
	"io"
	"log"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/iii-go/iii/connection/wire"
	"github.com/iii-go/iii/internal/bufconn"
)

// Defaults of the engine double, as in engine v0.22.1.
const (
	// DefaultMaxFrameSize is the largest incoming WebSocket frame (axum's
	// default).
	DefaultMaxFrameSize = 16 << 20
	// DefaultMaxMessageSize is the largest incoming message, its fragments
	// put together (axum's default).
	DefaultMaxMessageSize = 64 << 20
	// DefaultHandshakeTimeout bounds the arrival of the HTTP upgrade request.
	DefaultHandshakeTimeout = 10 * time.Second
	// DefaultFunctionsPollInterval is how often engine::functions-available
	// checks the function table for changes.
	DefaultFunctionsPollInterval = 5 * time.Second
	// DefaultChannelTTL is how long a channel with an unconnected end lives.
	DefaultChannelTTL = 5 * time.Minute
	// DefaultTriggerAckTimeout is how long engine::register_trigger waits for
	// the provider's triggerregistrationresult.
	DefaultTriggerAckTimeout = 10 * time.Second
	// DefaultTelemetryLimit is how many spans, log records and metrics
	// (each) are kept.
	DefaultTelemetryLimit = 100_000
	// DefaultJournalLimit is how many control frames are kept per connection
	// for Received.
	DefaultJournalLimit = 10_000
)

// ErrClosed is returned by Resume and Restart after Close.
var ErrClosed = errors.New("iiitest: engine closed")

// Option configures an Engine.
type Option func(*config)

type config struct {
	maxFrameSize     int64
	maxMessageSize   int64
	logger           *slog.Logger
	handshakeTimeout time.Duration
	auth             func(*http.Request) error
	fnPoll           time.Duration
	channelTTL       time.Duration
	ackTimeout       time.Duration
	telemetryLimit   int
	journalLimit     int
	outFrames        int
	outBytes         int64
	outWait          time.Duration
	queue            *QueueConfig
	unordered        bool
	clock            Clock         // nil: the real clock
	namespaces       bool          // WithNamespaces
	nsGrace          time.Duration // WithNamespaceGrace
	httpAddr         string
	httpTimeout      time.Duration
	httpConcurrency  int
}

// UnorderedEnv is the environment variable that, set to 1, makes every
// engine double start as if WithUnorderedDispatch were given: run a test
// suite with it to shake out ordering assumptions.
const UnorderedEnv = "IIITEST_UNORDERED"

// WithUnorderedDispatch makes the double deliver like the engine does,
// with no ordering: the engine handles every invokefunction (sync, void,
// enqueue, builtin calls), every relayed result and every trigger fire
// (engine::workers-available events included) in a task of its own, so
// two calls from one caller may reach the handler in either order, results
// may come back in any order, and events may arrive out of order. With
// this option the double dispatches each of these in its own goroutine
// after a random short delay, so that code relying on an order it was
// never promised fails. Registrations and other control frames stay in
// order, as on the engine. Without it (the default unless the
// IIITEST_UNORDERED environment variable is 1) the double delivers in
// FIFO order, which is stricter than the engine.
func WithUnorderedDispatch() Option { return func(c *config) { c.unordered = true } }

// dispatch runs f in a goroutine of its own after a random short delay
// when dispatch is unordered, and inline otherwise. It must not be called
// with e.mu held.
func (e *Engine) dispatch(f func()) {
	if !e.cfg.unordered || !e.enter() {
		f()
		return
	}
	go func() {
		defer e.wg.Done()
		if d := rand.IntN(300); d < 100 {
			runtime.Gosched()
		} else {
			time.Sleep(time.Duration(d) * time.Microsecond)
		}
		f()
	}()
}

// WithMaxFrameSize sets the largest incoming WebSocket frame, in bytes
// (default 16 MiB, like the engine). A client announcing a bigger frame
// loses its connection at once, without a Close frame (the engine's
// WebSocket library fails the read and the engine drops the socket), and
// nothing else is affected. The same happens to a text message that is
// not valid UTF-8.
func WithMaxFrameSize(n int64) Option { return func(c *config) { c.maxFrameSize = n } }

// WithMaxMessageSize sets the largest incoming WebSocket message, its
// fragments put together, in bytes (default 64 MiB, like the engine). A
// bigger message drops the connection like an oversized frame.
func WithMaxMessageSize(n int64) Option { return func(c *config) { c.maxMessageSize = n } }

// WithLogger sets the logger for the double's diagnostics (default: discard).
// Dropped frames are logged at Debug, slow consumers at Warn.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithHandshakeTimeout sets how long a new TCP connection may take to
// deliver its HTTP upgrade request (default 10 s).
func WithHandshakeTimeout(d time.Duration) Option {
	return func(c *config) { c.handshakeTimeout = d }
}

// WithAuth installs an authentication gate for "/" and "/otel", standing in
// for the engine's RBAC auth function. When fn returns an error the
// connection receives
//
//	{"type":"error","error":{"code":"AUTH_ERROR","message":<err.Error()>}}
//
// and a Close frame, and never a workerregistered.
func WithAuth(fn func(r *http.Request) error) Option { return func(c *config) { c.auth = fn } }

// WithFunctionsPollInterval sets how often the engine::functions-available
// trigger type looks for function table changes (default 5 s).
func WithFunctionsPollInterval(d time.Duration) Option {
	return func(c *config) { c.fnPoll = d }
}

// WithChannelTTL sets how long a channel whose ends were not both
// connected survives (default 5 min). The sweep runs every TTL/5, at most
// every 60 s as in the engine.
func WithChannelTTL(d time.Duration) Option { return func(c *config) { c.channelTTL = d } }

// WithTriggerAckTimeout sets how long engine::register_trigger waits for a
// worker provider's triggerregistrationresult before accepting the binding
// (default 10 s).
func WithTriggerAckTimeout(d time.Duration) Option {
	return func(c *config) { c.ackTimeout = d }
}

// WithTelemetryLimit sets how many spans, log records and metrics are
// kept (each; the oldest are dropped first). Default 100 000.
func WithTelemetryLimit(n int) Option { return func(c *config) { c.telemetryLimit = n } }

// WithJournalLimit sets how many control frames per connection are kept
// for [Engine.Received] (later ones are not recorded). Default 10 000.
func WithJournalLimit(n int) Option { return func(c *config) { c.journalLimit = n } }

// WithOutboundLimits bounds the queue of frames waiting to be written to
// one connection. When it holds frames or more, a connection that routes a
// frame to it (a call, a result, a trigger registration) waits until the
// writer drains it, for at most wait without progress; the queue then
// grows past frames, up to maxBytes. Past maxBytes the connection is
// closed as a slow consumer (a stalled connection instead loses the
// frame). Frames a connection causes for itself (pong, builtin results)
// never wait. Defaults: 4096 frames, 128 MiB, 1 s.
//
// The engine instead queues 64 messages per connection and parks the
// sending task, which never blocks its read loop but lets memory grow
// without bound; the wait here bounds memory and never blocks a read loop
// for longer than wait at a stuck peer.
func WithOutboundLimits(frames int, maxBytes int64, wait time.Duration) Option {
	return func(c *config) {
		c.outFrames, c.outBytes, c.outWait = frames, maxBytes, wait
	}
}

// Engine is an in-process double of the iii engine v0.22.1: it serves the
// worker protocol on "/", telemetry on "/otel" and data channels on
// "/ws/channels/{id}" on a loopback port, and the functions bound with
// "http" triggers on a second one ([Engine.HTTPURL]). Its methods are safe
// for concurrent use.
type Engine struct {
	// URL is the worker URL, "ws://127.0.0.1:PORT".
	URL string
	// Addr is the listening address, "127.0.0.1:PORT".
	Addr string

	cfg config
	log *slog.Logger
	up  websocket.Upgrader

	wg sync.WaitGroup // every goroutine the engine starts

	mu      sync.Mutex // guards everything below and the state
	st      *state
	socks   map[*sock]struct{}
	ln      net.Listener
	srv     *http.Server
	down    bool // not listening (Stop, Restart, Close)
	closed  bool // Close was called
	changed chan struct{}
	stopBg  chan struct{} // stops the background goroutine of this listen cycle

	counts [32]atomic.Int64
	tel    telemetry

	api apiServer // the HTTP port (the engine's iii-http worker)
}

// NewEngine starts an engine double on 127.0.0.1 with a free port, closes
// it when the test ends, and fails the test if it cannot start.
func NewEngine(t testing.TB, opts ...Option) *Engine {
	t.Helper()
	e, err := Start("127.0.0.1:0", opts...)
	if err != nil {
		t.Fatalf("iiitest: %v", err)
	}
	t.Cleanup(e.Close)
	return e
}

// Start starts an engine double listening on addr (e.g. "127.0.0.1:0" or
// "127.0.0.1:49134"). Close it when done.
func Start(addr string, opts ...Option) (*Engine, error) {
	cfg := config{
		maxFrameSize:     DefaultMaxFrameSize,
		maxMessageSize:   DefaultMaxMessageSize,
		handshakeTimeout: DefaultHandshakeTimeout,
		fnPoll:           DefaultFunctionsPollInterval,
		channelTTL:       DefaultChannelTTL,
		ackTimeout:       DefaultTriggerAckTimeout,
		telemetryLimit:   DefaultTelemetryLimit,
		journalLimit:     DefaultJournalLimit,
		outFrames:        DefaultOutboundFrames,
		outBytes:         DefaultOutboundBytes,
		outWait:          DefaultOutboundWait,
		unordered:        os.Getenv(UnorderedEnv) == "1",
		httpAddr:         "127.0.0.1:0",
		httpTimeout:      DefaultHTTPTimeout,
		httpConcurrency:  DefaultHTTPConcurrencyLimit,
	}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.logger == nil {
		cfg.logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	e := &Engine{
		cfg:     cfg,
		log:     cfg.logger,
		socks:   make(map[*sock]struct{}),
		changed: make(chan struct{}),
		down:    true,
	}
	e.tel.limit = cfg.telemetryLimit
	e.up = websocket.Upgrader{
		HandshakeTimeout: cfg.handshakeTimeout,
		ReadBufferSize:   32 << 10,
		WriteBufferPool:  bufconn.NoBufferPool{}, // data frames: sock.write
		CheckOrigin:      loopbackOrigin,
	}
	e.st = newState(e)
	if err := e.listen(addr); err != nil {
		return nil, err
	}
	e.Addr = e.ln.Addr().String()
	e.URL = "ws://" + e.Addr
	return e, nil
}

// listen starts serving on addr. Called with e.mu not held.
func (e *Engine) listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	apiLn, err := e.listenAPI()
	if err != nil {
		ln.Close()
		return err
	}
	srv := &http.Server{
		Handler:           http.HandlerFunc(e.serveHTTP),
		ReadHeaderTimeout: e.cfg.handshakeTimeout,
		IdleTimeout:       e.cfg.handshakeTimeout,
		ErrorLog:          log.New(io.Discard, "", 0),
		// Count the server's connection goroutines too, so that Close
		// waits for plain HTTP connections (404s, rejected upgrades).
		ConnState: func(_ net.Conn, cs http.ConnState) {
			switch cs {
			case http.StateNew:
				e.wg.Add(1)
			case http.StateClosed, http.StateHijacked:
				e.wg.Done()
			}
		},
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		ln.Close()
		apiLn.Close()
		return ErrClosed
	}
	e.ln, e.srv, e.down = ln, srv, false
	e.serveAPILocked(apiLn)
	e.stopBg = make(chan struct{})
	stop := e.stopBg
	e.wg.Add(2)
	e.mu.Unlock()
	go func() {
		defer e.wg.Done()
		srv.Serve(listener{ln})
	}()
	go func() {
		defer e.wg.Done()
		e.background(stop)
	}()
	return nil
}

// shutdown stops listening, closes every connection, waits for every
// goroutine and wipes the state. It returns false if already down.
func (e *Engine) shutdown(final bool) bool {
	e.mu.Lock()
	if final {
		e.closed = true
	}
	if e.down {
		e.mu.Unlock()
		return false
	}
	e.down = true
	srv := e.srv
	close(e.stopBg)
	socks := make([]*sock, 0, len(e.socks))
	for s := range e.socks {
		socks = append(socks, s)
	}
	e.st.stopTimers()
	apiSrv := e.api.srv
	e.mu.Unlock()
	srv.Close()
	apiSrv.Close()
	for _, s := range socks {
		if s.otel {
			// The engine ends /otel connections with a Close frame
			// with no status code; "/" connections are just dropped.
			s.closeWith(nil)
			t := time.NewTimer(closeGrace)
			select {
			case <-s.writerDone:
			case <-t.C:
			}
			t.Stop()
		}
		s.kill()
	}
	e.wg.Wait()
	e.mu.Lock()
	e.st = newState(e)
	e.notifyLocked()
	e.mu.Unlock()
	return true
}

// Close stops the engine: it closes the listener and every connection
// (without Close frames, like an engine shutdown) and waits until all of
// its goroutines have exited. It is idempotent.
func (e *Engine) Close() {
	e.shutdown(true)
	e.wg.Wait()
}

// Stop simulates the engine going down: the listener and every connection
// are closed and all state (functions, trigger types, bindings, workers,
// channels, pending invocations) is wiped. [Engine.Resume] listens again.
func (e *Engine) Stop() { e.shutdown(false) }

// Resume listens again on the same address after [Engine.Stop]. It is a
// no-op while the engine is up.
func (e *Engine) Resume() error {
	e.mu.Lock()
	down, closed := e.down, e.closed
	e.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if !down {
		return nil
	}
	return e.listen(e.Addr)
}

// Restart simulates an engine restart: Stop, then Resume on the same
// address.
func (e *Engine) Restart() error {
	e.Stop()
	return e.Resume()
}

// enter registers a goroutine serving a connection; it fails once the
// engine is going down.
func (e *Engine) enter() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.down {
		return false
	}
	e.wg.Add(1)
	return true
}

func (e *Engine) addSock(s *sock) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.down {
		return false
	}
	e.socks[s] = struct{}{}
	return true
}

func (e *Engine) removeSock(s *sock) {
	e.mu.Lock()
	delete(e.socks, s)
	e.mu.Unlock()
}

// notifyLocked wakes the Wait* helpers. Called with e.mu held.
func (e *Engine) notifyLocked() {
	close(e.changed)
	e.changed = make(chan struct{})
}

// waitFor polls cond (called with e.mu held) until it is true, waking up on
// every state change.
func (e *Engine) waitFor(ctx context.Context, cond func() bool) error {
	for {
		e.mu.Lock()
		ok := cond()
		ch := e.changed
		e.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (e *Engine) serveHTTP(w http.ResponseWriter, r *http.Request) {
	switch p := r.URL.Path; {
	case p == "/":
		e.serveWorker(w, r)
	case p == "/otel":
		e.serveOtel(w, r)
	case strings.HasPrefix(p, "/ws/channels/"):
		e.serveChannel(w, r, strings.TrimPrefix(p, "/ws/channels/"))
	default:
		http.NotFound(w, r)
	}
}

// upgradeOtel is upgrade for an /otel connection.
func (e *Engine) upgradeOtel(w http.ResponseWriter, r *http.Request) *sock {
	return e.upgradeKind(w, r, true)
}

// upgrade upgrades the request and registers the socket. The caller must
// have called enter.
func (e *Engine) upgrade(w http.ResponseWriter, r *http.Request) *sock {
	return e.upgradeKind(w, r, false)
}

func (e *Engine) upgradeKind(w http.ResponseWriter, r *http.Request, otel bool) *sock {
	ws, err := e.up.Upgrade(w, r, nil)
	if err != nil {
		e.log.Debug("iiitest: upgrade failed", "err", err)
		return nil
	}
	nc, ok := ws.NetConn().(*netConn)
	if !ok {
		ws.Close()
		return nil
	}
	s := newSock(e, ws, nc)
	s.otel = otel
	if !e.addSock(s) {
		nc.Conn.Close()
		return nil
	}
	s.start()
	return s
}

// authenticate runs the auth gate; on failure it sends the error frame and
// a Close frame and returns false.
func (e *Engine) authenticate(s *sock, r *http.Request) bool {
	if e.cfg.auth == nil {
		return true
	}
	err := e.cfg.auth(r)
	if err == nil {
		return true
	}
	fb := getBuf()
	ef := wire.ErrorFrame{Error: wire.ErrorBody{Code: "AUTH_ERROR", Message: err.Error()}}
	fb.b = ef.AppendJSON(fb.b)
	s.send(fb, false)
	s.closeWith(nil)
	s.drain()
	return false
}

// drain reads and discards until the socket fails (the peer's Close
// answer, or the read deadline set after our Close frame).
func (s *sock) drain() {
	for {
		if _, _, err := s.ws.NextReader(); err != nil {
			return
		}
	}
}

// serveOtel serves a telemetry-only connection: it is never a worker and
// only binary telemetry frames have an effect.
func (e *Engine) serveOtel(w http.ResponseWriter, r *http.Request) {
	if !e.enter() {
		http.Error(w, "engine down", http.StatusServiceUnavailable)
		return
	}
	defer e.wg.Done()
	s := e.upgradeOtel(w, r)
	if s == nil {
		return
	}
	defer e.removeSock(s)
	defer s.finish()
	if !e.authenticate(s, r) {
		return
	}
	buf := make([]byte, 0, 4096)
	for {
		typ, b, err := s.readFrame(buf)
		if err != nil {
			return
		}
		buf = b
		if typ != websocket.BinaryMessage || s.stalled.Load() {
			continue
		}
		if k, payload := wire.SplitTelemetry(b); k != wire.TelemetryNone {
			buf = e.tel.ingest(e, k, payload, b) // b is the double's now
		} else {
			e.log.Debug("iiitest: unrecognised binary frame on /otel dropped")
		}
		if cap(buf) > 1<<20 {
			buf = make([]byte, 0, 4096)
		}
	}
}

// FrameCount returns how many frames of kind k workers have sent on "/".
// Frames that did not decode count as wire.KindInvalid.
func (e *Engine) FrameCount(k wire.Kind) int64 {
	if int(k) >= len(e.counts) {
		return 0
	}
	return e.counts[k].Load()
}

// loopbackOrigin accepts a handshake without an Origin header (workers and
// other non-browser clients send none) or from a page on a loopback host:
// a web page elsewhere cannot drive the double through the browser of
// whoever runs the tests.
func loopbackOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	if err != nil {
		return false
	}
	h := u.Hostname()
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
