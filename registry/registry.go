// Package registry is the registry actor of an iii worker: it keeps the
// functions, trigger types and triggers this worker registered, sends each
// registration to the engine once per connection, replays them all, in
// protocol order, on every (re)connect, and keeps a lock-free view of the
// functions for the inbound hot path.
//
// It is an implementation package of the iii SDK (github.com/iii-go/iii),
// importable for the SDK's own use: it follows the SDK's version (iii.Version)
// and its API may change in any release. Programs use the root package iii,
// which documents every type they need.
package registry

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/iii-go/iii/actors"
	"github.com/iii-go/iii/connection"
	"github.com/iii-go/iii/connection/wire"
	"github.com/iii-go/iii/internal/faults"
	"github.com/iii-go/iii/internal/goid"
)

// Errors of registration.
var (
	// ErrDuplicate: the id is registered already by this worker.
	ErrDuplicate = errors.New("iii: already registered")
	// ErrNotFound: the id is not registered by this worker.
	ErrNotFound = errors.New("iii: not registered")
)

// Handler runs one invocation of a function and returns its JSON result.
type Handler func(ctx context.Context, m *wire.InvokeFunction) (json.RawMessage, error)

// Function is a registered function: what is sent to the engine, and the
// handler that serves it (nil for an HTTP-invoked function).
type Function struct {
	Frame   *wire.RegisterFunction
	Handler Handler
	// OnRejected, if set, receives the engine's registrationrejected for
	// it (a function namespace conflict); it runs on the registry actor
	// and must not block.
	OnRejected func(*wire.RegistrationRejected)
}

// Trigger is a binding this worker made.
type Trigger struct {
	Frame *wire.RegisterTrigger
	// OnResult receives the engine's triggerregistrationresult for it (the
	// engine only sends failures).
	OnResult func(*wire.TriggerRegistrationResult)
}

// Registry is the handle to the registry actor.
type Registry struct {
	sys   *actors.System
	pid   *actor.PID
	funcs sync.Map // id → *Function: st.funcs for Lookup, updated one entry at a time
	st    *state
	types sync.WaitGroup // goroutines of the trigger type actors
}

// state outlives restarts of the actor.
type state struct {
	log      *slog.Logger
	seq      uint64
	funcs    map[string]entry[*Function]
	types    map[string]entry[*TriggerType]
	triggers map[string]entry[*Trigger]
	sock     *connection.Socket
	ctx      context.Context
	user     *goid.Set          // holds the trigger type actors' goroutines
	sweepOn  *connection.Socket // a replay's ping was sent on it; its pong ends stale bindings
}

type entry[T any] struct {
	seq uint64
	v   T
}

// New starts the registry actor under sys. The goroutines of the trigger
// type actors, which run the providers' code, are held in user (if not nil).
func New(ctx context.Context, sys *actors.System, log *slog.Logger, user *goid.Set) (*Registry, error) {
	r := &Registry{sys: sys, st: &state{log: log, ctx: ctx, user: user,
		funcs: map[string]entry[*Function]{}, types: map[string]entry[*TriggerType]{}, triggers: map[string]entry[*Trigger]{}}}
	pid, err := sys.SpawnCritical("registry", actor.PropsFromProducer(func() actor.Actor { return &registryActor{r: r} },
		actor.WithDispatcher(sys.Dispatcher)))
	if err != nil {
		return nil, err
	}
	r.pid = pid
	return r, nil
}

// Lookup returns the function registered under id, without locking.
func (r *Registry) Lookup(id string) *Function {
	v, _ := r.funcs.Load(id)
	f, _ := v.(*Function)
	return f
}

// Wait waits for the goroutines of the trigger type actors to exit, after
// the actor system stopped them.
func (r *Registry) Wait() { r.types.Wait() }

// TriggerType returns the trigger type registered under id, if any.
func (r *Registry) TriggerType(ctx context.Context, id string) *TriggerType {
	f := actors.NewFuture[*TriggerType]()
	v, _ := actors.Request(ctx, r.sys, r.pid, f, &getTriggerType{id: id, reply: f})
	return v
}

// AddFunction registers f; it fails with ErrDuplicate if its id is taken.
func (r *Registry) AddFunction(ctx context.Context, f *Function) error {
	fut := actors.NewFuture[struct{}]()
	_, err := actors.Request(ctx, r.sys, r.pid, fut, &addFunction{f: f, reply: fut})
	return err
}

