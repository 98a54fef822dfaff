package iii

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"reflect"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/iii-go/iii/actors"
	"github.com/iii-go/iii/connection"
	"github.com/iii-go/iii/connection/wire"
	"github.com/iii-go/iii/internal/goid"
	"github.com/iii-go/iii/invocation"
	"github.com/iii-go/iii/registry"
)

// III is a worker connected to an iii engine. Create it with
// RegisterWorker; all its methods are safe for concurrent use.
type III struct {
	address    string // the engine's worker URL
	opts       InitOptions
	log        *slog.Logger
	timeout    time.Duration
	maxMessage int // bytes of payload+metadata or result per frame
	meta       WorkerMetadata
	ns         string // the worker's namespace; "" is the default one

	sys     *actors.System
	conn    *connection.Conn
	reg     *registry.Registry
	pending *invocation.Pending
	inbound *invocation.Inbound

	tel      *telemetry      // nil when telemetry is off
	ctx      context.Context // parent of handler contexts; cancelled by Shutdown
	cancel   context.CancelCauseFunc
	initErr  error
	draining atomic.Bool
	drainers atomic.Int64 // this worker's handlers waiting in Drain
	shut     atomic.Bool
	// providers holds the goroutines that run this worker's trigger
	// providers (and inbound knows its handlers'): Shutdown called on one
	// does not wait for it.
	providers goid.Set
	// shutdownTimeout bounds Shutdown (ShutdownTimeout; tests shorten it).
	shutdownTimeout time.Duration
	internal        func() error // the *InternalError of a failed actor system
	avail           availability // WaitForFunction
}

// RegisterWorker creates a worker and connects it to the engine at address
// in the background; it returns at once. Registrations and calls made
// before the connection is up are sent once it is. An empty address means
// $III_URL, or DefaultEngineURL.
func RegisterWorker(address string, opts InitOptions) *III {
	if address == "" {
		address = os.Getenv("III_URL")
	}
	if address == "" {
		address = DefaultEngineURL
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(defaultLogHandler{})
	}
	w := &III{address: address, opts: opts, log: log, timeout: opts.InvocationTimeout, meta: metadataWithDefaults(opts.Metadata),
		maxMessage: opts.MaxMessageSize, shutdownTimeout: ShutdownTimeout}
	if w.timeout <= 0 {
		w.timeout = DefaultInvocationTimeout
	}
	if w.maxMessage <= 0 {
		w.maxMessage = DefaultMaxMessageSize
	}
	w.ctx, w.cancel = context.WithCancelCause(context.Background())
	w.pending = invocation.NewPending()
	w.sys = actors.NewSystem(log)
	w.internal = sync.OnceValue(func() error {
		var f *actors.Failure
		errors.As(w.sys.Err(), &f)
		return &InternalError{Actor: f.Actor, Cause: f.Cause, Failures: f.Failures, NoRestart: f.NoRestart}
	})
	if err := validateURL(address); err != nil {
		w.fail(err)
		return w
	}
	var err error
	if w.ns, err = workerNamespace(opts.Namespace); err != nil {
		w.fail(err)
		return w
	}
	if w.reg, err = registry.New(w.ctx, w.sys, log, &w.providers); err == nil {
		cfg := invocation.Config{Exec: w.execute, Refuse: w.refuse, Fail: w.failed, Log: log,
			Limit: opts.MaxConcurrentInvocations, MaxBacklog: opts.MaxQueuedInvocations, MaxBacklogBytes: opts.MaxQueuedInvocationBytes,
			IdleTimeout: opts.InvocationIdleTimeout, KeepIdle: opts.KeepIdleInvocations}
		if cfg.Limit <= 0 {
			cfg.Limit = DefaultMaxConcurrentInvocations
		}
		if cfg.MaxBacklog <= 0 {
			cfg.MaxBacklog = DefaultMaxQueuedInvocations
		}
		if cfg.MaxBacklogBytes <= 0 {
			cfg.MaxBacklogBytes = DefaultMaxQueuedInvocationBytes
		}
		w.inbound, err = invocation.NewInbound(w.sys, cfg)
	}
	if err == nil {
		w.tel = newTelemetry(w, opts.Telemetry)
		meta := w.metadataFrame()
		onState := opts.OnStateChange
		if w.tel != nil {
			onState = func(s ConnectionState) {
				w.tel.connectionState(s)
				if opts.OnStateChange != nil {
					opts.OnStateChange(s)
				}
			}
		}
		w.conn, err = connection.New(w.sys, connection.Config{
			URL: address, Header: opts.Headers, TLSConfig: opts.TLSConfig,
			DialTimeout: opts.DialTimeout, PingInterval: opts.PingInterval, IdleTimeout: opts.IdleTimeout,
			Backoff:   opts.Reconnect.backoff(),
			ReadLimit: int64(w.maxMessage) + 1<<20, // the frame around the largest payload
			Metadata:  func() wire.Message { return meta },
			OnState:   onState,
			Log:       log,
			Router:    router{w},
			// Handler contexts derive from their socket's context.
			BaseContext: w.ctx,
		})
	}
	if err != nil {
		w.fail(err)
		return w
	}
	if w.tel != nil {
		w.tel.engineConn.Store(w.conn)
	}
	w.sys.OnFailure(func(*actors.Failure) { w.failInternal() })
	return w
}

