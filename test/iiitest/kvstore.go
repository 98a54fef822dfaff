package iiitest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/iii-go/iii/connection/wire"
	"github.com/iii-go/iii/update"
)

// The engine's state worker (iii-state, v0.22.1) with its default
// in-memory key-value store: the state::* functions and the "state"
// trigger type. Its data lives in the engine state, so a restart wipes it
// (like the engine's in-memory store; a file-backed one would keep it).
//
// Checked by hand against engine v0.22.1 (2026-12-03): the state and stream
// packages' test suites pass against it, but for the assertions that need a
// fresh engine (exact group lists, created vs updated on reused keys).

const triggerState = "state"

func init() {
	for id, d := range map[string]builtinDef{
		"state::set":         {fn: builtinStateSet, description: "Set a value in state"},
		"state::get":         {fn: builtinStateGet, description: "Get a value from state"},
		"state::delete":      {fn: builtinStateDelete, description: "Delete a value from state"},
		"state::update":      {fn: builtinStateUpdate, description: "Update a value in state"},
		"state::list":        {fn: builtinStateList, description: "Get a group from state"},
		"state::list_groups": {fn: builtinStateListGroups, description: "List all state groups"},
	} {
		d.worker = "iii-state"
		builtins[id] = d
	}
	registerEngineTriggerType(engineTriggerType{
		id:          triggerState,
		description: "State trigger",
		newProvider: func(*Engine) engineProvider {
			return newKVTriggers(parseStateConfig)
		},
	})
}

// kvData holds the stores of the state and stream workers (two stores, as
// in the engine).
type kvData struct {
	state  map[string]*kvIndex            // scope -> keys
	stream map[string]map[string]*kvIndex // stream -> group -> items
}

func (st *state) kvLocked() *kvData {
	if st.kv == nil {
		st.kv = &kvData{state: map[string]*kvIndex{}, stream: map[string]map[string]*kvIndex{}}
	}
	return st.kv
}

// kvIndex is one scope (or stream group): values in insertion order, as
// the engine's store keeps them. Deleting the last key keeps the (empty)
// index, as the engine does, so its name is still listed.
type kvIndex struct {
	order []string
	vals  map[string]json.RawMessage
}

func newKVIndex() *kvIndex { return &kvIndex{vals: map[string]json.RawMessage{}} }

func (x *kvIndex) get(k string) json.RawMessage {
	if x == nil {
		return nil
	}
	return x.vals[k]
}

func (x *kvIndex) set(k string, v json.RawMessage) (old json.RawMessage) {
	old, had := x.vals[k]
	if !had {
		x.order = append(x.order, k)
	}
	x.vals[k] = v
	return old
}

func (x *kvIndex) del(k string) (old json.RawMessage) {
	if x == nil {
		return nil
	}
	old, had := x.vals[k]
	if had {
		delete(x.vals, k)
		x.order = slices.DeleteFunc(x.order, func(s string) bool { return s == k })
	}
	return old
}

func (x *kvIndex) list() []json.RawMessage {
	out := []json.RawMessage{}
	if x == nil {
		return out
	}
	for _, k := range x.order {
		out = append(out, x.vals[k])
	}
	return out
}

// normalize re-encodes a JSON value the way the engine's store holds it:
// compact, object keys sorted, no HTML escaping, numbers as the engine
// writes them (1.50 is 1.5, 1e2 is 100.0).
func normalize(v json.RawMessage) json.RawMessage {
	if len(bytes.TrimSpace(v)) == 0 {
		return json.RawMessage("null")
	}
	d := json.NewDecoder(bytes.NewReader(v))
	d.UseNumber()
	var x any
	if d.Decode(&x) != nil {
		return bytes.Clone(v)
	}
	x = canonicalNumbers(x)
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if enc.Encode(x) != nil {
		return bytes.Clone(v)
	}
	return bytes.TrimRight(b.Bytes(), "\n")
}

// orNull is a stored value for an Option<Value> field: null when absent.
func orNull(v json.RawMessage) json.RawMessage {
	if v == nil {
		return json.RawMessage("null")
	}
	return v
}

// kvWriteResult is the engine's StreamSetResult / StreamUpdateResult.
type kvWriteResult struct {
	OldValue json.RawMessage `json:"old_value"`
	NewValue json.RawMessage `json:"new_value"`
	Errors   []update.Error  `json:"errors,omitempty"`
}

// ── triggers ───────────────────────────────────────────────────────────

