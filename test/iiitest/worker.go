package iiitest

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/iii-go/iii/connection/wire"
)

// maxDeadJournals is how many closed connections keep their journal for
// Received.
const maxDeadJournals = 1024

// state is everything Restart and Stop wipe. It is guarded by Engine.mu.
type state struct {
	workers      map[string]*worker
	dead         map[string]*worker // closed connections, for Received
	deadOrder    []string
	functions    map[string]*function
	ttypes       map[string]*ttype
	bindings     map[string]*binding // live bindings
	parked       map[string]*binding // bindings waiting for their trigger type
	pending      map[wire.UUID]pending
	channels     map[string]*channel
	services     map[string]wire.RegisterService
	deadLetters  []DeadLetter
	queueSlots   map[string]chan struct{} // per-queue delivery slots
	queueWaiting int                      // jobs waiting for a slot
	runtimeID    string
	startedAt    time.Time
	fnHash       uint64             // functions-available: last fired function-set hash
	names        map[string]*worker // WithNamespaces: worker name leases
	kv           *kvData            // the state::* and stream::* stores (kvstore.go), made on first use
}

func newState(e *Engine) *state {
	st := &state{
		workers:    make(map[string]*worker),
		dead:       make(map[string]*worker),
		functions:  make(map[string]*function),
		ttypes:     make(map[string]*ttype),
		bindings:   make(map[string]*binding),
		parked:     make(map[string]*binding),
		pending:    make(map[wire.UUID]pending),
		channels:   make(map[string]*channel),
		services:   make(map[string]wire.RegisterService),
		queueSlots: make(map[string]chan struct{}),
		runtimeID:  runtimeWorkerName, // in-process workers are listed with their name as id
		startedAt:  time.Now(),
	}
	for id, b := range builtins {
		if (id == enqueueProvider || id == durablePublish) && e.cfg.queue == nil {
			continue
		}
		st.functions[id] = &function{id: id, builtin: b.fn, description: b.description, metadata: b.metadata}
	}
	st.ttypes[triggerWorkersAvailable] = &ttype{id: triggerWorkersAvailable, description: "Triggered when workers connect/disconnect"}
	st.ttypes[triggerFunctionsAvailable] = &ttype{id: triggerFunctionsAvailable, description: "Triggered when functions are registered/unregistered"}
	// The trigger types of the engine's mandatory in-process workers
	// (configuration, observability): listed like on any engine; the
	// double never fires them.
	for _, tt := range mandatoryTriggerTypes {
		st.ttypes[tt.id] = &ttype{id: tt.id, description: tt.description}
	}
	for _, t := range engineTriggerTypes {
		tt := &ttype{id: t.id, description: t.description}
		if t.newProvider != nil {
			if tt.engine = t.newProvider(e); tt.engine == nil {
				continue // not installed (the queue worker without WithQueue)
			}
		}
		st.ttypes[t.id] = tt
	}
	st.fnHash = st.functionsHash()
	return st
}

// stopTimers stops the pending trigger-ack timers.
func (st *state) stopTimers() {
	for _, c := range st.workers {
		for _, a := range c.acks {
			a.timer.Stop()
		}
	}
	for _, tt := range st.ttypes {
		if c, ok := tt.engine.(interface{ close() }); ok {
			c.close()
		}
	}
}

// function is an entry of the global function table.
type function struct {
	id             string
	owner          *worker     // nil for builtins
	builtin        builtinFunc // nil for worker functions
	description    string
	requestFormat  json.RawMessage
	responseFormat json.RawMessage
	metadata       json.RawMessage
	idBaggage      string // "iii.function.id=<id>", built once (under Engine.mu)
}

// pending is an invocation dispatched to a worker and not answered yet,
// keyed by the invocation id the handler got.
type pending struct {
	handler     *worker
	caller      *worker // a synchronous worker call; nil otherwise
	functionID  string  // as requested, for the relayed result
	traceparent string
	baggage     string
	cb          func(result json.RawMessage, err *wire.ErrorBody) // engine-originated calls
}