// failInternal fails the worker as a whole after its actor system failed:
// handler contexts end, every pending and later call fails with the
// *InternalError, and the connection ends in state Failed (OnStateChange is
// told). Shutdown still releases what is left, at once.
func (w *III) failInternal() {
	if w.shut.Load() {
		return // shutting down anyway
	}
	err := w.internal()
	w.log.Error("iii: the worker failed; shut it down and start a new one", "err", err)
	w.cancel(err)
	w.pending.FailAll(err, true)
	w.inbound.Close()
	w.conn.Fail(err)
}

// err returns why the worker cannot take calls: it could not start, it was
// shut down (ErrShutdown), or it failed (an *InternalError); nil if it can.
func (w *III) err() error {
	if w.initErr != nil {
		return w.initErr
	}
	if w.shut.Load() {
		return ErrShutdown
	}
	select {
	case <-w.sys.Failed():
		return w.internal()
	default:
	}
	return nil
}

// reqErr maps the error of a request to an internal actor: one that ended
// because the worker shut down or failed gets that reason instead.
func (w *III) reqErr(err error) error {
	if err == nil {
		return nil
	}
	if e := w.err(); e != nil && (errors.Is(err, context.Canceled) || errors.Is(err, actors.ErrStopped) || errors.Is(err, actors.ErrFailed)) {
		return e
	}
	return err
}

// fail leaves the worker unusable: every call returns err.
func (w *III) fail(err error) {
	w.initErr = err
	w.pending.FailAll(err, true)
	if w.tel != nil { // Shutdown does nothing for a failed worker
		w.tel.close()
	}
	w.sys.Stop(time.Second)
}

func validateURL(address string) error {
	shown := connection.RedactURL(address) // the URL may carry credentials
	u, err := url.Parse(address)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its text quotes the whole URL
		}
		return fmt.Errorf("iii: engine address %q: %w", shown, err)
	}
	if u.Scheme != "ws" && u.Scheme != "wss" {
		return fmt.Errorf("iii: engine address %q: scheme must be ws or wss", shown)
	}
	if u.Host == "" {
		return fmt.Errorf("iii: engine address %q has no host", shown)
	}
	return nil
}

// metadataFrame builds the void engine::workers::register call sent after
// every connection's replay.
func (w *III) metadataFrame() wire.Message {
	data, _ := json.Marshal(struct {
		WorkerMetadata
		Namespace string `json:"namespace,omitempty"` // engine v0.23
	}{w.meta, w.ns})
	return &wire.InvokeFunction{FunctionID: "engine::workers::register", Data: data,
		Action: wire.TriggerAction{Kind: wire.ActionVoid}}
}

// WaitConnected blocks until the worker is connected to the engine, the
// connection failed for good, or ctx ends.
func (w *III) WaitConnected(ctx context.Context) error {
	if err := w.err(); err != nil {
		return err
	}
	err := w.conn.WaitConnected(ctx)
	if errors.Is(err, connection.ErrClosed) {
		return ErrShutdown
	}
	return err
}