// RemoveFunction unregisters the function id.
func (r *Registry) RemoveFunction(ctx context.Context, id string) error {
	fut := actors.NewFuture[struct{}]()
	_, err := actors.Request(ctx, r.sys, r.pid, fut, &removeFunction{id: id, reply: fut})
	return err
}

// Functions returns the ids of the registered functions, in registration order.
func (r *Registry) Functions(ctx context.Context) []string {
	fut := actors.NewFuture[[]string]()
	ids, _ := actors.Request(ctx, r.sys, r.pid, fut, &listFunctions{reply: fut})
	return ids
}

// AddTriggerType registers t; it fails with ErrDuplicate if its id is taken.
func (r *Registry) AddTriggerType(ctx context.Context, t *TriggerType) error {
	fut := actors.NewFuture[struct{}]()
	_, err := actors.Request(ctx, r.sys, r.pid, fut, &addTriggerType{t: t, reply: fut})
	return err
}

// RemoveTriggerType forgets the trigger type id locally. Engine v0.22.1
// has no message for it: the engine keeps the type until this worker's
// connection closes, and bindings it sends meanwhile are refused with
// trigger_type_not_found.
func (r *Registry) RemoveTriggerType(ctx context.Context, id string) error {
	return r.removeTriggerType(ctx, id, false)
}

// RemoveTriggerTypeDetached is RemoveTriggerType for a caller that may be a
// trigger type actor itself (a provider's callback): it returns once the
// type is out of the registry, and the type's bindings end after that,
// when its actor gets to them (waiting for them from the actor's own
// goroutine would wait for ever).
func (r *Registry) RemoveTriggerTypeDetached(ctx context.Context, id string) error {
	return r.removeTriggerType(ctx, id, true)
}

func (r *Registry) removeTriggerType(ctx context.Context, id string, detached bool) error {
	fut := actors.NewFuture[struct{}]()
	_, err := actors.Request(ctx, r.sys, r.pid, fut, &removeTriggerType{id: id, reply: fut, detached: detached})
	return err
}

// AddTrigger registers the binding t.
func (r *Registry) AddTrigger(ctx context.Context, t *Trigger) error {
	fut := actors.NewFuture[struct{}]()
	_, err := actors.Request(ctx, r.sys, r.pid, fut, &addTrigger{t: t, reply: fut})
	return err
}

// RemoveTrigger unregisters the binding id.
func (r *Registry) RemoveTrigger(ctx context.Context, id string) error {
	fut := actors.NewFuture[struct{}]()
	_, err := actors.Request(ctx, r.sys, r.pid, fut, &removeTrigger{id: id, reply: fut})
	return err
}

// Replay makes s the socket for registrations: it queues every trigger
// type, then every function, then every trigger, in registration order, and
// calls done. Registrations made afterwards go to s directly.
func (r *Registry) Replay(s *connection.Socket, done func()) {
	r.sys.Send(r.pid, &replay{s: s, done: done})
}

// The SDK's supervision tests make the registry actor ("registry") or the
// actor of a trigger type ("triggertype", with its id) panic.
func init() {
	faults.Set("registry", func(target any, _ string) {
		r := target.(*Registry)
		r.sys.Send(r.pid, &crash{})
	})
	faults.Set("triggertype", func(target any, id string) {
		r := target.(*Registry)
		if t := r.TriggerType(context.Background(), id); t != nil {
			r.sys.Send(t.pid, &crashType{})
		}
	})
}

// SocketClosed tells the registry s is gone; registrations wait for the next replay.
func (r *Registry) SocketClosed(s *connection.Socket) { r.sys.Send(r.pid, &socketClosed{s: s}) }

// EngineFrame hands the registry a frame from the engine: a
// registertrigger or unregistertrigger for a type this worker provides, a
// triggerregistrationresult for a binding it made, a registrationrejected,
// or a pong.
func (r *Registry) EngineFrame(s *connection.Socket, m wire.Message) {
	r.sys.Send(r.pid, &engineFrame{s: s, m: m})
}

