package iii

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"runtime/debug"
	"sync"

	"github.com/invopop/jsonschema"

	"github.com/iii-go/iii/connection"
	"github.com/iii-go/iii/connection/wire"
	"github.com/iii-go/iii/invocation"
)

// Invocation describes the invocation a handler is serving; read it from
// the handler's context with InvocationFromContext.
type Invocation struct {
	m *wire.InvokeFunction
}

// ID returns the engine's invocation id.
func (i *Invocation) ID() string { return i.m.InvocationID.String() }

// FunctionID returns the function being invoked.
func (i *Invocation) FunctionID() string { return i.m.FunctionID }

// Metadata returns the per-invocation metadata the caller (or the trigger
// binding) attached, or nil.
func (i *Invocation) Metadata() json.RawMessage {
	if wire.IsNull(i.m.Metadata) {
		return nil
	}
	return i.m.Metadata
}

// Traceparent returns the W3C traceparent of the call, or "".
func (i *Invocation) Traceparent() string { return i.m.Traceparent }

// Baggage returns the W3C baggage of the call, or "".
func (i *Invocation) Baggage() string { return i.m.Baggage }

// Payload returns the raw payload. When a worker made the call directly
// (awaited or Void), the engine added the caller's worker id to it as
// "_caller_worker_id" (see CallerWorkerID).
func (i *Invocation) Payload() json.RawMessage { return i.m.Data }

// CallerWorkerID returns the "_caller_worker_id" member of the payload: the
// top-level member with exactly that name (no case folding), if it occurs
// once and is a string; otherwise "".
//
// What it proves: on a call a worker made directly (an awaited or Void
// Trigger, a Call), the engine (v0.22.1) writes that member into the
// payload object itself, replacing any the caller sent, so it is the
// engine's id of the connection the call came on.
//
// What it does not prove: the engine writes it only there. On an
// enqueued call (delivered from a queue), a trigger fire (cron, http,
// queue, a worker's trigger type) or a payload that is not a JSON object,
// the payload arrives as the caller wrote it, and a "_caller_worker_id"
// in it is the caller's own claim; the handler cannot tell these cases
// apart. Nor is a worker id an identity: it names a connection, not a
// team, tenant or user. Do not base authorisation on it; use the
// engine's auth (InitOptions.Headers and the engine's RBAC) instead.
func (i *Invocation) CallerWorkerID() string {
	d := i.m.Data
	if len(d) == 0 || d[0] != '{' {
		return ""
	}
	dec := json.NewDecoder(bytes.NewReader(d))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return ""
	}
	id, n := "", 0
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return ""
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return ""
		}
		if k, _ := t.(string); k == callerKey {
			n++
			if json.Unmarshal(v, &id) != nil {
				return ""
			}
		}
	}
	if n != 1 {
		return ""
	}
	return id
}

const callerKey = "_caller_worker_id"

// invocationContext is a handler's context: the context of the socket the
// invocation came on (cancelled when that socket dies, and by Shutdown),
// plus the invocation, in one allocation.
type invocationContext struct {
	context.Context
	inv Invocation
	w   *III // the worker serving it
}

type invocationKey struct{}

type workerKey struct{}

func (c *invocationContext) Value(key any) any {
	switch key {
	case invocationKey{}:
		return &c.inv
	case workerKey{}:
		return c.w
	}
	return c.Context.Value(key)
}

// workerFrom returns the worker serving the invocation of ctx, or nil.
func workerFrom(ctx context.Context) *III {
	if ctx == nil {
		return nil
	}
	w, _ := ctx.Value(workerKey{}).(*III)
	return w
}

// InvocationFromContext returns the invocation a handler's context belongs to.
func InvocationFromContext(ctx context.Context) (*Invocation, bool) {
	inv := invocationFrom(ctx)
	return inv, inv != nil
}

func invocationFrom(ctx context.Context) *Invocation {
	if ctx == nil {
		return nil
	}
	inv, _ := ctx.Value(invocationKey{}).(*Invocation)
	return inv
}

// MetadataFromContext returns the per-invocation metadata of a handler's
// context, or nil.
func MetadataFromContext(ctx context.Context) json.RawMessage {
	if inv := invocationFrom(ctx); inv != nil {
		return inv.Metadata()
	}
	return nil
}