// Address returns the engine URL the worker connects to: the address given
// to RegisterWorker, else $III_URL, else DefaultEngineURL. Credentials in
// it (user info, token-like query parameters) are redacted, as in the
// SDK's logs.
func (w *III) Address() string { return connection.RedactURL(w.address) }

// State returns the state of the connection to the engine.
func (w *III) State() ConnectionState {
	if w.initErr != nil {
		return Failed
	}
	return w.conn.State()
}

// WorkerID returns the id the engine gave this worker on its current (or
// last) connection, or "" before the first one.
func (w *III) WorkerID() string {
	if w.conn == nil {
		return ""
	}
	return w.conn.WorkerID()
}

// Stats is a snapshot of a worker's load.
type Stats struct {
	State        ConnectionState
	Running      int // handlers running
	Queued       int // invocations waiting for a free handler slot
	QueuedBytes  int // their payload and metadata bytes
	PendingCalls int // outbound calls waiting for their result
	// IdleHandlers counts the handler goroutines kept idle for the next
	// invocations (see InitOptions.InvocationIdleTimeout).
	IdleHandlers int
	// Refused counts the invocations refused with CodeWorkerOverloaded
	// since the worker started (see InitOptions.MaxQueuedInvocations).
	Refused uint64
}

// Stats returns a snapshot of the worker's load.
func (w *III) Stats() Stats {
	st := Stats{State: w.State(), PendingCalls: w.pending.Len()}
	if w.inbound != nil {
		st.Running, st.Queued, st.QueuedBytes = w.inbound.Counts()
		st.Refused = w.inbound.Refused()
		st.IdleHandlers = w.inbound.IdleActors()
	}
	return st
}

// ShutdownTimeout bounds Shutdown: it returns within this time whatever
// handlers, trigger providers and OnStateChange callbacks do, also when
// called from one of them. What has not stopped by then is abandoned: a
// handler that ignores its context keeps its goroutine until it returns.
// With telemetry on, the last telemetry flush runs alongside, bounded by
// TelemetryOptions.ShutdownTimeout.
const ShutdownTimeout = 2 * time.Second

// Shutdown stops the worker at once: handler contexts are cancelled, calls
// in flight fail with ErrShutdown, and the connection is closed. It waits
// for handlers, trigger providers and the OnStateChange callback to return
// at most ShutdownTimeout in total. Every call made afterwards returns an
// error matching ErrShutdown. It may be called from any callback; a second
// call returns at once.
//
// Called from one of this worker's own handlers or trigger providers, it
// does not wait for that caller, which cannot return before it does: it
// waits for the other handlers (at most ShutdownTimeout), and the rest of
// the stop (the actors' end, the last telemetry flush, with the calling
// handler's span) completes in the background once the caller returns.
func (w *III) Shutdown() { w.shutdown(time.Now().Add(w.shutdownTimeout), w.caller()) }

// callerKind says what of this worker's user code the calling goroutine
// runs, if any.
type callerKind int

const (
	otherCaller    callerKind = iota
	handlerCaller             // one of its handlers
	drainerCaller             // one of its handlers, in Drain (counted in drainers)
	providerCaller            // one of its trigger providers
)

func (w *III) caller() callerKind {
	switch {
	case w.inbound != nil && w.inbound.Runs():
		return handlerCaller
	case w.providers.Current():
		return providerCaller
	}
	return otherCaller
}

