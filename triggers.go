package iii

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/iii-go/iii/connection/wire"
	"github.com/iii-go/iii/registry"
)

// TriggerBinding is one binding of a trigger type, as its provider sees it:
// when the trigger fires, the provider invokes FunctionID (see
// TriggerTypeRef.Fire).
type TriggerBinding[C any] struct {
	ID         string
	FunctionID string
	Config     C
	Metadata   json.RawMessage // delivered to the function with every fire
	// Namespace is the namespace FunctionID resolves in (engine v0.23):
	// Fire and FireVoid call it there. DefaultNamespace when the engine
	// named none (always, with an engine v0.22.1).
	Namespace string
	// TriggerNamespace is the namespace of this provider the binding was
	// filed under: DefaultNamespace, or the namespace of the worker that
	// registered the trigger type.
	TriggerNamespace string
}

// TriggerHandler is the provider side of a trigger type. The engine asks
// the provider to start firing each binding any worker makes, and to stop
// when the binding goes away. The methods are called one at a time, in the
// engine's order, on the trigger type's own goroutine; each binding id is
// registered once even when the engine re-delivers it (after a reconnect).
//
// The contract of both methods:
//   - ctx is the worker's context, not a per-call one: it stays alive after
//     the method returns and ends when the worker shuts down (or fails).
//     Derive the context of the work a binding starts from it
//     (context.WithCancel), so that the work stops at Shutdown as well as
//     at UnregisterTrigger.
//   - They must not block: start the binding's work on a goroutine of its
//     own (a timer, a watcher) and return. While one runs, the type's other
//     bindings wait; Shutdown waits for it at most ShutdownTimeout, then
//     abandons it.
//   - To fire, the work calls the TriggerTypeRef's Fire or FireVoid with
//     b.ID. The ref is RegisterTriggerType's result, which a binding may
//     reach before the variable holding it is set: hand it over through a
//     field set after RegisterTriggerType returns, read once a channel
//     closed then says it is ready (see the timer example of
//     RegisterTriggerType). Alternatively, III.Trigger with b.FunctionID
//     and b.Metadata is what Fire does.
//   - A binding is live from the start of RegisterTrigger until
//     UnregisterTrigger begins; Fire on a binding that is not live returns
//     an error matching ErrNotRegistered.
//   - A panic refuses the binding (RegisterTrigger) or is logged
//     (UnregisterTrigger); the worker keeps running.
type TriggerHandler[C any] interface {
	// RegisterTrigger starts firing b. An error refuses the binding: the
	// engine parks it and tells the worker that made it. An
	// *InvocationError chooses the error code; other errors are reported
	// as trigger_registration_failed.
	RegisterTrigger(ctx context.Context, b TriggerBinding[C]) error
	// UnregisterTrigger stops firing b.
	UnregisterTrigger(ctx context.Context, b TriggerBinding[C]) error
}

// TriggerHandlerFuncs adapts two functions to a TriggerHandler; either may be nil.
type TriggerHandlerFuncs[C any] struct {
	Register   func(ctx context.Context, b TriggerBinding[C]) error
	Unregister func(ctx context.Context, b TriggerBinding[C]) error
}

// RegisterTrigger implements TriggerHandler.
func (f TriggerHandlerFuncs[C]) RegisterTrigger(ctx context.Context, b TriggerBinding[C]) error {
	if f.Register == nil {
		return nil
	}
	return f.Register(ctx, b)
}

// UnregisterTrigger implements TriggerHandler.
func (f TriggerHandlerFuncs[C]) UnregisterTrigger(ctx context.Context, b TriggerBinding[C]) error {
	if f.Unregister == nil {
		return nil
	}
	return f.Unregister(ctx, b)
}

// TriggerTypeRef is a trigger type this worker provides. C is the type of
// a binding's configuration, R the type of the payload a fire delivers.
type TriggerTypeRef[C, R any] struct {
	w *III
	t *registry.TriggerType
	p *provider[C]
}