// kvTriggers is the engine provider of the "state" and "stream" trigger
// types: it keeps each binding's parsed configuration; the stores' writes
// look their bindings up here.
type kvTriggers[C any] struct {
	parse func(json.RawMessage) (C, *wire.ErrorBody)
	cfgs  map[string]C
}

func newKVTriggers[C any](parse func(json.RawMessage) (C, *wire.ErrorBody)) *kvTriggers[C] {
	return &kvTriggers[C]{parse: parse, cfgs: map[string]C{}}
}

func (p *kvTriggers[C]) bind(e *Engine, ob *outbox, st *state, b *binding) *wire.ErrorBody {
	c, errb := p.parse(b.config)
	if errb != nil {
		return errb
	}
	p.cfgs[b.id] = c
	return nil
}

func (p *kvTriggers[C]) unbind(e *Engine, ob *outbox, st *state, b *binding) { delete(p.cfgs, b.id) }

// kvTriggersOf returns the engine's provider of a trigger type, or nil when
// a worker took the type over.
func kvTriggersOf[C any](st *state, ttype string) *kvTriggers[C] {
	if tt := st.ttypes[ttype]; tt != nil && tt.provider == nil {
		p, _ := tt.engine.(*kvTriggers[C])
		return p
	}
	return nil
}

// fireStep is the call of one matching binding in a write's fan-out.
type fireStep struct {
	fn, cond string
	metadata json.RawMessage
}

// matchingSteps lists the bindings of p whose config matches, in binding
// id order.
func matchingSteps[C any](st *state, p *kvTriggers[C], match func(C) bool, cond func(C) string) []fireStep {
	if p == nil {
		return nil
	}
	var steps []fireStep
	for _, id := range sortedKeys(p.cfgs) {
		b := st.bindings[id]
		if b == nil || !match(p.cfgs[id]) {
			continue
		}
		steps = append(steps, fireStep{fn: b.function, cond: cond(p.cfgs[id]), metadata: b.metadata})
	}
	return steps
}

// fireSteps runs a write's trigger fan-out as the engine does: one step
// after the other, each call awaited; a step with a condition function
// calls it first (without metadata) and is skipped when it answers false
// or fails. Called without e.mu; it returns at once, the next step starting
// from the previous call's callback.
func (e *Engine) fireSteps(st *state, steps []fireStep, data json.RawMessage, i int, condPassed bool) {
	if i >= len(steps) {
		return
	}
	s := steps[i]
	ob := outbox{}
	e.mu.Lock()
	if e.st != st || e.down {
		e.mu.Unlock()
		return
	}
	if s.cond != "" && !condPassed {
		e.callLocked(&ob, st, s.cond, data, nil, "", "", func(res json.RawMessage, errb *wire.ErrorBody) {
			if errb == nil && string(bytes.TrimSpace(res)) != "false" {
				e.fireSteps(st, steps, data, i, true)
			} else {
				e.fireSteps(st, steps, data, i+1, false)
			}
		})
	} else {
		e.callLocked(&ob, st, s.fn, data, s.metadata, "", "", func(json.RawMessage, *wire.ErrorBody) {
			e.fireSteps(st, steps, data, i+1, false)
		})
	}
	e.mu.Unlock()
	e.flush(&ob)
}

// ── state ──────────────────────────────────────────────────────────────

type stateTriggerConfig struct {
	Scope               *string `json:"scope"`
	Key                 *string `json:"key"`
	ConditionFunctionID *string `json:"condition_function_id"`
}

func parseStateConfig(raw json.RawMessage) (stateTriggerConfig, *wire.ErrorBody) {
	var c stateTriggerConfig
	if err := decodeConfig(raw, "StateTriggerConfig", &c); err != "" {
		return c, &wire.ErrorBody{Code: "trigger_registration_failed", Message: "Failed to parse trigger config: " + err}
	}
	return c, nil
}

// decodeConfig decodes a trigger config into a struct, with the engine's
// wording for the common failures; "" means success.
func decodeConfig(raw json.RawMessage, name string, v any) string {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || t[0] != '{' {
		return "invalid type: " + serdeKind(t) + ", expected struct " + name
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return err.Error()
	}
	return ""
}

// stateEvent is the engine's StateEventData.
type stateEvent struct {
	Type      string          `json:"type"`
	EventType string          `json:"event_type"`
	Scope     string          `json:"scope"`
	Key       string          `json:"key"`
	OldValue  json.RawMessage `json:"old_value"`
	NewValue  json.RawMessage `json:"new_value"`
}

