package iiitest

import (
	"bytes"
	"context"
	"encoding/json"
	"time"

	"github.com/iii-go/iii/connection/wire"
	"github.com/iii-go/iii/update"
)

// The engine's stream worker (iii-stream, v0.22.1) with its default
// in-memory store: the stream::* functions, the "stream", "stream:join"
// and "stream:leave" trigger types, and the routing of a stream's calls to
// a worker's custom stream functions (stream::get(NAME), ...). The
// engine's WebSocket server for stream clients is not imitated;
// Engine.StreamJoin and Engine.StreamLeave stand in for its clients.
//
// Known differences from engine v0.22.1 (state and streams alike): no
// stream WebSocket clients (no sync/change pushes, no auth function); an
// in-memory store only (no file or redis adapter, no max_value_bytes or
// triggers_enabled configuration); the bindings of one write are called in
// binding id order (the engine: map order for state, registration order
// for streams), and without the writer's trace context; stream::list_groups
// is sorted (the engine: map order); a stream binding without stream_name
// is refused (the engine panics and stops answering that worker); numbers
// and strings are re-encoded like serde_json for the common cases only
// (Go escapes U+2028/U+2029); engine::workers::list does not list
// iii-state and iii-stream.

const (
	triggerStream      = "stream"
	triggerStreamJoin  = "stream:join"
	triggerStreamLeave = "stream:leave"
)

func init() {
	for id, d := range map[string]builtinDef{
		"stream::set":         {fn: builtinStreamSet, description: "Set a value in a stream"},
		"stream::get":         {fn: builtinStreamGet, description: "Get a value from a stream"},
		"stream::delete":      {fn: builtinStreamDelete, description: "Delete a value from a stream"},
		"stream::list":        {fn: builtinStreamList, description: "List all items in a stream group"},
		"stream::list_groups": {fn: builtinStreamListGroups, description: "List all groups in a stream"},
		"stream::list_all":    {fn: builtinStreamListAll, description: "List all available stream with metadata"},
		"stream::send":        {fn: builtinStreamSend, description: "Send a custom event to stream subscribers"},
		"stream::update":      {fn: builtinStreamUpdate, description: "Atomically update a stream value with multiple operations"},
	} {
		d.worker = "iii-stream"
		builtins[id] = d
	}
	registerEngineTriggerType(engineTriggerType{id: triggerStreamJoin, description: "Stream join trigger",
		newProvider: func(*Engine) engineProvider { return newKVTriggers(acceptAnyConfig) }})
	registerEngineTriggerType(engineTriggerType{id: triggerStreamLeave, description: "Stream leave trigger",
		newProvider: func(*Engine) engineProvider { return newKVTriggers(acceptAnyConfig) }})
	registerEngineTriggerType(engineTriggerType{id: triggerStream, description: "Stream trigger",
		newProvider: func(*Engine) engineProvider { return newKVTriggers(parseStreamConfig) }})
}

// acceptAnyConfig: the engine stores join and leave bindings without
// reading their config.
func acceptAnyConfig(json.RawMessage) (struct{}, *wire.ErrorBody) { return struct{}{}, nil }

type streamTriggerConfig struct {
	StreamName          *string `json:"stream_name"`
	GroupID             *string `json:"group_id"`
	ItemID              *string `json:"item_id"`
	ConditionFunctionID *string `json:"condition_function_id"`
}

func parseStreamConfig(raw json.RawMessage) (streamTriggerConfig, *wire.ErrorBody) {
	var c streamTriggerConfig
	if err := decodeConfig(raw, "StreamTriggerConfig", &c); err != "" || c.StreamName == nil {
		// The engine (v0.22.1) fails the registration on a config that does
		// not decode; on one without stream_name it panics, and stops
		// answering the worker's frames: the double refuses it instead.
		return c, &wire.ErrorBody{Code: "trigger_registration_failed", Message: "Failed to deserialize stream trigger"}
	}
	return c, nil
}

// streamEvent is the engine's StreamWrapperMessage.
type streamEvent struct {
	Type       string  `json:"type"`
	Timestamp  int64   `json:"timestamp"`
	StreamName string  `json:"streamName"`
	GroupID    string  `json:"groupId"`
	ID         *string `json:"id"`
	Event      any     `json:"event"`
}

type streamChange struct {
	Type string          `json:"type"` // create, update, delete
	Data json.RawMessage `json:"data"`
}

type streamSent struct {
	Type  string `json:"type"` // event
	Event struct {
		Type string          `json:"type"`
		Data json.RawMessage `json:"data"`
	} `json:"event"`
}