// RegisterTriggerType makes this worker the provider of trigger type id.
// JSON Schemas of C and R are sent as the type's configuration and request
// formats. A binding whose config does not decode into C is refused with
// trigger_registration_failed, as is one whose registration panics.
func RegisterTriggerType[C, R any](w *III, id, description string, handler TriggerHandler[C]) (*TriggerTypeRef[C, R], error) {
	if err := w.err(); err != nil {
		return nil, err
	}
	if id == "" {
		return nil, fmt.Errorf("%w: empty trigger type id", ErrInvalidID)
	}
	if handler == nil {
		return nil, fmt.Errorf("%w: nil handler for trigger type %q", ErrInvalidID, id)
	}
	p := &provider[C]{h: handler, w: w, live: map[string]TriggerBinding[C]{}}
	t := &registry.TriggerType{
		Frame: &wire.RegisterTriggerType{ID: id, Description: description,
			TriggerRequestFormat: schemaOf[C](), CallRequestFormat: schemaOf[R]()},
		Provider: p, SendStacks: w.opts.SendPanicStacks,
	}
	if err := w.reg.AddTriggerType(w.ctx, t); err != nil {
		return nil, w.reqErr(err)
	}
	return &TriggerTypeRef[C, R]{w: w, t: t, p: p}, nil
}

// ID returns the trigger type's id.
func (r *TriggerTypeRef[C, R]) ID() string { return r.t.Frame.ID }

// Bindings returns the bindings this provider is firing, oldest first.
func (r *TriggerTypeRef[C, R]) Bindings() []TriggerBinding[C] {
	ms := r.t.Bindings()
	out := make([]TriggerBinding[C], 0, len(ms))
	r.p.mu.Lock()
	defer r.p.mu.Unlock()
	for _, m := range ms {
		if b, ok := r.p.live[m.ID]; ok {
			out = append(out, b)
		}
	}
	return out
}

// binding returns the live binding id.
func (r *TriggerTypeRef[C, R]) binding(id string) (TriggerBinding[C], error) {
	r.p.mu.Lock()
	defer r.p.mu.Unlock()
	b, ok := r.p.live[id]
	if !ok {
		return b, fmt.Errorf("%w: trigger %q of type %q", ErrNotRegistered, id, r.t.Frame.ID)
	}
	return b, nil
}

// Fire invokes the function of binding bindingID, in the binding's
// namespace, with payload and the binding's metadata, and waits for its
// result.
func (r *TriggerTypeRef[C, R]) Fire(ctx context.Context, bindingID string, payload R) (json.RawMessage, error) {
	b, err := r.binding(bindingID)
	if err != nil {
		return nil, err
	}
	return r.w.Trigger(ctx, TriggerRequest{FunctionID: b.FunctionID, Payload: payload, Metadata: b.Metadata, Namespace: b.Namespace})
}

// FireVoid invokes the function of binding bindingID without waiting.
func (r *TriggerTypeRef[C, R]) FireVoid(ctx context.Context, bindingID string, payload R) error {
	b, err := r.binding(bindingID)
	if err != nil {
		return err
	}
	_, err = r.w.Trigger(ctx, TriggerRequest{FunctionID: b.FunctionID, Payload: payload, Metadata: b.Metadata, Namespace: b.Namespace, Action: Void()})
	return err
}

// RegisterTrigger binds functionID to this trigger type with a typed config.
func (r *TriggerTypeRef[C, R]) RegisterTrigger(functionID string, config C, metadata any) (*Trigger, error) {
	return r.w.RegisterTrigger(TriggerInput{Type: r.t.Frame.ID, FunctionID: functionID, Config: config, Metadata: metadata})
}

// RegisterTriggerFunction registers a function that takes the trigger
// type's call payload R, the function to bind to ref's bindings (the Rust
// SDK's TriggerTypeRef::register_function). It is RegisterFunction with R
// checked by the compiler; bind it with ref.RegisterTrigger.
func RegisterTriggerFunction[C, R, Resp any](ref *TriggerTypeRef[C, R], id string, handler func(context.Context, R) (Resp, error), opts ...FunctionOption) (*FunctionRef, error) {
	return RegisterFunction(ref.w, id, handler, opts...)
}