// WorkerInfo describes a worker connection.
type WorkerInfo struct {
	ID          string
	Name        string
	Description string
	Runtime     string
	Version     string
	OS          string
	PID         int
	// Namespace is the connection's namespace with WithNamespaces
	// ("default" until engine::workers::register fixes it); "" without.
	Namespace string
	// Metadata is the payload of the worker's last engine::workers::register
	// call, as sent (without _caller_worker_id); nil before the first.
	Metadata    json.RawMessage
	Functions   []string // the ids this connection registered, sorted
	ConnectedAt time.Time
}

// workerMeta is what engine::workers::register stores.
type workerMeta struct {
	runtime, version, name, description, os, isolation *string
	pid                                                *uint32
	telemetry                                          json.RawMessage
	raw                                                json.RawMessage
}

// worker is a connection on "/".
type worker struct {
	names wire.Interner // function ids and the engine's baggage recur: decoded without allocating (readLoop only)
	*sock
	id          string
	token       string
	connectedAt time.Time
	ip          string

	// guarded by Engine.mu
	st   *state
	gone bool // cleaned up (closed or retired by a reattach)
	fns  map[string]struct{}
	meta workerMeta
	acks map[string]*ackWait
	nsx  nsConn // WithNamespaces

	jmu      sync.Mutex
	journal  []journalEntry
	jdropped int

	// used by the reader goroutine only
	scratch []byte
}

type journalEntry struct {
	msg     wire.Message
	builtin bool // an invokefunction to an engine:: builtin
}

func (c *worker) record(m wire.Message, builtin bool) {
	c.jmu.Lock()
	if len(c.journal) < c.e.cfg.journalLimit {
		c.journal = append(c.journal, journalEntry{m, builtin})
	} else {
		c.jdropped++
	}
	c.jmu.Unlock()
}

// outbox collects frames (and callbacks) produced while Engine.mu is held;
// they are sent after it is released, since sending may wait.
type outbox struct {
	from  *sock
	msgs  []outMsg
	later []func()
}

type outMsg struct {
	to   *sock
	fb   *frameBuf
	call bool // an engine-originated call: dispatched like the engine's tasks
}

func (ob *outbox) add(to *worker, m wire.Message) {
	if to == nil || to.gone {
		return
	}
	fb := getBuf()
	fb.b = m.AppendJSON(fb.b)
	ob.msgs = append(ob.msgs, outMsg{to: to.sock, fb: fb})
}

// addCall is add for an engine-originated invocation (a trigger fire, a
// queue job, Invoke), which the engine sends from a task of its own.
func (ob *outbox) addCall(to *worker, m wire.Message) {
	n := len(ob.msgs)
	ob.add(to, m)
	if len(ob.msgs) > n {
		ob.msgs[n].call = true
	}
}

func (e *Engine) flush(ob *outbox) {
	for _, m := range ob.msgs {
		if m.call {
			to, fb, wait := m.to, m.fb, m.to != ob.from
			e.dispatch(func() { to.send(fb, wait) })
			continue
		}
		m.to.send(m.fb, m.to != ob.from)
	}
	for _, f := range ob.later {
		f()
	}
	ob.msgs, ob.later = nil, nil
}

func (e *Engine) serveWorker(w http.ResponseWriter, r *http.Request) {
	if !e.enter() {
		http.Error(w, "engine down", http.StatusServiceUnavailable)
		return
	}
	defer e.wg.Done()
	s := e.upgrade(w, r)
	if s == nil {
		return
	}
	defer e.removeSock(s)
	if !e.authenticate(s, r) {
		s.finish()
		return
	}
	c := &worker{
		sock:        s,
		id:          wire.NewUUID().String(),
		token:       wire.NewUUID().String(),
		connectedAt: time.Now(),
		fns:         make(map[string]struct{}),
		acks:        make(map[string]*ackWait),
	}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		c.ip = host
	}
	// workerregistered is queued in the critical section that makes the
	// connection visible: it is the first frame (nothing can reach the
	// connection before), and a worker that has it is known to the engine.
	fb := getBuf()
	fb.b = (&wire.WorkerRegistered{WorkerID: c.id, ReattachToken: c.token}).AppendJSON(fb.b)

	ob := outbox{from: s}
	e.mu.Lock()
	s.send(fb, false) // never blocks
	c.st = e.st
	c.st.workers[c.id] = c
	e.fireLocked(&ob, c.st, triggerWorkersAvailable, workersEvent("worker_connected", c.id))
	e.notifyLocked()
	e.mu.Unlock()
	e.flush(&ob)

	c.readLoop()
	s.finish()

	ob = outbox{from: s}
	e.mu.Lock()
	e.cleanupLocked(&ob, c)
	e.mu.Unlock()
	e.flush(&ob)
}