// Messages of the registry actor.
type (
	addFunction struct {
		f     *Function
		reply *actors.Future[struct{}]
	}
	removeFunction struct {
		id    string
		reply *actors.Future[struct{}]
	}
	listFunctions  struct{ reply *actors.Future[[]string] }
	addTriggerType struct {
		t     *TriggerType
		reply *actors.Future[struct{}]
	}
	removeTriggerType struct {
		id       string
		reply    *actors.Future[struct{}]
		detached bool // reply once the type is out of the registry, not once its bindings ended
	}
	getTriggerType struct {
		id    string
		reply *actors.Future[*TriggerType]
	}
	addTrigger struct {
		t     *Trigger
		reply *actors.Future[struct{}]
	}
	removeTrigger struct {
		id    string
		reply *actors.Future[struct{}]
	}
	replay struct {
		s    *connection.Socket
		done func()
	}
	socketClosed struct{ s *connection.Socket }
	crash        struct{}
	engineFrame  struct {
		s *connection.Socket
		m wire.Message
	}
)

// registryActor owns the registrations.
//
// Supervision policy: restart, keeping the registrations (they live in
// state, outside the instance). A restart republishes the function
// snapshot, which a panic may have left behind the map; the socket for
// registrations is kept, and the next replay resends everything anyway.
// The registry is critical: if it stops, the worker fails.
type registryActor struct{ r *Registry }

func (a *registryActor) Receive(ctx actor.Context) {
	r, st := a.r, a.r.st
	switch m := ctx.Message().(type) {
	case *actor.Restarting:
		r.publish()
	case *crash:
		panic("iii: registry actor crash requested")
	case *addFunction:
		id := m.f.Frame.ID
		if _, ok := st.funcs[id]; ok {
			m.reply.Complete(struct{}{}, fmt.Errorf("%w: function %q", ErrDuplicate, id))
			return
		}
		st.seq++
		st.funcs[id] = entry[*Function]{st.seq, m.f}
		r.funcs.Store(id, m.f)
		st.send(m.f.Frame)
		m.reply.Complete(struct{}{}, nil)
	case *removeFunction:
		if _, ok := st.funcs[m.id]; !ok {
			m.reply.Complete(struct{}{}, fmt.Errorf("%w: function %q", ErrNotFound, m.id))
			return
		}
		delete(st.funcs, m.id)
		r.funcs.Delete(m.id)
		st.send(&wire.UnregisterFunction{ID: m.id})
		m.reply.Complete(struct{}{}, nil)
	case *listFunctions:
		m.reply.Complete(orderedIDs(st.funcs), nil)
	case *addTriggerType:
		id := m.t.Frame.ID
		if _, ok := st.types[id]; ok {
			m.reply.Complete(struct{}{}, fmt.Errorf("%w: trigger type %q", ErrDuplicate, id))
			return
		}
		if err := spawnTypeActor(st.ctx, r.sys, st.log, m.t, &r.types, st.user); err != nil {
			m.reply.Complete(struct{}{}, err)
			return
		}
		st.seq++
		st.types[id] = entry[*TriggerType]{st.seq, m.t}
		st.send(m.t.Frame)
		m.reply.Complete(struct{}{}, nil)
	case *removeTriggerType:
		t, ok := st.types[m.id]
		if !ok {
			m.reply.Complete(struct{}{}, fmt.Errorf("%w: trigger type %q", ErrNotFound, m.id))
			return
		}
		delete(st.types, m.id)
		// The engine has no message for this (v0.22.1): it keeps the type
		// until the connection closes; bindings it sends meanwhile get
		// trigger_type_not_found. Locally, every binding ends now.
		if m.detached {
			r.sys.Send(t.v.pid, &retireType{})
			m.reply.Complete(struct{}{}, nil)
			return
		}
		r.sys.Send(t.v.pid, &retireType{reply: m.reply})
	case *getTriggerType:
		m.reply.Complete(st.types[m.id].v, nil)
	case *addTrigger:
		id := m.t.Frame.ID
		if _, ok := st.triggers[id]; ok {
			m.reply.Complete(struct{}{}, fmt.Errorf("%w: trigger %q", ErrDuplicate, id))
			return
		}
		st.seq++
		st.triggers[id] = entry[*Trigger]{st.seq, m.t}
		st.send(m.t.Frame)
		m.reply.Complete(struct{}{}, nil)
	case *removeTrigger:
		t, ok := st.triggers[m.id]
		if !ok {
			m.reply.Complete(struct{}{}, fmt.Errorf("%w: trigger %q", ErrNotFound, m.id))
			return
		}
		delete(st.triggers, m.id)
		st.send(&wire.UnregisterTrigger{ID: m.id, TriggerType: t.v.Frame.TriggerType})
		m.reply.Complete(struct{}{}, nil)
	case *replay:
		st.sock = m.s
		for _, t := range ordered(st.types) {
			st.send(t.Frame)
		}
		for _, f := range ordered(st.funcs) {
			st.send(f.Frame)
		}
		for _, t := range ordered(st.triggers) {
			st.send(t.Frame)
		}
		if len(st.types) > 0 {
			// The engine answers a ping after everything it sends in reply
			// to the frames before it, re-delivered bindings included: its
			// pong marks the end of the re-delivery.
			st.sweepOn = m.s
			st.send(&wire.Ping{})
		}
		m.done()
	case *socketClosed:
		if st.sock == m.s {
			st.sock = nil
		}
	case *engineFrame:
		r.engineFrame(m.s, m.m)
	}
}