// streamChangedLocked collects the fan-out of a stream change: the
// bindings of the stream, filtered by group and item when their config
// sets them (an empty filter matches all).
func streamChangedLocked(st *state, name, group string, id *string, event any) ([]fireStep, json.RawMessage) {
	p := kvTriggersOf[streamTriggerConfig](st, triggerStream)
	item := deref(id)
	steps := matchingSteps(st, p, func(c streamTriggerConfig) bool {
		g, i := deref(c.GroupID), deref(c.ItemID)
		return *c.StreamName == name && (g == "" || g == group) && (i == "" || i == item)
	}, func(c streamTriggerConfig) string { return deref(c.ConditionFunctionID) })
	if len(steps) == 0 {
		return nil, nil
	}
	return steps, marshal(streamEvent{Type: "stream", Timestamp: time.Now().UnixMilli(), StreamName: name, GroupID: group, ID: id, Event: event})
}

type streamInput struct {
	StreamName *string `json:"stream_name"`
	GroupID    *string `json:"group_id"`
	ItemID     *string `json:"item_id"`
}

// check reports the first missing field of the engine's input struct.
func (in *streamInput) check(id string, fields int) *wire.ErrorBody {
	if in.StreamName == nil {
		return missingField(id, "stream_name")
	}
	if fields > 1 && in.GroupID == nil {
		return missingField(id, "group_id")
	}
	if fields > 2 && in.ItemID == nil {
		return missingField(id, "item_id")
	}
	return nil
}

// customStreamLocked returns the id of the worker function that implements
// op for stream name (a custom stream), or "".
func customStreamLocked(st *state, op, name string) string {
	id := "stream::" + op + "(" + name + ")"
	if st.functions[id] != nil {
		return id
	}
	return ""
}

// callCustom calls a custom stream function (e.mu held); done gets its
// outcome, copied, without e.mu.
func (e *Engine) callCustomLocked(ob *outbox, st *state, fid string, input any, done func(json.RawMessage, *wire.ErrorBody)) {
	e.callLocked(ob, st, fid, marshal(input), nil, "", "", func(res json.RawMessage, errb *wire.ErrorBody) {
		done(bytes.Clone(res), errb)
	})
}

// customWrite decodes the answer of a custom stream's set, update or
// delete as the engine does; needNew is false for delete.
func customWrite(res json.RawMessage, errb *wire.ErrorBody, prefix, code, structName string, needNew bool) (kvWriteResult, *wire.ErrorBody) {
	var r kvWriteResult
	switch {
	case errb != nil:
		return r, &wire.ErrorBody{Code: code, Message: prefix + "Failed to invoke function: " + debugErrorBody(errb)}
	case wire.IsNull(res):
		return r, &wire.ErrorBody{Code: code, Message: prefix + "Function returned no result"}
	}
	jsonErr := func(msg string) (kvWriteResult, *wire.ErrorBody) {
		return kvWriteResult{}, &wire.ErrorBody{Code: "JSON_ERROR", Message: "Failed to convert result to value: " + msg}
	}
	if msg := decodeConfig(res, structName, &r); msg != "" {
		return jsonErr(msg)
	}
	if needNew && r.NewValue == nil {
		return jsonErr("missing field `new_value`")
	}
	if wire.IsNull(r.OldValue) {
		r.OldValue = nil
	}
	return r, nil
}

// streamWritten answers a set, update or delete and fires its bindings.
func (e *Engine) streamWritten(st *state, reply func(json.RawMessage, *wire.ErrorBody), name, group, item string, r kvWriteResult, deleted bool, answer any) {
	var ev any
	switch {
	case deleted && r.OldValue != nil:
		ev = streamChange{Type: "delete", Data: r.OldValue}
	case deleted:
	case r.OldValue != nil:
		ev = streamChange{Type: "update", Data: orNull(r.NewValue)}
	default:
		ev = streamChange{Type: "create", Data: orNull(r.NewValue)}
	}
	if ev != nil {
		e.mu.Lock()
		var steps []fireStep
		var data json.RawMessage
		if e.st == st {
			steps, data = streamChangedLocked(st, name, group, &item, ev)
		}
		e.mu.Unlock()
		e.fireSteps(st, steps, data, 0, false)
	}
	ok(reply, answer)
}

func (e *Engine) streamGroupLocked(st *state, name, group string, create bool) *kvIndex {
	kv := st.kvLocked()
	groups := kv.stream[name]
	if groups == nil {
		if !create {
			return nil
		}
		groups = map[string]*kvIndex{}
		kv.stream[name] = groups
	}
	x := groups[group]
	if x == nil && create {
		x = newKVIndex()
		groups[group] = x
	}
	return x
}