// Unregister stops providing the trigger type; see III.UnregisterTriggerType.
func (r *TriggerTypeRef[C, R]) Unregister() error { return r.w.UnregisterTriggerType(r.t.Frame.ID) }

// UnregisterTriggerType stops providing trigger type id: the handler's
// UnregisterTrigger runs for every live binding, and bindings the engine
// sends later are refused with trigger_type_not_found. Engine v0.22.1 has no
// message to withdraw a trigger type, so the engine keeps listing it, and
// keeps its bindings parked for it, until this worker disconnects.
//
// It returns once every binding has ended, except when called from one of
// this worker's trigger providers (its RegisterTrigger or
// UnregisterTrigger): then it returns once the type is withdrawn, and the
// bindings end after that callback returns (a provider's callbacks run one
// at a time, so waiting for them there would wait for ever).
func (w *III) UnregisterTriggerType(id string) error {
	if err := w.err(); err != nil {
		return err
	}
	if w.providers.Current() {
		return w.reqErr(w.reg.RemoveTriggerTypeDetached(w.ctx, id))
	}
	return w.reqErr(w.reg.RemoveTriggerType(w.ctx, id))
}

// provider adapts a TriggerHandler to the registry's Provider.
type provider[C any] struct {
	h    TriggerHandler[C]
	w    *III
	mu   sync.Mutex
	live map[string]TriggerBinding[C]
}

func (p *provider[C]) Register(ctx context.Context, m *wire.RegisterTrigger) *wire.ErrorBody {
	b := TriggerBinding[C]{ID: m.ID, FunctionID: m.FunctionID, Metadata: m.Metadata,
		Namespace: cmp.Or(m.Namespace, DefaultNamespace), TriggerNamespace: cmp.Or(m.TriggerNamespace, DefaultNamespace)}
	if wire.IsNull(b.Metadata) {
		b.Metadata = nil
	}
	if !wire.IsNull(m.Config) {
		if err := json.Unmarshal(m.Config, &b.Config); err != nil {
			return &wire.ErrorBody{Code: CodeTriggerRegistrationFailed,
				Message: fmt.Sprintf("config of trigger %s does not decode into %T: %v", m.ID, b.Config, err)}
		}
	}
	// Live from the start: a provider may fire a binding from inside its
	// RegisterTrigger (or from a goroutine it starts there).
	p.mu.Lock()
	p.live[m.ID] = b
	p.mu.Unlock()
	err := func() (err error) {
		defer func() {
			if v := recover(); v != nil {
				p.forget(m.ID)
				panic(v) // the type actor turns it into a refusal
			}
		}()
		return p.h.RegisterTrigger(ctx, b)
	}()
	if err != nil {
		p.forget(m.ID)
		eb := errorBody(err, p.w.opts.SendPanicStacks)
		if eb.Code == CodeInvocationFailed {
			eb.Code = CodeTriggerRegistrationFailed
		}
		return eb
	}
	return nil
}

func (p *provider[C]) forget(id string) {
	p.mu.Lock()
	delete(p.live, id)
	p.mu.Unlock()
}

func (p *provider[C]) Unregister(ctx context.Context, m *wire.RegisterTrigger) {
	p.mu.Lock()
	b, ok := p.live[m.ID]
	delete(p.live, m.ID)
	p.mu.Unlock()
	if !ok {
		return
	}
	if err := p.h.UnregisterTrigger(ctx, b); err != nil {
		p.w.log.Warn("iii: a trigger provider failed to unregister a binding", "trigger", m.ID, "type", m.TriggerType, "err", err)
	}
}