// execute runs one inbound invocation on its invocation actor and replies
// once, on the socket it came from.
func (w *III) execute(t *invocation.Task) {
	m := t.Msg
	f := w.reg.Lookup(m.FunctionID)
	var (
		out json.RawMessage
		err error
		end func(*wire.InvocationResult)
	)
	if f != nil && f.Handler != nil {
		base := w.ctx
		if t.Sock != nil {
			base = t.Sock.Context() // the engine stops the invocation when its socket dies
		}
		ctx := &invocationContext{Context: base, inv: Invocation{m: m}, w: w}
		var hctx context.Context = ctx
		if w.tel != nil {
			hctx, end = w.tel.startInvocation(hctx, m)
		}
		out, err = callHandler(f.Handler, hctx, m)
	}
	// The result frame is taken once the handler has returned, so that a
	// running invocation does not hold one.
	rf := resultFrames.Get().(*resultFrame)
	res := &rf.InvocationResult
	*res = wire.InvocationResult{InvocationID: m.InvocationID, FunctionID: m.FunctionID,
		Traceparent: m.Traceparent, Baggage: m.Baggage}
	switch {
	case f == nil:
		msg := fmt.Sprintf("function %s is not registered on this worker", m.FunctionID)
		if w.draining.Load() {
			msg = fmt.Sprintf("function %s: this worker is draining", m.FunctionID)
		}
		res.Error = &wire.ErrorBody{Code: CodeFunctionNotFound, Message: msg}
	case f.Handler == nil:
		res.Error = &wire.ErrorBody{Code: CodeFunctionNotInvokable, Message: fmt.Sprintf("function %s is invoked over HTTP by the engine", m.FunctionID)}
	default:
		if err == nil {
			// The engine limits the whole frame, not the result alone.
			if res.Result = out; !wire.FrameFits(res, w.maxMessage) {
				res.Result = nil
				err = &InvocationError{Code: CodeInvocationFailed, Err: ErrPayloadTooLarge,
					Message: fmt.Sprintf("the frame of the result of %s (%d bytes) exceeds the engine's limit: the limit is %d bytes", m.FunctionID, len(out), w.maxMessage)}
			}
		}
		var panicStack []byte // declared apart from pe, which escapes: no allocation without an error
		if err != nil {
			var pe *panicError
			if errors.As(err, &pe) {
				w.log.Error("iii: handler panicked", "function", m.FunctionID, "panic", pe.value, "stack", string(pe.stack))
				panicStack = pe.stack
			}
			res.Error = errorBody(err, w.opts.SendPanicStacks)
			w.log.Debug("iii: handler returned an error", "function", m.FunctionID, "code", res.Error.Code, "err", err)
		}
		if end != nil {
			if panicStack != nil && res.Error.Stacktrace == "" {
				// The worker's own span keeps the stack the caller does not get.
				local, eb := *res, *res.Error
				eb.Stacktrace, local.Error = string(panicStack), &eb
				end(&local)
			} else {
				end(res)
			}
		}
	}
	if !m.HasInvocationID {
		rf.Release()
		return // the engine always sets one; without it nobody waits
	}
	// Never sent on a later socket: the engine stopped this invocation when
	// its socket died. (rf goes back to its pool once written.)
	if err := t.Sock.Send(context.Background(), rf); err != nil && !errors.Is(err, connection.ErrSocketClosed) {
		w.log.Warn("iii: cannot send an invocation result", "function", m.FunctionID, "err", err)
	}
}

// refuse replies at once that the worker is overloaded. It runs on the
// socket's read loop, so it never waits for room in the socket's queue:
// if there is none, the reply is dropped and the caller sees its timeout.
func (w *III) refuse(t *invocation.Task) {
	if !t.Msg.HasInvocationID || t.Sock == nil {
		return
	}
	rf := errorFrame(t.Msg, CodeWorkerOverloaded, fmt.Sprintf("function %s: the worker is overloaded (all handler slots busy, backlog full)", t.Msg.FunctionID))
	if !t.Sock.TrySend(rf) {
		rf.Release()
	}
}

// failed replies invocation_failed to an invocation whose executor did not
// return: it panicked outside the handler (say, in the Error method of the
// handler's error) or the handler called runtime.Goexit.
func (w *III) failed(t *invocation.Task, reason any) {
	if !t.Msg.HasInvocationID || t.Sock == nil {
		return
	}
	msg := fmt.Sprintf("function %s failed outside its handler: %v", t.Msg.FunctionID, reason)
	if reason == invocation.ErrGoexit {
		msg = fmt.Sprintf("function %s: the handler called runtime.Goexit instead of returning", t.Msg.FunctionID)
	}
	if err := t.Sock.Send(context.Background(), errorFrame(t.Msg, CodeInvocationFailed, msg)); err != nil && !errors.Is(err, connection.ErrSocketClosed) {
		w.log.Warn("iii: cannot send an invocation result", "function", t.Msg.FunctionID, "err", err)
	}
}

// errorFrame returns a pooled error reply to m.
func errorFrame(m *wire.InvokeFunction, code, msg string) *resultFrame {
	rf := resultFrames.Get().(*resultFrame)
	rf.InvocationResult = wire.InvocationResult{InvocationID: m.InvocationID, FunctionID: m.FunctionID,
		Traceparent: m.Traceparent, Baggage: m.Baggage, Error: &wire.ErrorBody{Code: code, Message: msg}}
	return rf
}

// resultFrame is a pooled invocationresult: the socket's writer releases it
// once encoded.
type resultFrame struct{ wire.InvocationResult }

var resultFrames = sync.Pool{New: func() any { return new(resultFrame) }}