func (c *worker) readLoop() {
	buf := make([]byte, 0, 4096)
	for {
		typ, b, err := c.readFrame(buf)
		if err != nil {
			return
		}
		buf = b
		if c.stalled.Load() {
			continue
		}
		if typ == websocket.BinaryMessage {
			if k, payload := wire.SplitTelemetry(b); k != wire.TelemetryNone {
				buf = c.e.tel.ingest(c.e, k, payload, b) // b is the double's now
				continue
			}
		}
		c.handle(b)
		if cap(buf) > 1<<20 {
			buf = make([]byte, 0, 4096)
		}
	}
}

func isBlank(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return false
		}
	}
	return true
}

// handle processes one frame. b is reused for the next frame: anything kept
// must be copied.
func (c *worker) handle(b []byte) {
	e := c.e
	if isBlank(b) {
		return
	}
	msg, err := wire.DecodeInterned(b, &c.names)
	if err != nil {
		e.counts[wire.KindInvalid].Add(1)
		e.log.Debug("iiitest: undecodable frame dropped", "worker", c.id, "err", err)
		return
	}
	k := msg.Kind()
	e.counts[k].Add(1)
	switch m := msg.(type) {
	case *wire.InvokeFunction:
		e.invoke(c, m)
		return
	case *wire.InvocationResult:
		e.result(c, m)
		return
	case *wire.Ping:
		fb := getBuf()
		fb.b = (&wire.Pong{}).AppendJSON(fb.b)
		c.send(fb, false)
		return
	case *wire.Pong:
		return
	}
	// Control frames are rare: decode a private copy, so that what is
	// stored and journaled owns its memory.
	msg, _ = wire.Decode(bytes.Clone(b))
	c.record(msg, false)
	ob := outbox{from: c.sock}
	e.mu.Lock()
	if !c.gone {
		if !e.cfg.namespaces || !e.nsControlLocked(&ob, c, msg) {
			e.controlLocked(&ob, c, msg)
		}
		e.notifyLocked()
	}
	e.mu.Unlock()
	e.flush(&ob)
}

// controlLocked applies a control frame of c.
func (e *Engine) controlLocked(ob *outbox, c *worker, msg wire.Message) {
	st := c.st
	switch m := msg.(type) {
	case *wire.RegisterFunction:
		e.registerFunctionLocked(ob, c, m)
	case *wire.UnregisterFunction:
		delete(c.fns, m.ID)
		if f := st.functions[m.ID]; f != nil && f.owner == c {
			delete(st.functions, m.ID)
		}
	case *wire.RegisterTriggerType:
		e.registerTriggerTypeLocked(ob, c, m)
	case *wire.RegisterTrigger:
		e.registerTriggerLocked(ob, c, m)
	case *wire.UnregisterTrigger:
		e.unregisterTriggerLocked(ob, st, m.ID)
	case *wire.TriggerRegistrationResult:
		e.triggerResultLocked(ob, c, m)
	case *wire.RegisterService:
		st.services[m.ID] = *m
	case *wire.Reattach:
		e.reattachLocked(ob, c, m)
	default:
		// unregistertriggertype (which v0.22.1 cannot decode) and the
		// engine-to-worker types are dropped.
		e.log.Debug("iiitest: frame dropped", "worker", c.id, "type", msg.Kind().String())
	}
}

func (e *Engine) registerFunctionLocked(ob *outbox, c *worker, m *wire.RegisterFunction) {
	if m.Invocation != nil {
		e.registerHTTPFunctionLocked(c, m) // httpfn.go
		return
	}
	st := c.st
	if prev := st.functions[m.ID]; prev != nil && prev.owner != nil && prev.owner != c {
		e.log.Debug("iiitest: function ownership transferred between two live workers", "function", m.ID)
	}
	st.functions[m.ID] = &function{
		id:             m.ID,
		owner:          c,
		description:    m.Description,
		requestFormat:  m.RequestFormat,
		responseFormat: m.ResponseFormat,
		metadata:       m.Metadata,
	}
	c.fns[m.ID] = struct{}{}
}