// streamArgs decodes a stream builtin's input and checks its first n
// required fields (see streamInput.check); on failure it has replied.
func streamArgs(id string, data json.RawMessage, n int, reply func(json.RawMessage, *wire.ErrorBody)) (streamInput, bool) {
	var in streamInput
	errb := decodeInput(id, data, &in)
	if errb == nil {
		errb = in.check(id, n)
	}
	if errb != nil {
		reply(nil, errb)
		return in, false
	}
	return in, true
}

func builtinStreamSet(e *Engine, c *worker, id string, data json.RawMessage, reply func(json.RawMessage, *wire.ErrorBody)) {
	var in struct {
		streamInput
		Data json.RawMessage `json:"data"`
	}
	if errb := decodeInput(id, data, &in); errb != nil {
		reply(nil, errb)
		return
	}
	if errb := in.check(id, 3); errb != nil {
		reply(nil, errb)
		return
	}
	if in.Data == nil {
		reply(nil, missingField(id, "data"))
		return
	}
	name, group, item, v := *in.StreamName, *in.GroupID, *in.ItemID, normalize(in.Data)
	ob := outbox{}
	e.mu.Lock()
	st := e.st
	if fid := customStreamLocked(st, "set", name); fid != "" {
		input := struct {
			StreamName string          `json:"stream_name"`
			GroupID    string          `json:"group_id"`
			ItemID     string          `json:"item_id"`
			Data       json.RawMessage `json:"data"`
		}{name, group, item, v}
		e.callCustomLocked(&ob, st, fid, input, func(res json.RawMessage, errb *wire.ErrorBody) {
			r, fail := customWrite(res, errb, "Failed to set value: ", "STREAM_SET_ERROR", "StreamSetResult", true)
			if fail != nil {
				reply(nil, fail)
				return
			}
			e.streamWritten(st, reply, name, group, item, r, false, kvWriteResult{OldValue: orNull(r.OldValue), NewValue: r.NewValue})
		})
		e.mu.Unlock()
		e.flush(&ob)
		return
	}
	old := e.streamGroupLocked(st, name, group, true).set(item, v)
	e.mu.Unlock()
	e.streamWritten(st, reply, name, group, item, kvWriteResult{OldValue: old, NewValue: v}, false, kvWriteResult{OldValue: orNull(old), NewValue: v})
}

func builtinStreamUpdate(e *Engine, c *worker, id string, data json.RawMessage, reply func(json.RawMessage, *wire.ErrorBody)) {
	var in struct {
		streamInput
		Ops *[]update.Op `json:"ops"`
	}
	if errb := decodeInput(id, data, &in); errb != nil {
		reply(nil, errb)
		return
	}
	if errb := in.check(id, 3); errb != nil {
		reply(nil, errb)
		return
	}
	if in.Ops == nil {
		reply(nil, missingField(id, "ops"))
		return
	}
	name, group, item, ops := *in.StreamName, *in.GroupID, *in.ItemID, *in.Ops
	ob := outbox{}
	e.mu.Lock()
	st := e.st
	if fid := customStreamLocked(st, "update", name); fid != "" {
		input := struct {
			StreamName string      `json:"stream_name"`
			GroupID    string      `json:"group_id"`
			ItemID     string      `json:"item_id"`
			Ops        []update.Op `json:"ops"`
		}{name, group, item, ops}
		e.callCustomLocked(&ob, st, fid, input, func(res json.RawMessage, errb *wire.ErrorBody) {
			r, fail := customWrite(res, errb, "Failed to update value: ", "STREAM_UPDATE_ERROR", "StreamUpdateResult", true)
			if fail != nil {
				reply(nil, fail)
				return
			}
			e.streamWritten(st, reply, name, group, item, r, false, kvWriteResult{OldValue: orNull(r.OldValue), NewValue: r.NewValue, Errors: r.Errors})
		})
		e.mu.Unlock()
		e.flush(&ob)
		return
	}
	x := e.streamGroupLocked(st, name, group, true)
	old := x.get(item)
	nv, errs, err := update.Apply(old, ops)
	if err != nil {
		e.mu.Unlock()
		reply(nil, &wire.ErrorBody{Code: "STREAM_UPDATE_ERROR", Message: "Failed to update value: " + err.Error()})
		return
	}
	nv = normalize(nv)
	x.set(item, nv)
	e.mu.Unlock()
	e.streamWritten(st, reply, name, group, item, kvWriteResult{OldValue: old, NewValue: nv}, false, kvWriteResult{OldValue: orNull(old), NewValue: nv, Errors: errs})
}