// shutdown stops the worker, waiting for what stops until deadline; self
// is what the calling goroutine runs of this worker's code, which it does
// not wait for.
func (w *III) shutdown(deadline time.Time, self callerKind) {
	if !w.shut.CompareAndSwap(false, true) {
		return
	}
	w.cancel(ErrShutdown)
	if w.initErr != nil {
		return
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	var telDone chan struct{}
	if w.tel != nil {
		telDone = make(chan struct{})
		go func() {
			defer close(telDone)
			// After the handlers cancelled above have ended their spans.
			w.tel.closeAfter(ctx, w.inbound.Idle)
		}()
	}
	w.inbound.Close()
	w.pending.FailAll(ErrShutdown, true)
	clean := w.conn.Close(ctx)
	if self == otherCaller {
		w.stopActors(ctx, cancel, deadline, clean, telDone)
		return
	}
	// The caller's own actor stops only once it returns: the actors'
	// stop goes on without it.
	switch self {
	case handlerCaller:
		w.drainers.Add(1)
		_ = w.idle(ctx, true) // the other handlers
		w.drainers.Add(-1)
	case drainerCaller:
		_ = w.idle(ctx, true)
	case providerCaller:
		_ = w.inbound.Idle(ctx)
	}
	go w.stopActors(ctx, cancel, deadline, clean, telDone)
}

// stopActors ends shutdown: it stops the actor system and waits for the
// goroutines of the handlers and trigger providers, and for the last
// telemetry flush, until deadline.
func (w *III) stopActors(ctx context.Context, cancel context.CancelFunc, deadline time.Time, clean bool, telDone chan struct{}) {
	defer cancel()
	w.sys.Stop(time.Until(deadline))
	// Handlers and trigger providers that honour their context are done
	// by now; one that ignores it keeps its goroutine until it returns.
	clean = waitCtx(ctx, w.inbound.Wait) && clean
	clean = waitCtx(ctx, w.reg.Wait) && clean
	if !clean {
		w.log.Warn("iii: shut down with work still running; abandoned it (a handler, trigger provider or state callback ignored its context)",
			"running", w.inbound.Active())
	}
	if telDone != nil {
		<-telDone
	}
}

// waitCtx runs wait, giving up when ctx ends; it reports whether wait returned.
func waitCtx(ctx context.Context, wait func()) bool {
	done := make(chan struct{})
	go func() {
		wait()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-ctx.Done():
		return false
	}
}

// Drain stops the worker gracefully: it unregisters its functions (so the
// engine routes no new invocations here), lets running and queued
// invocations finish, and then shuts down. If ctx ends first, it shuts down
// anyway and returns ctx's error; it returns by ctx's deadline, if any, and
// at most ShutdownTimeout after the invocations finished. Called from one
// of this worker's handlers (or with a handler's context), it does not wait
// for that handler, and the stop completes once it returns, as with
// Shutdown. On a worker shut down already it returns ErrShutdown at once.
func (w *III) Drain(ctx context.Context) error {
	if err := w.err(); err != nil {
		w.Shutdown()
		return err
	}
	w.draining.Store(true)
	for _, id := range w.reg.Functions(ctx) {
		_ = w.reg.RemoveFunction(ctx, id)
	}
	// A handler of this worker that drains does not wait for itself, nor
	// for the other handlers draining with it (each would wait for the
	// other). Its context marks it too: a handler may drain from a
	// goroutine it waits for.
	who := w.caller()
	if who == otherCaller && workerFrom(ctx) == w && invocationFrom(ctx) != nil {
		who = handlerCaller
	}
	self := who == handlerCaller
	if self {
		who = drainerCaller
		w.drainers.Add(1)
		defer w.drainers.Add(-1)
	}
	err := w.idle(ctx, self)
	deadline := time.Now().Add(w.shutdownTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	w.shutdown(deadline, who)
	return err
}

// idle waits until no invocation is running or queued but the handlers
// draining (when self, the caller is one of them), or ctx ends.
func (w *III) idle(ctx context.Context, self bool) error {
	if !self {
		return w.inbound.Idle(ctx)
	}
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	quiet := func() bool { return int64(w.inbound.Active()) <= w.drainers.Load() }
	for !quiet() {
		select {
		case <-ctx.Done():
			if quiet() { // another drainer's shutdown ended ctx: done anyway
				return nil
			}
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// FunctionRef is a registered function.
type FunctionRef struct {
	w   *III
	id  string
	rej rejection
}

// ID returns the function's id.
func (f *FunctionRef) ID() string { return f.id }

// Unregister withdraws the function from the engine and from this worker.
func (f *FunctionRef) Unregister() error {
	if err := f.w.err(); err != nil {
		return err
	}
	return f.w.reqErr(f.w.reg.RemoveFunction(f.w.ctx, f.id))
}

// RegisterFunction registers a typed function. The payload of each
// invocation is decoded from JSON into Req (a payload that does not decode
// gets an invalid_request error reply) and the result is encoded from Resp.
// JSON Schemas of Req and Resp are derived from the Go types and sent with
// the registration; ValidateInput tells which struct tags shape them, which
// fields are required, and checks payloads against them. Registering an id
// twice fails with ErrDuplicate.
//
// What the handler returns crosses to the caller, which may be another
// team's worker: an error's text (err.Error(), or an *InvocationError's
// Message) goes out as written, so keep secrets, hosts and internal
// details out of it (see the safeErrors example). A panic sends only
// "panic: <value>" (see InitOptions.SendPanicStacks).
func RegisterFunction[Req, Resp any](w *III, id string, handler func(context.Context, Req) (Resp, error), opts ...FunctionOption) (*FunctionRef, error) {
	if handler == nil {
		return nil, fmt.Errorf("%w: nil handler for function %q", ErrInvalidID, id)
	}
	// Raw JSON on either side is passed through: the payload was validated
	// when the frame was decoded, a raw result is validated here; neither is
	// boxed in an interface on the way.
	rawReq := reflect.TypeFor[Req]() == reflect.TypeFor[json.RawMessage]()
	rawResp := reflect.TypeFor[Resp]() == reflect.TypeFor[json.RawMessage]()
	h := func(ctx context.Context, m *wire.InvokeFunction) (json.RawMessage, error) {
		var req Req
		if rawReq {
			*(*json.RawMessage)(unsafe.Pointer(&req)) = m.Data
		} else if len(m.Data) > 0 {
			if err := json.Unmarshal(m.Data, &req); err != nil {
				return nil, decodeError(m.FunctionID, err)
			}
		}
		resp, err := handler(ctx, req)
		if err != nil {
			return nil, err
		}
		if rawResp {
			return rawResult(*(*json.RawMessage)(unsafe.Pointer(&resp)), m.Data)
		}
		return encodeResult(resp)
	}
	return w.register(id, h, schemaOf[Req], schemaOf[Resp], opts)
}

// RegisterFunctionRaw registers a function that takes its payload as raw
// JSON and returns any value that encodes to JSON (a json.RawMessage is
// sent as it is; nil means no result).
func (w *III) RegisterFunctionRaw(id string, handler func(context.Context, json.RawMessage) (any, error), opts ...FunctionOption) (*FunctionRef, error) {
	if handler == nil {
		return nil, fmt.Errorf("%w: nil handler for function %q", ErrInvalidID, id)
	}
	h := func(ctx context.Context, m *wire.InvokeFunction) (json.RawMessage, error) {
		resp, err := handler(ctx, m.Data)
		if err != nil {
			return nil, err
		}
		return encodeResult(resp)
	}
	return w.register(id, h, nil, nil, opts)
}

// register registers h; reqSchema and respSchema (nil: none) derive the
// schemas, and run only if the options neither replace nor omit them.
func (w *III) register(id string, h registry.Handler, reqSchema, respSchema func() json.RawMessage, opts []FunctionOption) (*FunctionRef, error) {
	return w.registerFunction(id, h, nil, reqSchema, respSchema, opts)
}

// registerFunction registers a function served by h here or, with inv, by
// the engine calling an HTTP endpoint (h is nil then, and ValidateInput
// does not apply: the payload does not pass through this worker).
func (w *III) registerFunction(id string, h registry.Handler, inv *wire.HTTPInvocationRef, reqSchema, respSchema func() json.RawMessage, opts []FunctionOption) (*FunctionRef, error) {
	if err := w.err(); err != nil {
		return nil, err
	}
	if id == "" {
		return nil, fmt.Errorf("%w: empty function id", ErrInvalidID)
	}
	var cfg functionConfig
	for _, o := range opts {
		o(&cfg)
	}
	frame := &wire.RegisterFunction{ID: id, Description: cfg.description, Invocation: inv}
	if !cfg.noSchemas {
		frame.RequestFormat, frame.ResponseFormat = cfg.requestSchema, cfg.responseSchema
		if frame.RequestFormat == nil && reqSchema != nil {
			frame.RequestFormat = reqSchema()
		}
		if frame.ResponseFormat == nil && respSchema != nil {
			frame.ResponseFormat = respSchema()
		}
	}
	for _, s := range []json.RawMessage{frame.RequestFormat, frame.ResponseFormat} {
		if s != nil && !json.Valid(s) {
			return nil, fmt.Errorf("%w: schema of function %q", ErrInvalidPayload, id)
		}
	}
	if cfg.validate && h != nil {
		var err error
		if h, err = validating(id, frame.RequestFormat, h); err != nil {
			return nil, err
		}
	}
	if cfg.metadata != nil {
		md, err := encodeJSON(cfg.metadata)
		if err != nil {
			return nil, fmt.Errorf("function %q metadata: %w", id, err)
		}
		frame.Metadata = md
	}
	ref := &FunctionRef{w: w, id: id}
	if err := w.reg.AddFunction(w.ctx, &registry.Function{Frame: frame, Handler: h, OnRejected: ref.rej.set}); err != nil {
		return nil, w.reqErr(err)
	}
	return ref, nil
}

// TriggerAction says how a call is delivered; see Void and Enqueue. A nil
// *TriggerAction means an awaited call.
type TriggerAction struct {
	kind  wire.ActionKind
	queue string
}

// Void makes a fire-and-forget call: Trigger returns at once with no result.
func Void() *TriggerAction { return &voidAction }

// voidAction is what Void returns: its fields cannot change.
var voidAction = TriggerAction{kind: wire.ActionVoid}

// Enqueue routes the call through the engine's queue: Trigger returns the
// receipt (an EnqueueResult in JSON) once the queue accepted the job.
func Enqueue(queue string) *TriggerAction {
	return &TriggerAction{kind: wire.ActionEnqueue, queue: queue}
}

// TriggerRequest is one call of a function.
type TriggerRequest struct {
	FunctionID string
	// Payload is encoded to JSON; a json.RawMessage passes through
	// unchanged (it must be valid JSON); nil is sent as null. The SDK
	// keeps a copy of a json.RawMessage: the caller may reuse it as soon
	// as Trigger returns.
	Payload any
	// Action is nil for an awaited call, or Void() or Enqueue(queue).
	Action *TriggerAction
	// Timeout bounds an awaited call; 0 means InitOptions.InvocationTimeout.
	// The context's deadline applies too.
	Timeout time.Duration
	// Metadata travels beside the payload to the handler (any JSON value).
	Metadata any
	// Namespace is the namespace the function is resolved in (engine
	// v0.23). Empty means the worker's (InitOptions.Namespace), except for
	// the engine's engine:: functions, which live in DefaultNamespace. A
	// worker in a namespace reaches the default one with DefaultNamespace.
	// An engine v0.22.1 ignores it.
	Namespace string
}

// EnqueueResult is the engine's receipt for an enqueued call.
type EnqueueResult struct {
	MessageReceiptID string `json:"messageReceiptId"`
}

// Trigger calls a function. An awaited call returns the function's JSON
// result (nil if it returned none), a *RemoteError if the function or the
// engine answered with an error, or an error matching ErrTimeout,
// ErrConnectionLost, ErrConnectionFailed or ErrShutdown. Calls made while
// the worker is disconnected wait for the connection within their timeout.
// A Void call returns (nil, nil) as soon as it is queued.
func (w *III) Trigger(ctx context.Context, req TriggerRequest) (json.RawMessage, error) {
	if w.tel == nil {
		return w.trigger(ctx, req, nil)
	}
	var end func(error)
	res, err := w.trigger(ctx, req, func(ctx context.Context, m *wire.InvokeFunction) context.Context {
		ctx, end = w.tel.startCall(ctx, m)
		return ctx
	})
	if end != nil {
		end(err)
	}
	return res, err
}

// trigger makes the call; instrument, if set, starts its span once the
// frame is built.
func (w *III) trigger(ctx context.Context, req TriggerRequest, instrument func(context.Context, *wire.InvokeFunction) context.Context) (json.RawMessage, error) {
	if err := w.err(); err != nil {
		return nil, err
	}
	if req.FunctionID == "" {
		return nil, fmt.Errorf("%w: empty function id", ErrInvalidID)
	}
	// A context that has ended sends nothing: the call would race its own
	// cancellation.
	if ctx.Err() != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, &timeoutError{functionID: req.FunctionID, ctx: true}
		}
		return nil, fmt.Errorf("iii: call to %s: %w", req.FunctionID, ctx.Err())
	}
	data, err := encodeJSON(req.Payload)
	if err != nil {
		return nil, fmt.Errorf("payload of call to %s: %w", req.FunctionID, err)
	}
	ns, err := w.callNamespace(req.Namespace, req.FunctionID)
	if err != nil {
		return nil, err
	}
	m := newInvokeFrame()
	m.FunctionID, m.Data, m.Namespace = req.FunctionID, data, ns
	if req.Metadata != nil {
		if m.Metadata, err = encodeJSON(req.Metadata); err != nil {
			return nil, fmt.Errorf("metadata of call to %s: %w", req.FunctionID, err)
		}
	}
	// Encoded: the call does not keep the caller's values alive while it
	// waits (req lives in this frame until the result is mapped).
	req.Payload, req.Metadata = nil, nil
	if instrument != nil {
		ctx = instrument(ctx, &m.InvokeFunction)
	} else if inv := invocationFrom(ctx); inv != nil { // carry the caller's trace through
		m.Traceparent, m.Baggage = inv.m.Traceparent, inv.m.Baggage
	}
	// The engine limits the whole frame: measure it as it will be sent
	// (every call but a Void one gets an invocation id below).
	if req.Action != nil {
		m.Action = wire.TriggerAction{Kind: req.Action.kind, Queue: req.Action.queue}
	}
	m.HasInvocationID = m.Action.Kind != wire.ActionVoid
	if !wire.FrameFits(&m.InvokeFunction, w.maxMessage) {
		return nil, fmt.Errorf("%w: the frame of the call to %s (%d bytes of payload and metadata) exceeds the engine's limit: the limit is %d bytes",
			ErrPayloadTooLarge, req.FunctionID, len(m.Data)+len(m.Metadata), w.maxMessage)
	}
	m.HasInvocationID = false
	timeout := req.Timeout
	if timeout <= 0 {
		timeout = w.timeout
	}
	if req.Action != nil && req.Action.kind == wire.ActionVoid {
		m.Action = wire.TriggerAction{Kind: wire.ActionVoid}
		sendCtx := ctx
		if w.conn.Current() == nil { // parked: sent on reconnect even if ctx ends, until timeout
			sendCtx = context.WithoutCancel(ctx)
		}
		return nil, w.sendErr(req.FunctionID, w.conn.Send(sendCtx, m, nil, time.Now().Add(timeout)))
	}
	if req.Action != nil && req.Action.kind == wire.ActionEnqueue {
		m.Action = wire.TriggerAction{Kind: wire.ActionEnqueue, Queue: req.Action.queue}
	}
	call, err := w.pending.Add()
	if err != nil {
		return nil, err
	}
	m.InvocationID, m.HasInvocationID = call.ID, true
	if err := w.conn.Send(ctx, m, call, time.Now().Add(timeout)); err != nil {
		w.pending.Fail(call, err)
		return nil, w.sendErr(req.FunctionID, err)
	}
	s := call.Socket()
	if s != nil && !s.Alive() {
		// It died as the frame was queued; its cleanup may have run already.
		w.pending.Fail(call, &connectionLostError{functionID: req.FunctionID, cause: s.Err()})
	}
	o := w.pending.Wait(ctx, call, timeout)
	// m may be back in its pool already: only call is used from here on.
	var res json.RawMessage
	switch {
	case o.Err != nil:
		err = w.callErr(ctx, req.FunctionID, call, o.Err)
	case o.Result.Error != nil:
		err = remoteError(req.FunctionID, o.Result.Error)
	case !wire.IsNull(o.Result.Result):
		res = o.Result.Result
	}
	if s != nil {
		// Sent at once: the connection kept no reference to the call (a
		// parked call is left to the garbage collector instead).
		w.pending.Release(call)
	}
	return res, err
}

// invokeFrame is a pooled invokefunction: the socket's writer releases it
// once encoded.
type invokeFrame struct{ wire.InvokeFunction }

var invokeFrames = sync.Pool{New: func() any { return new(invokeFrame) }}

func newInvokeFrame() *invokeFrame { return invokeFrames.Get().(*invokeFrame) }

// Release implements connection.Releaser.
func (f *invokeFrame) Release() {
	f.InvokeFunction = wire.InvokeFunction{}
	invokeFrames.Put(f)
}

// sendErr maps an error of queueing a frame.
func (w *III) sendErr(functionID string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, connection.ErrClosed):
		return ErrShutdown
	case errors.Is(err, connection.ErrSocketClosed):
		return &connectionLostError{functionID: functionID, cause: err}
	case errors.Is(err, context.DeadlineExceeded):
		return &timeoutError{functionID: functionID, waiting: true, ctx: true, cause: w.conn.LastError()}
	}
	return err
}

// callErr maps the error that ended a pending call.
func (w *III) callErr(ctx context.Context, functionID string, call *invocation.Call, err error) error {
	switch {
	case errors.Is(err, invocation.ErrTimeout):
		return w.timeoutErr(functionID, call, false)
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil:
		return w.timeoutErr(functionID, call, true)
	}
	var lost *connectionLostError
	if errors.As(err, &lost) && lost.functionID == "" {
		return &connectionLostError{functionID: functionID, cause: lost.cause}
	}
	return err
}

// Call makes an awaited call and decodes its JSON result into Resp. Options
// set its timeout (WithCallTimeout) and metadata (WithCallMetadata); errors
// are those of Trigger.
func Call[Resp any](ctx context.Context, w *III, functionID string, payload any, opts ...CallOption) (Resp, error) {
	var resp Resp
	raw, err := w.Trigger(ctx, callRequest(functionID, payload, opts))
	if err != nil || raw == nil {
		return resp, err
	}
	if err := json.Unmarshal(raw, &resp); err != nil {
		return resp, fmt.Errorf("iii: result of %s does not decode into %T: %w", functionID, resp, err)
	}
	return resp, nil
}

// Enqueue puts a call of functionID on the engine's queue and returns the
// engine's receipt.
func (w *III) Enqueue(ctx context.Context, queue, functionID string, payload any) (EnqueueResult, error) {
	var r EnqueueResult
	raw, err := w.Trigger(ctx, TriggerRequest{FunctionID: functionID, Payload: payload, Action: Enqueue(queue)})
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return r, fmt.Errorf("iii: enqueue receipt: %w", err)
	}
	return r, nil
}