// reattachLocked retires the previous connection of a reconnecting worker
// (§7): its cleanup runs here, before the next frame of c is read.
func (e *Engine) reattachLocked(ob *outbox, c *worker, m *wire.Reattach) {
	u, err := wire.ParseUUID(m.PreviousWorkerID)
	if err != nil {
		e.log.Debug("iiitest: reattach with malformed previous worker id ignored", "worker", c.id)
		return
	}
	prev := u.String()
	if prev == c.id {
		return
	}
	old := c.st.workers[prev]
	if old == nil {
		return
	}
	if m.ReattachToken != old.token {
		e.log.Debug("iiitest: reattach with wrong or missing token ignored", "worker", c.id)
		return
	}
	e.cleanupLocked(ob, old)
	ob.later = append(ob.later, old.kill)
}

// cleanupLocked runs the disconnect cleanup of §4.6 once.
func (e *Engine) cleanupLocked(ob *outbox, c *worker) {
	if c.gone || c.st == nil {
		return
	}
	c.gone = true
	st := c.st
	if st.workers[c.id] == c {
		delete(st.workers, c.id)
	}
	if len(st.deadOrder) >= maxDeadJournals {
		delete(st.dead, st.deadOrder[0])
		st.deadOrder = st.deadOrder[1:]
	}
	st.dead[c.id] = c
	st.deadOrder = append(st.deadOrder, c.id)

	// 1. functions still owned by c
	for id := range c.fns {
		if f := st.functions[c.fnKey(id)]; f != nil && f.owner == c {
			delete(st.functions, c.fnKey(id))
		}
	}
	e.nsCleanupLocked(c)
	// 2. in-flight invocations, as handler and as caller
	for id, p := range st.pending {
		switch {
		case p.handler == c:
			delete(st.pending, id)
			stopped := &wire.ErrorBody{Code: "invocation_stopped", Message: "Invocation stopped"}
			if p.caller != nil {
				ob.add(p.caller, &wire.InvocationResult{InvocationID: id, FunctionID: p.functionID, Error: stopped, Traceparent: p.traceparent, Baggage: p.baggage})
			}
			if p.cb != nil {
				cb := p.cb
				ob.later = append(ob.later, func() { cb(nil, stopped) })
			}
		case p.caller == c:
			// The call is halted for the caller, but the handler's
			// in-flight set keeps it until the handler replies.
			p.caller = nil
			st.pending[id] = p
		}
	}
	// ownerless registrations waiting for c's ack fail open
	for id, a := range c.acks {
		delete(c.acks, id)
		if a.timer.Stop() {
			e.completeAckLocked(ob, st, a, nil)
		}
	}
	// 3. triggers
	for _, id := range sortedKeys(st.bindings) {
		b := st.bindings[id]
		if b.owner != c {
			continue
		}
		delete(st.bindings, id)
		e.stopBindingLocked(ob, st, b)
	}
	for id, b := range st.parked {
		if b.owner == c {
			delete(st.parked, id)
		}
	}
	for tid, tt := range st.ttypes {
		if tt.provider != c {
			continue
		}
		delete(st.ttypes, tid)
		for id, b := range st.bindings {
			if b.ttype == tid {
				delete(st.bindings, id)
				st.parked[id] = b
			}
		}
	}
	// 4. channels created with engine::channels::create have no owner.
	// 5. tell the engine::workers-available subscribers
	e.fireLocked(ob, st, triggerWorkersAvailable, workersEvent("worker_disconnected", c.id))
	e.notifyLocked()
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func workersEvent(event, id string) json.RawMessage {
	b := append([]byte(`{"event":`), wire.AppendString(nil, event)...)
	b = append(b, `,"worker_id":`...)
	b = wire.AppendString(b, id)
	return append(b, '}')
}

// DropWorker closes the TCP connection of worker workerID abruptly (no
// Close frame); the engine then cleans up as on any disconnect. It reports
// whether the worker was connected.
func (e *Engine) DropWorker(workerID string) bool {
	e.mu.Lock()
	c := e.st.workers[workerID]
	e.mu.Unlock()
	if c == nil {
		return false
	}
	c.kill()
	return true
}

// StallWorker makes worker workerID's connection half-open: the double
// stops processing what it sends and writes nothing more to it (no results,
// no pongs), without closing it. Bytes still arriving are read and
// discarded, so the double notices when the worker really closes the
// socket; only then (or on a reattach that retires it) does the cleanup
// run. It reports whether the worker was connected.
func (e *Engine) StallWorker(workerID string) bool {
	e.mu.Lock()
	c := e.st.workers[workerID]
	e.mu.Unlock()
	if c == nil {
		return false
	}
	c.stall()
	return true
}

// Workers returns the live worker connections, oldest first.
func (e *Engine) Workers() []WorkerInfo {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.workersLocked()
}

func (e *Engine) workersLocked() []WorkerInfo {
	out := make([]WorkerInfo, 0, len(e.st.workers))
	for _, c := range e.st.workers {
		out = append(out, c.infoLocked())
	}
	slices.SortFunc(out, func(a, b WorkerInfo) int { return a.ConnectedAt.Compare(b.ConnectedAt) })
	return out
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func (c *worker) infoLocked() WorkerInfo {
	wi := WorkerInfo{
		ID:          c.id,
		Name:        deref(c.meta.name),
		Description: deref(c.meta.description),
		Runtime:     deref(c.meta.runtime),
		Version:     deref(c.meta.version),
		OS:          deref(c.meta.os),
		Metadata:    c.meta.raw,
		ConnectedAt: c.connectedAt,
	}
	if c.e.cfg.namespaces {
		wi.Namespace = nsName(c.nsx.ns)
	}
	if c.meta.pid != nil {
		wi.PID = int(*c.meta.pid)
	}
	for id := range c.fns {
		wi.Functions = append(wi.Functions, id)
	}
	sort.Strings(wi.Functions)
	return wi
}

// WaitWorkers waits until at least n workers are connected and returns them.
func (e *Engine) WaitWorkers(ctx context.Context, n int) ([]WorkerInfo, error) {
	var out []WorkerInfo
	err := e.waitFor(ctx, func() bool {
		if len(e.st.workers) < n {
			return false
		}
		out = e.workersLocked()
		return true
	})
	return out, err
}

// Functions returns the functions registered by workers: function id ->
// owning worker id. The engine's own builtins (engine::*) are not listed
// unless a worker took one over.
func (e *Engine) Functions() map[string]string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]string)
	for id, f := range e.st.functions {
		if ns, _ := splitKey(id); f.owner != nil && ns == "" { // other namespaces: FunctionsIn
			out[id] = f.owner.id
		}
	}
	return out
}