// TriggerInput describes a binding of a function to a trigger type.
type TriggerInput struct {
	// Type is the trigger type id (e.g. "http", "cron", or a worker's own).
	Type string
	// FunctionID is the function the trigger invokes.
	FunctionID string
	// Config is the type-specific configuration (any JSON value).
	Config any
	// Metadata is delivered to the function with every fire (any JSON value).
	Metadata any
	// ID is the binding's id; empty means a new UUID.
	ID string
	// Namespace is the namespace FunctionID resolves in when the trigger
	// fires (engine v0.23). Empty means the worker's (InitOptions.Namespace):
	// the namespace its own functions live in.
	Namespace string
	// TriggerNamespace is the namespace whose provider of Type serves the
	// binding, and only that one (engine v0.23). Empty lets the engine
	// choose: the worker's namespace if a provider of Type is there, else
	// the default namespace (where the engine's own types live).
	TriggerNamespace string
	// OnError, if set, is called (on its own goroutine) with each refusal
	// of the binding by the engine or the type's provider.
	OnError func(t *Trigger, err *TriggerError)
}

// TriggerError is a refusal of a binding by the engine or the provider of
// its type. Errors are observable on the Trigger (Err, WaitError) and in
// the log; the engine parks a refused binding and re-delivers it when the
// type is registered again.
type TriggerError struct {
	TriggerID   string
	TriggerType string
	FunctionID  string
	ErrorBody
}

// Error implements the error interface.
func (e *TriggerError) Error() string {
	return fmt.Sprintf("iii: trigger %s (%s -> %s) refused: %s: %s", e.TriggerID, e.TriggerType, e.FunctionID, e.Code, e.Message)
}

// Trigger is a binding this worker made. It is re-registered, with the same
// id, on every reconnect, until Unregister.
type Trigger struct {
	w       *III
	id      string
	typ     string
	fn      string
	onError func(*Trigger, *TriggerError)
	owned   *FunctionRef // HandleHTTP's function, unregistered with the binding

	mu      sync.Mutex
	err     *TriggerError
	refused chan struct{} // closed at each refusal, then replaced
}

// ID returns the binding's id.
func (t *Trigger) ID() string { return t.id }

// Type returns the trigger type id.
func (t *Trigger) Type() string { return t.typ }

// FunctionID returns the function the binding invokes.
func (t *Trigger) FunctionID() string { return t.fn }

// Err returns the latest refusal of the binding, or nil if none came.
func (t *Trigger) Err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.err == nil {
		return nil
	}
	return t.err
}