// Release implements connection.Releaser.
func (f *resultFrame) Release() {
	f.InvocationResult = wire.InvocationResult{}
	resultFrames.Put(f)
}

// panicError is a recovered handler panic.
type panicError struct {
	value any
	stack []byte
}

func (p *panicError) Error() string { return fmt.Sprintf("panic: %v", p.value) }

// callHandler runs h, turning a panic into an error with its stack trace.
func callHandler(h func(context.Context, *wire.InvokeFunction) (json.RawMessage, error), ctx context.Context, m *wire.InvokeFunction) (out json.RawMessage, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &panicError{value: v, stack: debug.Stack()}
		}
	}()
	return h(ctx, m)
}

// errorBody turns a handler's error into the error of its reply: an
// *InvocationError or a *RemoteError (from a call the handler made) keeps
// its code; anything else is invocation_failed. A panic's stack, and the
// stack a *RemoteError brought from another worker, go out only when
// stacks is set (InitOptions.SendPanicStacks); an *InvocationError's
// Stacktrace, set by the handler itself, goes out as written.
func errorBody(err error, stacks bool) *wire.ErrorBody {
	var ie *InvocationError
	if errors.As(err, &ie) {
		code := ie.Code
		if code == "" {
			code = CodeInvocationFailed
		}
		return &wire.ErrorBody{Code: code, Message: ie.Message, Stacktrace: ie.Stacktrace}
	}
	var re *RemoteError
	if errors.As(err, &re) {
		eb := &wire.ErrorBody{Code: re.Code, Message: re.Message}
		if stacks {
			eb.Stacktrace = re.Stacktrace
		}
		return eb
	}
	var pe *panicError
	if errors.As(err, &pe) {
		eb := &wire.ErrorBody{Code: CodeInvocationFailed, Message: pe.Error()}
		if stacks {
			eb.Stacktrace = string(pe.stack)
		}
		return eb
	}
	return &wire.ErrorBody{Code: CodeInvocationFailed, Message: err.Error()}
}

// router takes what the connection does not handle itself.
type router struct{ w *III }

func (r router) Frame(s *connection.Socket, m wire.Message) {
	w := r.w
	switch m := m.(type) {
	case *wire.InvokeFunction:
		w.inbound.Dispatch(invocation.NewTask(s, m))
	case *wire.InvocationResult:
		if !w.pending.Complete(m) {
			w.log.Debug("iii: ignoring a result for an unknown invocation", "id", m.InvocationID, "function", m.FunctionID)
		}
	case *wire.RegisterTrigger, *wire.UnregisterTrigger, *wire.TriggerRegistrationResult, *wire.RegistrationRejected, *wire.Pong:
		w.reg.EngineFrame(s, m)
	default:
		w.log.Debug("iii: ignoring a frame", "type", m.Kind())
	}
}

func (r router) Opened(s *connection.Socket, done func()) { r.w.reg.Replay(s, done) }

func (r router) Closed(s *connection.Socket, err error) {
	r.w.pending.FailSocket(s, &connectionLostError{cause: err})
	r.w.reg.SocketClosed(s)
}

func (r router) Failed(err error) {
	if errors.Is(err, connection.ErrClosed) {
		err = ErrShutdown
	}
	r.w.pending.FailAll(err, false)
}

// schemaOf derives the JSON Schema of T, or nil for types that say nothing
// (interfaces and raw JSON).
func schemaOf[T any]() json.RawMessage {
	t := reflect.TypeFor[T]()
	if t.Kind() == reflect.Interface || t == reflect.TypeFor[json.RawMessage]() {
		return nil
	}
	// Inline definitions read best, but a recursive type cannot be inlined
	// (the reflector would recurse until the stack overflows): it gets
	// $defs and $refs, with the root type itself a $ref.
	r := jsonschema.Reflector{DoNotReference: true, ExpandedStruct: true}
	if recursive(t, nil, map[reflect.Type]bool{}) {
		r = jsonschema.Reflector{}
	}
	s := r.ReflectFromType(t)
	b, err := json.Marshal(s)
	if err != nil {
		return nil
	}
	return b
}

// recursive reports whether t contains itself (through fields, pointers,
// slices, arrays or maps), path being the types being walked and acyclic
// the types already found not to lead back to themselves (so that a type
// reached along many paths is walked once).
func recursive(t reflect.Type, path []reflect.Type, acyclic map[reflect.Type]bool) bool {
	if acyclic[t] {
		return false
	}
	for _, p := range path {
		if p == t {
			return true
		}
	}
	path = append(path, t)
	found := false
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Array:
		found = recursive(t.Elem(), path, acyclic)
	case reflect.Map:
		found = recursive(t.Key(), path, acyclic) || recursive(t.Elem(), path, acyclic)
	case reflect.Struct:
		for i := range t.NumField() {
			if f := t.Field(i); (f.IsExported() || f.Anonymous) && recursive(f.Type, path, acyclic) {
				found = true
				break
			}
		}
	}
	if !found {
		acyclic[t] = true
	}
	return found
}
