package registry

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/iii-go/iii/actors"
	"github.com/iii-go/iii/connection"
	"github.com/iii-go/iii/connection/wire"
	"github.com/iii-go/iii/internal/goid"
)

// Provider is the user side of a trigger type this worker provides. Its
// methods are called on the trigger type's own actor, one at a time, in the
// order the engine sent the bindings.
type Provider interface {
	// Register starts firing binding b; an error refuses it.
	Register(ctx context.Context, b *wire.RegisterTrigger) *wire.ErrorBody
	// Unregister stops firing binding b (as it was registered).
	Unregister(ctx context.Context, b *wire.RegisterTrigger)
}

// TriggerType is a trigger type this worker provides.
type TriggerType struct {
	Frame    *wire.RegisterTriggerType
	Provider Provider
	// SendStacks puts the Go stack of a panic of the provider's Register
	// into the refusal the engine relays to the binding's worker; without
	// it the refusal carries the panic value only (the stack is logged).
	SendStacks bool

	pid      *actor.PID
	bindings atomic.Pointer[[]*wire.RegisterTrigger] // snapshot, in registration order
}

// Bindings returns the bindings this provider is firing.
func (t *TriggerType) Bindings() []*wire.RegisterTrigger {
	if p := t.bindings.Load(); p != nil {
		return *p
	}
	return nil
}

// Messages of a trigger type actor.
type (
	bindTrigger struct {
		s   *connection.Socket
		m   *wire.RegisterTrigger
		gen uint64
	}
	unbindTrigger struct{ m *wire.UnregisterTrigger }
	// sweepBindings ends the bindings the engine did not re-deliver on the
	// connection of generation gen: they were removed while this worker was
	// away.
	sweepBindings struct{ gen uint64 }
	// retireType unbinds everything; the type is no longer provided.
	retireType struct{ reply *actors.Future[struct{}] } // reply may be nil
	crashType  struct{}
)

// typeActor owns the live bindings of one trigger type and runs the
// provider's callbacks on a goroutine of its own.
//
// Supervision policy: restart, keeping the bindings. The provider's
// callbacks never panic into the actor (register and unregister recover),
// so a failure is a bug of ours; the bindings the provider is firing
// survive it (they live in bindings, outside the instance), and the
// restart reconciles their order and snapshot. The engine still counts on
// them, so forgetting them would leave the provider firing bindings the
// SDK no longer knows.
type typeActor struct {
	t   *TriggerType
	ctx context.Context
	log *slog.Logger
	d   *actors.OwnDispatcher
	*bindings
}

// bindings are the live bindings of a trigger type.
type bindings struct {
	live  map[string]*binding
	order []string
}

type binding struct {
	m   *wire.RegisterTrigger
	gen uint64 // connection generation on which the engine last delivered it
}

func spawnTypeActor(ctx context.Context, sys *actors.System, log *slog.Logger, t *TriggerType, wg *sync.WaitGroup, user *goid.Set) error {
	d := actors.NewOwnDispatcher(wg, user)
	bs := &bindings{live: map[string]*binding{}}
	pid, err := sys.Spawn("", actor.PropsFromProducer(func() actor.Actor {
		return &typeActor{t: t, ctx: ctx, log: log, d: d, bindings: bs}
	}, actor.WithDispatcher(d)))
	if err != nil {
		d.Stop()
		d.Schedule(func() {}) // let its goroutine see the stop
		return err
	}
	t.pid = pid
	return nil
}

