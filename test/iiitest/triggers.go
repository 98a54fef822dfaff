package iiitest

import (
	"encoding/json"
	"hash/fnv"
	"time"

	"github.com/iii-go/iii/connection/wire"
)

// The trigger types the engine provides itself.
const (
	triggerWorkersAvailable   = "engine::workers-available"
	triggerFunctionsAvailable = "engine::functions-available"
)

// mandatoryTriggerTypes are the trigger types every engine v0.22.1 lists,
// from its mandatory in-process workers (descriptions as the engine reports
// them).
var mandatoryTriggerTypes = []struct{ id, description string }{
	{"configuration", "Configuration trigger \u2014 fires on register/update/delete events"},
	{"log", "Log event trigger"},
	{"trace", "Trace/span event trigger"},
}

// ttype is a registered trigger type.
type ttype struct {
	id                   string
	description          string
	triggerRequestFormat json.RawMessage
	callRequestFormat    json.RawMessage
	provider             *worker // nil: provided by the engine
	// engine is the double's own provider of an engine-provided type
	// (http, cron, state, stream, ...); nil for types it only lists.
	engine engineProvider
}

// engineProvider is a trigger type the engine provides itself (its builtin
// workers: http, cron, state, stream, ...). Both methods run with e.mu held
// and must not block; what they send goes through ob.
type engineProvider interface {
	// bind starts firing a binding; a non-nil error body refuses it (the
	// binding is dropped, logged, and, for a worker's registertrigger, sent
	// back to the worker in a triggerregistrationresult, as the engine
	// does; the engine's code is "trigger_registration_failed").
	bind(e *Engine, ob *outbox, st *state, b *binding) *wire.ErrorBody
	// unbind stops firing a binding (unregistered, or its owner left).
	unbind(e *Engine, ob *outbox, st *state, b *binding)
}

// An engineProvider that holds timers or goroutines also implements
// close() { ... }: stopTimers calls it, with e.mu held, when the engine
// stops or restarts (a restart makes a new provider with newProvider).

// engineTriggerType describes an engine-provided trigger type; files of
// the package add theirs with registerEngineTriggerType in an init func.
type engineTriggerType struct {
	id, description string
	// newProvider makes the provider for one engine state (called on
	// every start and restart of the double); nil lists the type only.
	newProvider func(e *Engine) engineProvider
}

var engineTriggerTypes []engineTriggerType

// registerEngineTriggerType adds an engine-provided trigger type to every
// engine the double starts. Call it from an init func.
func registerEngineTriggerType(t engineTriggerType) {
	engineTriggerTypes = append(engineTriggerTypes, t)
}

// binding is a trigger: a trigger type bound to a function.
type binding struct {
	id       string
	ttype    string
	function string
	config   json.RawMessage
	metadata json.RawMessage
	owner    *worker // nil: ownerless (engine::register_trigger)
}

func (b *binding) registerMsg() *wire.RegisterTrigger {
	cfg := b.config
	if cfg == nil {
		cfg = json.RawMessage("null")
	}
	return &wire.RegisterTrigger{ID: b.id, TriggerType: b.ttype, FunctionID: b.function, Config: cfg, Metadata: b.metadata}
}

// ackWait is an engine::register_trigger call waiting for the provider's
// triggerregistrationresult.
type ackWait struct {
	b     *binding
	reply func(json.RawMessage, *wire.ErrorBody)
	timer *time.Timer
}

func (e *Engine) registerTriggerTypeLocked(ob *outbox, c *worker, m *wire.RegisterTriggerType) {
	st := c.st
	st.ttypes[m.ID] = &ttype{
		id:                   m.ID,
		description:          m.Description,
		triggerRequestFormat: m.TriggerRequestFormat,
		callRequestFormat:    m.CallRequestFormat,
		provider:             c,
	}
	// Replay the live bindings of the type, then activate the parked ones.
	for _, id := range sortedKeys(st.bindings) {
		if b := st.bindings[id]; b.ttype == m.ID {
			ob.add(c, b.registerMsg())
		}
	}
	for _, id := range sortedKeys(st.parked) {
		b := st.parked[id]
		if b.ttype != m.ID {
			continue
		}
		delete(st.parked, id)
		if b.owner != nil && b.owner.gone {
			continue
		}
		st.bindings[id] = b
		ob.add(c, b.registerMsg())
	}
}

func (e *Engine) registerTriggerLocked(ob *outbox, c *worker, m *wire.RegisterTrigger) {
	b := &binding{id: m.ID, ttype: m.TriggerType, function: m.FunctionID, config: m.Config, metadata: m.Metadata, owner: c}
	e.addBindingLocked(ob, c.st, b)
}

// addBindingLocked stores a binding and asks its provider to start firing
// it; a binding of an unknown type is parked. It returns the refusal of an
// engine-provided type, if any.
func (e *Engine) addBindingLocked(ob *outbox, st *state, b *binding) *wire.ErrorBody {
	tt := st.ttypes[b.ttype]
	if tt == nil {
		st.parked[b.id] = b
		return nil
	}
	if tt.provider != nil {
		ob.add(tt.provider, b.registerMsg())
	} else if tt.engine != nil {
		if errb := tt.engine.bind(e, ob, st, b); errb != nil {
			delete(st.parked, b.id)
			e.cfg.logger.Warn("iiitest: engine trigger type refused a binding", "id", b.id, "type", b.ttype, "code", errb.Code, "message", errb.Message)
			// The engine tells the binding's worker (seen on v0.22.1 with
			// a state binding whose config does not decode).
			if b.owner != nil {
				ob.add(b.owner, &wire.TriggerRegistrationResult{ID: b.id, TriggerType: b.ttype, FunctionID: b.function, Error: errb})
			}
			return errb
		}
	}
	delete(st.parked, b.id)
	st.bindings[b.id] = b
	return nil
}