func builtinStreamDelete(e *Engine, c *worker, id string, data json.RawMessage, reply func(json.RawMessage, *wire.ErrorBody)) {
	in, ok := streamArgs(id, data, 3, reply)
	if !ok {
		return
	}
	name, group, item := *in.StreamName, *in.GroupID, *in.ItemID
	type result struct {
		OldValue json.RawMessage `json:"old_value"`
	}
	ob := outbox{}
	e.mu.Lock()
	st := e.st
	if fid := customStreamLocked(st, "delete", name); fid != "" {
		e.callCustomLocked(&ob, st, fid, in, func(res json.RawMessage, errb *wire.ErrorBody) {
			r, fail := customWrite(res, errb, "Failed to delete value: ", "STREAM_DELETE_ERROR", "StreamDeleteResult", false)
			if fail != nil {
				reply(nil, fail)
				return
			}
			e.streamWritten(st, reply, name, group, item, r, true, result{orNull(r.OldValue)})
		})
		e.mu.Unlock()
		e.flush(&ob)
		return
	}
	old := e.streamGroupLocked(st, name, group, false).del(item)
	e.mu.Unlock()
	e.streamWritten(st, reply, name, group, item, kvWriteResult{OldValue: old}, true, result{orNull(old)})
}

// streamRead answers get, list and list_groups: from the custom stream's
// function if there is one (its answer or error passed on as they are),
// else from the store.
func streamRead(e *Engine, reply func(json.RawMessage, *wire.ErrorBody), op, name string, input any, local func(st *state) any) {
	ob := outbox{}
	e.mu.Lock()
	st := e.st
	if fid := customStreamLocked(st, op, name); fid != "" {
		e.callCustomLocked(&ob, st, fid, input, reply)
		e.mu.Unlock()
		e.flush(&ob)
		return
	}
	v := local(st)
	e.mu.Unlock()
	ok(reply, v)
}

func builtinStreamGet(e *Engine, c *worker, id string, data json.RawMessage, reply func(json.RawMessage, *wire.ErrorBody)) {
	in, ok := streamArgs(id, data, 3, reply)
	if !ok {
		return
	}
	streamRead(e, reply, "get", *in.StreamName, in, func(st *state) any {
		return orNull(e.streamGroupLocked(st, *in.StreamName, *in.GroupID, false).get(*in.ItemID))
	})
}

func builtinStreamList(e *Engine, c *worker, id string, data json.RawMessage, reply func(json.RawMessage, *wire.ErrorBody)) {
	in, ok := streamArgs(id, data, 2, reply)
	if !ok {
		return
	}
	input := struct {
		StreamName string `json:"stream_name"`
		GroupID    string `json:"group_id"`
	}{*in.StreamName, *in.GroupID}
	streamRead(e, reply, "list", *in.StreamName, input, func(st *state) any {
		return e.streamGroupLocked(st, *in.StreamName, *in.GroupID, false).list()
	})
}

func builtinStreamListGroups(e *Engine, c *worker, id string, data json.RawMessage, reply func(json.RawMessage, *wire.ErrorBody)) {
	in, ok := streamArgs(id, data, 1, reply)
	if !ok {
		return
	}
	input := struct {
		StreamName string `json:"stream_name"`
	}{*in.StreamName}
	streamRead(e, reply, "list_groups", *in.StreamName, input, func(st *state) any {
		return sortedKeys(st.kvLocked().stream[*in.StreamName])
	})
}

func builtinStreamListAll(e *Engine, c *worker, id string, data json.RawMessage, reply func(json.RawMessage, *wire.ErrorBody)) {
	var in struct{}
	if errb := decodeInput(id, data, &in); errb != nil {
		reply(nil, errb)
		return
	}
	type meta struct {
		ID     string   `json:"id"`
		Groups []string `json:"groups"`
	}
	out := struct {
		Stream []meta `json:"stream"`
		Count  int    `json:"count"`
	}{Stream: []meta{}}
	e.mu.Lock()
	kv := e.st.kvLocked()
	for _, name := range sortedKeys(kv.stream) {
		if len(kv.stream[name]) > 0 {
			out.Stream = append(out.Stream, meta{name, sortedKeys(kv.stream[name])})
		}
	}
	e.mu.Unlock()
	out.Count = len(out.Stream)
	ok(reply, out)
}