// stateChangedLocked collects the fan-out of a state write.
func stateChangedLocked(st *state, ev stateEvent) ([]fireStep, json.RawMessage) {
	p := kvTriggersOf[stateTriggerConfig](st, triggerState)
	steps := matchingSteps(st, p, func(c stateTriggerConfig) bool {
		return (c.Scope == nil || *c.Scope == ev.Scope) && (c.Key == nil || *c.Key == ev.Key)
	}, func(c stateTriggerConfig) string { return deref(c.ConditionFunctionID) })
	if len(steps) == 0 {
		return nil, nil
	}
	ev.Type = "state"
	ev.OldValue, ev.NewValue = orNull(ev.OldValue), orNull(ev.NewValue)
	return steps, marshal(ev)
}

type stateKeyInput struct {
	Scope *string `json:"scope"`
	Key   *string `json:"key"`
}

func (in *stateKeyInput) check(id string) *wire.ErrorBody {
	if in.Scope == nil {
		return missingField(id, "scope")
	}
	if in.Key == nil {
		return missingField(id, "key")
	}
	return nil
}

// stateWrite stores (or updates) a value, answers, and fires the
// matching "state" bindings; a write that fails answers its error and
// changes nothing.
func stateWrite(e *Engine, reply func(json.RawMessage, *wire.ErrorBody), scope, key string, write func(x *kvIndex) (kvWriteResult, *wire.ErrorBody)) {
	e.mu.Lock()
	st := e.st
	kv := st.kvLocked()
	x := kv.state[scope]
	if x == nil {
		x = newKVIndex()
		kv.state[scope] = x
	}
	res, errb := write(x)
	if errb != nil {
		e.mu.Unlock()
		reply(nil, errb)
		return
	}
	kind := "state:created"
	if res.OldValue != nil {
		kind = "state:updated"
	}
	steps, data := stateChangedLocked(st, stateEvent{EventType: kind, Scope: scope, Key: key, OldValue: res.OldValue, NewValue: res.NewValue})
	e.mu.Unlock()
	e.fireSteps(st, steps, data, 0, false)
	res.OldValue = orNull(res.OldValue)
	ok(reply, res)
}

func builtinStateSet(e *Engine, c *worker, id string, data json.RawMessage, reply func(json.RawMessage, *wire.ErrorBody)) {
	var in struct {
		stateKeyInput
		Value json.RawMessage `json:"value"`
		Data  json.RawMessage `json:"data"` // the engine's alias of value
	}
	if errb := decodeInput(id, data, &in); errb != nil {
		reply(nil, errb)
		return
	}
	if errb := in.check(id); errb != nil {
		reply(nil, errb)
		return
	}
	v := in.Value
	if v == nil {
		v = in.Data
	}
	if v == nil {
		reply(nil, missingField(id, "value"))
		return
	}
	v = normalize(v)
	stateWrite(e, reply, *in.Scope, *in.Key, func(x *kvIndex) (kvWriteResult, *wire.ErrorBody) {
		return kvWriteResult{OldValue: x.set(*in.Key, v), NewValue: v}, nil
	})
}

func builtinStateUpdate(e *Engine, c *worker, id string, data json.RawMessage, reply func(json.RawMessage, *wire.ErrorBody)) {
	var in struct {
		stateKeyInput
		Ops *[]update.Op `json:"ops"`
	}
	if errb := decodeInput(id, data, &in); errb != nil {
		reply(nil, errb)
		return
	}
	if errb := in.check(id); errb != nil {
		reply(nil, errb)
		return
	}
	if in.Ops == nil {
		reply(nil, missingField(id, "ops"))
		return
	}
	stateWrite(e, reply, *in.Scope, *in.Key, func(x *kvIndex) (kvWriteResult, *wire.ErrorBody) {
		old := x.get(*in.Key)
		nv, errs, err := update.Apply(old, *in.Ops)
		if err != nil { // not for ops decoded from JSON
			return kvWriteResult{}, &wire.ErrorBody{Code: "UPDATE_ERROR", Message: "Failed to update value: " + err.Error()}
		}
		nv = normalize(nv)
		x.set(*in.Key, nv)
		return kvWriteResult{OldValue: old, NewValue: nv, Errors: errs}, nil
	})
}