// unregisterTriggerLocked removes a binding by id (any connection may) and
// reports whether it existed.
func (e *Engine) unregisterTriggerLocked(ob *outbox, st *state, id string) bool {
	b := st.bindings[id]
	if b == nil {
		_, ok := st.parked[id]
		delete(st.parked, id)
		return ok
	}
	e.stopBindingLocked(ob, st, b)
	delete(st.bindings, id)
	delete(st.parked, id)
	return true
}

// stopBindingLocked tells a live binding's provider (a worker or the
// engine itself) to stop firing it.
func (e *Engine) stopBindingLocked(ob *outbox, st *state, b *binding) {
	tt := st.ttypes[b.ttype]
	switch {
	case tt == nil:
	case tt.provider != nil:
		ob.add(tt.provider, &wire.UnregisterTrigger{ID: b.id, TriggerType: b.ttype})
	case tt.engine != nil:
		tt.engine.unbind(e, ob, st, b)
	}
}

func (e *Engine) triggerResultLocked(ob *outbox, c *worker, m *wire.TriggerRegistrationResult) {
	st := c.st
	if a := c.acks[m.ID]; a != nil {
		delete(c.acks, m.ID)
		if a.timer.Stop() {
			e.completeAckLocked(ob, st, a, m.Error)
		}
		return
	}
	b := st.bindings[m.ID]
	if b == nil {
		return
	}
	if tt := st.ttypes[b.ttype]; tt == nil || tt.provider != c {
		return // only the type's current provider may report
	}
	if m.Error == nil {
		return
	}
	delete(st.bindings, m.ID)
	st.parked[m.ID] = b
	if b.owner != nil {
		ob.add(b.owner, &wire.TriggerRegistrationResult{ID: b.id, TriggerType: b.ttype, FunctionID: b.function, Error: m.Error})
	}
}

// completeAckLocked ends an engine::register_trigger wait: an error fails
// the call and drops the binding; success (or no answer) stores it.
func (e *Engine) completeAckLocked(ob *outbox, st *state, a *ackWait, errb *wire.ErrorBody) {
	reply := a.reply
	if errb != nil {
		err := &wire.ErrorBody{Code: "trigger_registration_failed", Message: errb.Code + ": " + errb.Message}
		ob.later = append(ob.later, func() { reply(nil, err) })
		return
	}
	if st.ttypes[a.b.ttype] != nil {
		delete(st.parked, a.b.id)
		st.bindings[a.b.id] = a.b
	} else {
		st.parked[a.b.id] = a.b
	}
	res := idResult(a.b.id)
	ob.later = append(ob.later, func() { reply(res, nil) })
}

func idResult(id string) json.RawMessage {
	b := append([]byte(`{"id":`), wire.AppendString(nil, id)...)
	return append(b, '}')
}

// ackTimedOut accepts an ownerless binding whose provider did not answer.
func (e *Engine) ackTimedOut(provider *worker, id string, a *ackWait) {
	if !e.enter() {
		return
	}
	defer e.wg.Done()
	ob := outbox{}
	e.mu.Lock()
	if provider.acks[id] == a {
		delete(provider.acks, id)
		e.completeAckLocked(&ob, provider.st, a, nil)
		e.notifyLocked()
	}
	e.mu.Unlock()
	e.flush(&ob)
}

// fireLocked fires an engine-provided trigger type: every binding of it is
// invoked like an engine-originated call, with the binding's metadata.
func (e *Engine) fireLocked(ob *outbox, st *state, ttypeID string, data json.RawMessage) {
	for _, id := range sortedKeys(st.bindings) {
		b := st.bindings[id]
		if b.ttype != ttypeID {
			continue
		}
		if tt := st.ttypes[ttypeID]; tt == nil || tt.provider != nil {
			return // a worker took the type over
		}
		e.callLocked(ob, st, b.function, data, b.metadata, "", "", nil)
	}
}

// functionsHash is an order-independent hash of the function ids.
func (st *state) functionsHash() uint64 {
	var sum uint64
	for id := range st.functions {
		h := fnv.New64a()
		h.Write([]byte(id))
		sum += h.Sum64()
	}
	return sum
}

// background runs the periodic work of one listen cycle: the
// engine::functions-available poll and the channel sweep.
func (e *Engine) background(stop <-chan struct{}) {
	poll := time.NewTicker(e.cfg.fnPoll)
	defer poll.Stop()
	sweepEvery := min(e.cfg.channelTTL/5, time.Minute)
	if sweepEvery <= 0 {
		sweepEvery = time.Minute
	}
	sweep := time.NewTicker(sweepEvery)
	defer sweep.Stop()
	for {
		select {
		case <-stop:
			return
		case <-poll.C:
			e.pollFunctions()
		case <-sweep.C:
			e.sweepChannels()
		}
	}
}

func (e *Engine) pollFunctions() {
	ob := outbox{}
	e.mu.Lock()
	st := e.st
	if h := st.functionsHash(); h != st.fnHash {
		st.fnHash = h
		data := marshal(struct {
			Event     string            `json:"event"`
			Functions []functionSummary `json:"functions"`
		}{"functions_changed", e.functionSummariesLocked(st)})
		e.fireLocked(&ob, st, triggerFunctionsAvailable, data)
	}
	e.mu.Unlock()
	e.flush(&ob)
}