// publish makes the Lookup view match the functions again, after a panic
// may have left it behind.
func (r *Registry) publish() {
	r.funcs.Range(func(k, _ any) bool {
		if _, ok := r.st.funcs[k.(string)]; !ok {
			r.funcs.Delete(k)
		}
		return true
	})
	for id, e := range r.st.funcs {
		r.funcs.Store(id, e.v)
	}
}

// send queues m on the current socket; without one, the next replay sends it.
func (st *state) send(m wire.Message) {
	if st.sock == nil {
		return
	}
	if err := st.sock.Send(st.ctx, m); err != nil {
		st.sock = nil // it died; its replacement replays everything
	}
}

func (r *Registry) engineFrame(s *connection.Socket, m wire.Message) {
	st := r.st
	switch m := m.(type) {
	case *wire.RegisterTrigger:
		t := st.types[m.TriggerType].v
		if t == nil {
			_ = s.TrySend(&wire.TriggerRegistrationResult{ID: m.ID, TriggerType: m.TriggerType, FunctionID: m.FunctionID,
				Error: &wire.ErrorBody{Code: "trigger_type_not_found", Message: fmt.Sprintf("trigger type %q is not provided by this worker", m.TriggerType)}})
			return
		}
		r.sys.Send(t.pid, &bindTrigger{s: s, m: m, gen: s.Gen()})
	case *wire.UnregisterTrigger:
		if t := st.types[m.TriggerType].v; t != nil {
			r.sys.Send(t.pid, &unbindTrigger{m: m})
		}
	case *wire.Pong:
		if st.sweepOn == s {
			st.sweepOn = nil
			for _, e := range st.types {
				r.sys.Send(e.v.pid, &sweepBindings{gen: s.Gen()})
			}
		}
	case *wire.TriggerRegistrationResult:
		t := st.triggers[m.ID].v
		if t == nil {
			st.log.Warn("iii: registration result for an unknown trigger", "id", m.ID)
			return
		}
		if m.Error != nil {
			st.log.Error("iii: the engine refused a trigger", "id", m.ID, "type", m.TriggerType,
				"function", m.FunctionID, "code", m.Error.Code, "message", m.Error.Message)
		}
		if t.OnResult != nil {
			t.OnResult(m)
		}
	case *wire.RegistrationRejected:
		st.log.Error("iii: the engine refused a function registration", "function", m.FunctionID,
			"code", m.Code, "namespace", m.Namespace, "owner", m.OwnerWorkerID)
		if f := st.funcs[m.FunctionID].v; f != nil && f.OnRejected != nil {
			f.OnRejected(m)
		}
	}
}

func ordered[T any](m map[string]entry[T]) []T {
	es := make([]entry[T], 0, len(m))
	for _, e := range m {
		es = append(es, e)
	}
	slices.SortFunc(es, func(a, b entry[T]) int { return cmp.Compare(a.seq, b.seq) })
	out := make([]T, len(es))
	for i, e := range es {
		out[i] = e.v
	}
	return out
}

func orderedIDs(m map[string]entry[*Function]) []string {
	fs := ordered(m)
	ids := make([]string, len(fs))
	for i, f := range fs {
		ids[i] = f.Frame.ID
	}
	return ids
}