func builtinStateGet(e *Engine, c *worker, id string, data json.RawMessage, reply func(json.RawMessage, *wire.ErrorBody)) {
	var in stateKeyInput
	if errb := decodeInput(id, data, &in); errb != nil {
		reply(nil, errb)
		return
	}
	if errb := in.check(id); errb != nil {
		reply(nil, errb)
		return
	}
	e.mu.Lock()
	v := e.st.kvLocked().state[*in.Scope].get(*in.Key)
	e.mu.Unlock()
	reply(orNull(v), nil)
}

func builtinStateDelete(e *Engine, c *worker, id string, data json.RawMessage, reply func(json.RawMessage, *wire.ErrorBody)) {
	var in stateKeyInput
	if errb := decodeInput(id, data, &in); errb != nil {
		reply(nil, errb)
		return
	}
	if errb := in.check(id); errb != nil {
		reply(nil, errb)
		return
	}
	e.mu.Lock()
	st := e.st
	old := st.kvLocked().state[*in.Scope].del(*in.Key)
	// The engine reports a delete even when there was nothing to delete.
	steps, ev := stateChangedLocked(st, stateEvent{EventType: "state:deleted", Scope: *in.Scope, Key: *in.Key, OldValue: old})
	e.mu.Unlock()
	e.fireSteps(st, steps, ev, 0, false)
	reply(orNull(old), nil)
}

func builtinStateList(e *Engine, c *worker, id string, data json.RawMessage, reply func(json.RawMessage, *wire.ErrorBody)) {
	var in struct {
		Scope *string `json:"scope"`
	}
	if errb := decodeInput(id, data, &in); errb != nil {
		reply(nil, errb)
		return
	}
	if in.Scope == nil {
		reply(nil, missingField(id, "scope"))
		return
	}
	e.mu.Lock()
	vals := e.st.kvLocked().state[*in.Scope].list()
	e.mu.Unlock()
	ok(reply, vals)
}

func builtinStateListGroups(e *Engine, c *worker, id string, data json.RawMessage, reply func(json.RawMessage, *wire.ErrorBody)) {
	var in struct{}
	if errb := decodeInput(id, data, &in); errb != nil {
		reply(nil, errb)
		return
	}
	e.mu.Lock()
	groups := make([]string, 0, len(e.st.kvLocked().state))
	for g := range e.st.kv.state {
		groups = append(groups, g)
	}
	e.mu.Unlock()
	sort.Strings(groups)
	ok(reply, struct {
		Groups []string `json:"groups"`
	}{groups})
}

// debugErrorBody formats an error body as the engine's Rust Debug output
// does in its "Failed to invoke function" messages.
func debugErrorBody(b *wire.ErrorBody) string {
	st := "None"
	if b.Stacktrace != "" {
		st = fmt.Sprintf("Some(%q)", b.Stacktrace)
	}
	return fmt.Sprintf("ErrorBody { code: %q, message: %q, stacktrace: %s }", b.Code, b.Message, st)
}

// canonicalNumbers rewrites the numbers of a decoded value as the engine
// (serde_json) writes them: integers that fit 64 bits as they are, other
// numbers as the shortest float, with ".0" when integral.
func canonicalNumbers(x any) any {
	switch v := x.(type) {
	case map[string]any:
		for k, c := range v {
			v[k] = canonicalNumbers(c)
		}
	case []any:
		for i, c := range v {
			v[i] = canonicalNumbers(c)
		}
	case json.Number:
		s := string(v)
		if !strings.ContainsAny(s, ".eE") {
			if _, err := strconv.ParseInt(s, 10, 64); err == nil {
				return v
			}
			if _, err := strconv.ParseUint(s, 10, 64); err == nil {
				return v
			}
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsInf(f, 0) {
			return v
		}
		return json.Number(engineFloat(f))
	}
	return x
}

// engineFloat formats a float as serde_json does (ryu): the shortest form,
// ".0" on integral values, exponent form outside 1e-5 <= |f| < 1e16.
func engineFloat(f float64) string {
	a := math.Abs(f)
	if a == 0 || (a >= 1e-5 && a < 1e16) {
		s := strconv.FormatFloat(f, 'f', -1, 64)
		if !strings.Contains(s, ".") {
			s += ".0"
		}
		return s
	}
	mant, exp, _ := strings.Cut(strconv.FormatFloat(f, 'e', -1, 64), "e")
	neg := strings.HasPrefix(exp, "-")
	exp = strings.TrimLeft(strings.TrimLeft(exp, "+-"), "0")
	if neg {
		exp = "-" + exp
	}
	return mant + "e" + exp
}