// WaitFunction waits until function id is registered.
func (e *Engine) WaitFunction(ctx context.Context, id string) error {
	return e.waitFor(ctx, func() bool { return e.st.functions[id] != nil })
}

// WaitFunctionGone waits until function id is no longer registered.
func (e *Engine) WaitFunctionGone(ctx context.Context, id string) error {
	return e.waitFor(ctx, func() bool { return e.st.functions[id] == nil })
}

func (e *Engine) journalOf(workerID string) *worker {
	e.mu.Lock()
	defer e.mu.Unlock()
	if c := e.st.workers[workerID]; c != nil {
		return c
	}
	return e.st.dead[workerID]
}

// Received returns the control frames worker connection workerID sent, in
// order: every decoded frame except invokefunction, invocationresult, ping
// and pong (so also unregistertriggertype, which the engine drops). It
// works for closed connections too, until the state is wiped. The messages
// are private copies.
func (e *Engine) Received(workerID string) []wire.Message {
	return e.journal(workerID, false)
}

// Journal is Received plus the invokefunction frames addressed to engine::
// builtins (engine::workers::register, ...), in the order they arrived:
// what an SDK does on connect.
func (e *Engine) Journal(workerID string) []wire.Message {
	return e.journal(workerID, true)
}

func (e *Engine) journal(workerID string, builtins bool) []wire.Message {
	c := e.journalOf(workerID)
	if c == nil {
		return nil
	}
	c.jmu.Lock()
	defer c.jmu.Unlock()
	out := make([]wire.Message, 0, len(c.journal))
	for _, j := range c.journal {
		if !j.builtin || builtins {
			out = append(out, j.msg)
		}
	}
	return out
}