// WaitError returns the binding's refusal: at once if one came already,
// else when one comes; or ctx's error. The engine acknowledges nothing on
// success, so a refusal is the only news there can be.
func (t *Trigger) WaitError(ctx context.Context) error {
	t.mu.Lock()
	ch, err := t.refused, t.err
	t.mu.Unlock()
	if err != nil {
		return err
	}
	select {
	case <-ch:
		return t.Err()
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (t *Trigger) result(m *wire.TriggerRegistrationResult) {
	if m.Error == nil {
		return
	}
	te := &TriggerError{TriggerID: m.ID, TriggerType: m.TriggerType, FunctionID: m.FunctionID,
		ErrorBody: ErrorBody{Code: m.Error.Code, Message: m.Error.Message, Stacktrace: m.Error.Stacktrace}}
	t.mu.Lock()
	t.err = te
	close(t.refused)
	t.refused = make(chan struct{})
	t.mu.Unlock()
	if t.onError != nil {
		go t.onError(t, te)
	}
}

// Unregister removes the binding from the engine and from this worker.
// For the route of HandleHTTP, it removes its function too.
func (t *Trigger) Unregister() error {
	if err := t.w.err(); err != nil {
		return err
	}
	err := t.w.reqErr(t.w.reg.RemoveTrigger(t.w.ctx, t.id))
	if t.owned != nil && err == nil {
		err = t.owned.Unregister()
	}
	return err
}

// RegisterTrigger binds a function to a trigger type. The engine accepts
// the binding even when the type has no provider yet (it activates when one
// registers) or the function does not exist yet (it is resolved at fire
// time). Refusals arrive later, on the returned Trigger.
func (w *III) RegisterTrigger(in TriggerInput) (*Trigger, error) {
	if err := w.err(); err != nil {
		return nil, err
	}
	if in.Type == "" || in.FunctionID == "" {
		return nil, fmt.Errorf("%w: a trigger needs a type and a function id", ErrInvalidID)
	}
	if err := checkNamespace(in.Namespace, "TriggerInput.Namespace"); err != nil {
		return nil, err
	}
	if err := checkNamespace(in.TriggerNamespace, "TriggerInput.TriggerNamespace"); err != nil {
		return nil, err
	}
	id := in.ID
	if id == "" {
		id = wire.NewUUID().String()
	}
	cfg, err := encodeJSON(in.Config)
	if err != nil {
		return nil, fmt.Errorf("trigger config: %w", err)
	}
	frame := &wire.RegisterTrigger{ID: id, TriggerType: in.Type, FunctionID: in.FunctionID, Config: cfg,
		Namespace: wireNamespace(cmp.Or(in.Namespace, w.ns)), TriggerNamespace: in.TriggerNamespace}
	if in.Metadata != nil {
		if frame.Metadata, err = encodeJSON(in.Metadata); err != nil {
			return nil, fmt.Errorf("trigger metadata: %w", err)
		}
	}
	t := &Trigger{w: w, id: id, typ: in.Type, fn: in.FunctionID, onError: in.OnError, refused: make(chan struct{})}
	if err := w.reg.AddTrigger(w.ctx, &registry.Trigger{Frame: frame, OnResult: t.result}); err != nil {
		return nil, w.reqErr(err)
	}
	return t, nil
}

// The trigger types the engine provides.
const (
	// TriggerWorkersAvailable fires on worker connects, disconnects and
	// metadata updates, with a WorkersAvailableEvent.
	TriggerWorkersAvailable = "engine::workers-available"
	// TriggerFunctionsAvailable fires when the function table changes (the
	// engine polls every 5 s), with a FunctionsAvailableEvent.
	TriggerFunctionsAvailable = "engine::functions-available"
)

// WorkersAvailableEvent is the payload of engine::workers-available.
type WorkersAvailableEvent struct {
	// Event is "worker_connected", "worker_disconnected" or "worker_metadata_updated".
	Event    string `json:"event"`
	WorkerID string `json:"worker_id"`
}

// FunctionsAvailableEvent is the payload of engine::functions-available.
type FunctionsAvailableEvent struct {
	Event     string         `json:"event"` // "functions_changed"
	Functions []FunctionInfo `json:"functions"`
}

// Subscription is a function registered to receive an engine trigger, and
// its binding.
type Subscription struct {
	Function *FunctionRef
	Trigger  *Trigger
}

// Unregister removes the binding and the function.
func (s *Subscription) Unregister() error {
	terr, ferr := s.Trigger.Unregister(), s.Function.Unregister()
	if terr != nil && ferr != nil {
		return fmt.Errorf("%w; %w", terr, ferr) // one line, unlike errors.Join
	}
	return cmp.Or(terr, ferr)
}

// OnWorkersAvailable registers functionID to receive engine::workers-available events.
func (w *III) OnWorkersAvailable(functionID string, handler func(context.Context, WorkersAvailableEvent) error) (*Subscription, error) {
	return subscribe(w, TriggerWorkersAvailable, functionID, handler)
}

// OnFunctionsAvailable registers functionID to receive engine::functions-available events.
func (w *III) OnFunctionsAvailable(functionID string, handler func(context.Context, FunctionsAvailableEvent) error) (*Subscription, error) {
	return subscribe(w, TriggerFunctionsAvailable, functionID, handler)
}

func subscribe[E any](w *III, triggerType, functionID string, handler func(context.Context, E) error) (*Subscription, error) {
	f, err := RegisterFunction(w, functionID, func(ctx context.Context, e E) (any, error) { return nil, handler(ctx, e) })
	if err != nil {
		return nil, err
	}
	t, err := w.RegisterTrigger(TriggerInput{Type: triggerType, FunctionID: functionID, Config: struct{}{}})
	if err != nil {
		_ = f.Unregister()
		return nil, err
	}
	return &Subscription{Function: f, Trigger: t}, nil
}