// encodeJSON encodes v for a payload or metadata field. A json.RawMessage
// passes through after a validity check, as a copy: the SDK may keep what
// it returns after the call that passed v has returned (a Void call's
// frame waits in the socket's queue, a registration is replayed on
// reconnect), and the caller may reuse its buffer.
func encodeJSON(v any) (json.RawMessage, error) {
	switch v := v.(type) {
	case nil:
		return json.RawMessage("null"), nil
	case json.RawMessage:
		if v == nil {
			return json.RawMessage("null"), nil
		}
		if !wire.Valid(v) {
			return nil, ErrInvalidPayload
		}
		return bytes.Clone(bytes.TrimSpace(v)), nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidPayload, err)
	}
	return b, nil
}

// rawResult checks a handler's raw JSON result; nil means no result. It
// returns a copy: the reply is written after the handler returned, and the
// handler may reuse its buffer. A result within in, the invocation's data
// (an echo, or a part of it), needs none: that is the SDK's own buffer,
// made for this frame and never reused.
func rawResult(raw, in json.RawMessage) (json.RawMessage, error) {
	if raw == nil {
		return nil, nil
	}
	if !wire.Valid(raw) {
		return nil, &InvocationError{Code: CodeInvocationFailed, Message: "the handler's result is not valid JSON", Err: ErrInvalidPayload}
	}
	raw = bytes.TrimSpace(raw)
	if within(raw, in) {
		return raw, nil
	}
	return bytes.Clone(raw), nil
}

// within reports whether sub lies inside buf's memory.
func within(sub, buf []byte) bool {
	if len(sub) == 0 || len(buf) == 0 {
		return false
	}
	s := uintptr(unsafe.Pointer(unsafe.SliceData(sub)))
	b := uintptr(unsafe.Pointer(unsafe.SliceData(buf)))
	return s >= b && s+uintptr(len(sub)) <= b+uintptr(len(buf))
}

// encodeResult encodes a handler's result; nil means no result.
func encodeResult(v any) (json.RawMessage, error) {
	if v == nil {
		return nil, nil
	}
	b, err := encodeJSON(v)
	if err != nil {
		return nil, &InvocationError{Code: CodeInvocationFailed, Message: "the handler's result cannot be encoded as JSON: " + err.Error(), Err: err}
	}
	return b, nil
}