func (a *typeActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *bindTrigger:
		a.bind(m)
	case *unbindTrigger:
		if b := a.live[m.m.ID]; b != nil {
			a.remove(m.m.ID)
			a.unregister(b.m)
		}
	case *sweepBindings:
		for _, id := range append([]string(nil), a.order...) {
			if b := a.live[id]; b.gen < m.gen {
				a.log.Info("iii: ending a binding the engine no longer has", "trigger", id, "type", a.t.Frame.ID)
				a.remove(id)
				a.unregister(b.m)
			}
		}
	case *retireType:
		for _, id := range append([]string(nil), a.order...) {
			b := a.live[id]
			a.remove(id)
			a.unregister(b.m)
		}
		if m.reply != nil {
			m.reply.Complete(struct{}{}, nil)
		}
		ctx.Stop(ctx.Self())
	case *actor.Restarting:
		a.reconcile()
	case *actor.Stopped:
		a.d.Stop()
	case *crashType:
		panic("iii: trigger type actor crash requested")
	}
}

// reconcile makes order list exactly the live bindings again (a panic may
// have come between the two updates) and republishes the snapshot.
func (a *typeActor) reconcile() {
	seen := make(map[string]bool, len(a.live))
	order := a.order[:0:0]
	for _, id := range a.order {
		if a.live[id] != nil && !seen[id] {
			seen[id] = true
			order = append(order, id)
		}
	}
	for id := range a.live {
		if !seen[id] {
			order = append(order, id)
		}
	}
	a.order = order
	a.publish()
	a.log.Warn("iii: trigger type actor restarted; its bindings are kept", "type", a.t.Frame.ID, "bindings", len(order))
}

// bind registers a binding the engine delivered, once: a re-delivery of the
// same binding (a replay) is acknowledged without calling the provider; a
// changed one is unregistered and registered anew.
func (a *typeActor) bind(m *bindTrigger) {
	res := &wire.TriggerRegistrationResult{ID: m.m.ID, TriggerType: m.m.TriggerType, FunctionID: m.m.FunctionID}
	if old := a.live[m.m.ID]; old != nil {
		if sameBinding(old.m, m.m) {
			old.gen = m.gen
			_ = m.s.Send(a.ctx, res)
			return
		}
		a.remove(m.m.ID)
		a.unregister(old.m)
	}
	if res.Error = a.register(m.m); res.Error == nil {
		a.live[m.m.ID] = &binding{m: m.m, gen: m.gen}
		a.order = append(a.order, m.m.ID)
		a.publish()
	}
	_ = m.s.Send(a.ctx, res)
}

func sameBinding(x, y *wire.RegisterTrigger) bool {
	return x.FunctionID == y.FunctionID && bytes.Equal(x.Config, y.Config) && bytes.Equal(x.Metadata, y.Metadata)
}

func (a *typeActor) remove(id string) {
	delete(a.live, id)
	for i, o := range a.order {
		if o == id {
			a.order = append(a.order[:i], a.order[i+1:]...)
			break
		}
	}
	a.publish()
}

func (a *typeActor) publish() {
	snap := make([]*wire.RegisterTrigger, len(a.order))
	for i, id := range a.order {
		snap[i] = a.live[id].m
	}
	a.t.bindings.Store(&snap)
}

// register calls the provider, turning a panic into a refusal.
func (a *typeActor) register(m *wire.RegisterTrigger) (eb *wire.ErrorBody) {
	defer func() {
		if v := recover(); v != nil {
			stack := string(debug.Stack())
			a.log.Error("iii: a trigger provider panicked in Register", "type", a.t.Frame.ID, "trigger", m.ID, "panic", v, "stack", stack)
			eb = &wire.ErrorBody{Code: "trigger_registration_failed", Message: fmt.Sprintf("panic: %v", v)}
			if a.t.SendStacks {
				eb.Stacktrace = stack
			}
		}
	}()
	return a.t.Provider.Register(a.ctx, m)
}

func (a *typeActor) unregister(m *wire.RegisterTrigger) {
	defer func() {
		if v := recover(); v != nil {
			a.log.Error("iii: a trigger provider panicked in Unregister", "type", a.t.Frame.ID, "trigger", m.ID, "panic", v)
		}
	}()
	a.t.Provider.Unregister(a.ctx, m)
}