func builtinStreamSend(e *Engine, c *worker, id string, data json.RawMessage, reply func(json.RawMessage, *wire.ErrorBody)) {
	var in struct {
		StreamName *string         `json:"stream_name"`
		GroupID    *string         `json:"group_id"`
		ID         *string         `json:"id"`
		Type       *string         `json:"type"`
		Data       json.RawMessage `json:"data"`
	}
	if errb := decodeInput(id, data, &in); errb != nil {
		reply(nil, errb)
		return
	}
	for _, f := range []struct {
		name string
		ok   bool
	}{{"stream_name", in.StreamName != nil}, {"group_id", in.GroupID != nil}, {"type", in.Type != nil}, {"data", in.Data != nil}} {
		if !f.ok {
			reply(nil, missingField(id, f.name))
			return
		}
	}
	var ev streamSent
	ev.Type = "event"
	ev.Event.Type, ev.Event.Data = *in.Type, normalize(in.Data)
	e.mu.Lock()
	st := e.st
	steps, payload := streamChangedLocked(st, *in.StreamName, *in.GroupID, in.ID, ev)
	e.mu.Unlock()
	e.fireSteps(st, steps, payload, 0, false)
	reply(nil, nil)
}

// StreamSubscription is a stream client's subscription, as the engine's
// stream WebSocket server reports it to "stream:join" and "stream:leave"
// bindings.
type StreamSubscription struct {
	// SubscriptionID is the client's id of the subscription.
	SubscriptionID string
	// StreamName and GroupID name what the client subscribes to.
	StreamName, GroupID string
	// ID is the item subscribed to; "" for a whole group (sent as null).
	ID string
	// Context is what the stream's authentication function returned for
	// the client's connection; nil sends null.
	Context json.RawMessage
}

func (s StreamSubscription) payload() json.RawMessage {
	var id *string
	if s.ID != "" {
		id = &s.ID
	}
	return marshal(struct {
		SubscriptionID string          `json:"subscription_id"`
		StreamName     string          `json:"stream_name"`
		GroupID        string          `json:"group_id"`
		ID             *string         `json:"id"`
		Context        json.RawMessage `json:"context"`
	}{s.SubscriptionID, s.StreamName, s.GroupID, id, orNull(s.Context)})
}

// StreamJoin does what the engine does when a stream client joins a
// stream (the double has no stream WebSocket server): it calls the
// function of every "stream:join" binding in turn, each awaited, with the
// subscription, and reports whether one of them answered
// {"unauthorized": true}, which refuses the client. Like the engine
// (v0.22.1), it applies neither the stream_name nor the condition of the
// bindings' configs, and a failing function does not refuse. The error is
// ctx's.
func (e *Engine) StreamJoin(ctx context.Context, sub StreamSubscription) (unauthorized bool, err error) {
	err = e.joinLeave(ctx, triggerStreamJoin, sub, func(res json.RawMessage) {
		var r struct {
			Unauthorized bool `json:"unauthorized"`
		}
		if json.Unmarshal(res, &r) == nil && r.Unauthorized {
			unauthorized = true
		}
	})
	return unauthorized, err
}

// StreamLeave does what the engine does when a stream client's
// subscription ends: it calls the function of every "stream:leave"
// binding in turn, each awaited, with the subscription. The error is ctx's.
func (e *Engine) StreamLeave(ctx context.Context, sub StreamSubscription) error {
	return e.joinLeave(ctx, triggerStreamLeave, sub, func(json.RawMessage) {})
}

func (e *Engine) joinLeave(ctx context.Context, ttype string, sub StreamSubscription, result func(json.RawMessage)) error {
	data := sub.payload()
	e.mu.Lock()
	st := e.st
	steps := matchingSteps(st, kvTriggersOf[struct{}](st, ttype), func(struct{}) bool { return true }, func(struct{}) string { return "" })
	e.mu.Unlock()
	for _, s := range steps {
		type outcome struct {
			res  json.RawMessage
			errb *wire.ErrorBody
		}
		ch := make(chan outcome, 1)
		ob := outbox{}
		e.mu.Lock()
		if e.st != st {
			e.mu.Unlock()
			return nil
		}
		id := e.callLocked(&ob, st, s.fn, data, s.metadata, "", "", func(res json.RawMessage, errb *wire.ErrorBody) {
			ch <- outcome{bytes.Clone(res), errb}
		})
		e.mu.Unlock()
		e.flush(&ob)
		select {
		case o := <-ch:
			if o.errb == nil {
				result(o.res)
			}
		case <-ctx.Done():
			if !id.IsZero() {
				e.mu.Lock()
				delete(st.pending, id)
				e.mu.Unlock()
			}
			return ctx.Err()
		}
	}
	return nil
}
