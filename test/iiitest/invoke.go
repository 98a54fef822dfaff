package iiitest

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"

	"github.com/iii-go/iii/connection/wire"
)

const enqueueProvider = "engine::queue::enqueue"

func notFound(id string) *wire.ErrorBody {
	return &wire.ErrorBody{Code: "function_not_found", Message: "Function " + id + " not found"}
}

// invoke routes a worker's invokefunction (§4.5). m aliases the read
// buffer; everything is encoded before returning.
func (e *Engine) invoke(c *worker, m *wire.InvokeFunction) {
	if e.nsInvokeRefused(c, m, m.HasInvocationID) {
		return
	}
	if m.Action.Kind == wire.ActionEnqueue {
		e.enqueueAction(c, m)
		return
	}
	sync := m.HasInvocationID && m.Action.Kind == wire.ActionNone
	id := m.InvocationID
	if !sync {
		id = wire.NewUUID()
	}
	e.mu.Lock()
	if c.gone {
		e.mu.Unlock()
		return
	}
	f := c.st.functions[e.invokeKey(m)]
	if f == nil || f.builtin != nil {
		var missing *wire.ErrorBody
		if f == nil {
			missing = e.notFoundLocked(c.st, e.invokeKey(m))
		}
		e.mu.Unlock()
		if f != nil {
			e.callBuiltin(c, f, m, sync)
		} else if sync {
			e.reply(c, m, nil, missing)
		}
		return
	}
	h := f.owner
	if h.isClosed() {
		// The engine's send to the handler's writer task fails at once.
		e.mu.Unlock()
		if sync {
			e.reply(c, m, nil, &wire.ErrorBody{Code: "channel_send_failed", Message: "channel closed"})
		}
		return
	}
	p := pending{handler: h, functionID: m.FunctionID, traceparent: m.Traceparent, baggage: m.Baggage}
	if f.idBaggage == "" || f.idBaggage[len(functionIDBaggage):] != m.FunctionID {
		f.idBaggage = functionIDBaggage + m.FunctionID
	}
	idBaggage := f.idBaggage
	if sync {
		p.caller = c
	}
	var reused *wire.InvocationResult
	if old, ok := c.st.pending[id]; ok && old.caller != nil {
		// The engine keys its pending map by the caller's id: the earlier
		// waiter is dropped and its call fails.
		reused = &wire.InvocationResult{InvocationID: id, FunctionID: old.functionID, Traceparent: old.traceparent, Baggage: old.baggage,
			Error: &wire.ErrorBody{Code: "invocation_error", Message: "channel closed"}}
		oc := old.caller
		defer func() {
			fb := getBuf()
			fb.b = reused.AppendJSON(fb.b)
			oc.send(fb, oc != c)
		}()
	}
	c.st.pending[id] = p
	e.mu.Unlock()

	baggage, traceparent := m.Baggage, normalizeTraceparent(m.Traceparent)
	if m.Traceparent != "" || baggage != "" {
		// The engine re-injects the caller's context with iii.function.id
		// naming the target function.
		if baggage == "" {
			baggage = idBaggage // what withFunctionIDBaggage would build
		} else {
			baggage = withFunctionIDBaggage(baggage, m.FunctionID)
		}
	}

	c.scratch = injectCaller(c.scratch[:0], m.Data, c.id)
	d := wire.InvokeFunction{
		InvocationID:    id,
		HasInvocationID: true,
		FunctionID:      m.FunctionID,
		Data:            c.scratch,
		Traceparent:     traceparent,
		Baggage:         baggage,
		Metadata:        m.Metadata,
	}
	fb := getBuf()
	fb.b = d.AppendJSON(fb.b)
	e.dispatch(func() { h.send(fb, h != c) })
	if cap(c.scratch) > 1<<20 {
		c.scratch = nil
	}
}

// reply answers a synchronous call of c.
func (e *Engine) reply(c *worker, m *wire.InvokeFunction, result json.RawMessage, errb *wire.ErrorBody) {
	r := wire.InvocationResult{
		InvocationID: m.InvocationID,
		FunctionID:   m.FunctionID,
		Error:        errb,
		Traceparent:  m.Traceparent,
		Baggage:      m.Baggage,
	}
	if errb == nil && !wire.IsNull(result) {
		r.Result = result
	}
	fb := getBuf()
	fb.b = r.AppendJSON(fb.b)
	c.send(fb, false)
}

// result relays a handler's invocationresult to whoever waits for it.
func (e *Engine) result(c *worker, m *wire.InvocationResult) {
	e.mu.Lock()
	if c.gone {
		e.mu.Unlock()
		return
	}
	p, ok := c.st.pending[m.InvocationID]
	if ok {
		delete(c.st.pending, m.InvocationID)
	}
	e.mu.Unlock()
	if !ok {
		e.log.Debug("iiitest: result for an unknown invocation dropped", "worker", c.id, "invocation_id", m.InvocationID.String())
		return
	}
	if p.cb != nil {
		if m.Error != nil {
			p.cb(nil, m.Error)
		} else {
			p.cb(m.Result, nil)
		}
		return
	}
	if p.caller == nil {
		return
	}
	r := wire.InvocationResult{
		InvocationID: m.InvocationID,
		FunctionID:   p.functionID,
		Error:        m.Error,
		Traceparent:  p.traceparent,
		Baggage:      p.baggage,
	}
	if m.Error == nil && !wire.IsNull(m.Result) {
		r.Result = m.Result
	}
	fb := getBuf()
	fb.b = r.AppendJSON(fb.b)
	e.dispatch(func() { p.caller.send(fb, p.caller != c) })
}

// callBuiltin runs an engine:: function for worker c, inline on c's reader.
func (e *Engine) callBuiltin(c *worker, f *function, m *wire.InvokeFunction, sync bool) {
	cp := *m
	cp.Data = bytes.Clone(m.Data)
	cp.Metadata = bytes.Clone(m.Metadata)
	if f.owner == nil { // an HTTP-invoked function (httpfn.go) is no builtin
		c.record(&cp, true)
	}
	reply := func(json.RawMessage, *wire.ErrorBody) {}
	if sync {
		reply = func(res json.RawMessage, errb *wire.ErrorBody) { e.reply(c, &cp, res, errb) }
	}
	e.dispatch(func() { f.builtin(e, c, f.id, cp.Data, reply) })
}

// callLocked makes an engine-originated call (trigger fire, queue job,
// Invoke): an engine-generated invocation id, no _caller_worker_id. cb, if
// not nil, gets the outcome; it runs without Engine.mu held and must copy
// the result if it keeps it. It returns the invocation id (zero for
// builtins and missing functions).
func (e *Engine) callLocked(ob *outbox, st *state, fnID string, data, metadata json.RawMessage, traceparent, baggage string, cb func(json.RawMessage, *wire.ErrorBody)) wire.UUID {
	f := st.functions[fnID]
	if f == nil {
		if cb != nil {
			errb := e.notFoundLocked(st, fnID)
			ob.later = append(ob.later, func() { cb(nil, errb) })
		}
		return wire.UUID{}
	}
	if f.builtin != nil {
		reply := func(json.RawMessage, *wire.ErrorBody) {}
		if cb != nil {
			reply = cb
		}
		data := bytes.Clone(data)
		ob.later = append(ob.later, func() { f.builtin(e, nil, f.id, data, reply) })
		return wire.UUID{}
	}
	if f.owner.isClosed() {
		if cb != nil {
			ob.later = append(ob.later, func() { cb(nil, &wire.ErrorBody{Code: "channel_send_failed", Message: "channel closed"}) })
		}
		return wire.UUID{}
	}
	id := wire.NewUUID()
	st.pending[id] = pending{handler: f.owner, functionID: f.id, cb: cb}
	if data == nil {
		data = json.RawMessage("null")
	}
	ob.addCall(f.owner, &wire.InvokeFunction{
		InvocationID:    id,
		HasInvocationID: true,
		FunctionID:      f.id,
		Data:            data,
		Traceparent:     traceparent,
		Baggage:         baggage,
		Metadata:        metadata,
	})
	return id
}

// Invoke calls function functionID the way the engine itself does (like a
// trigger fire: engine-generated invocation id, no _caller_worker_id) and
// waits for its result. It returns the handler's result or its error body;
// the error is ctx's when ctx ends first. Builtins (engine::*) can be
// invoked too.
func (e *Engine) Invoke(ctx context.Context, functionID string, data json.RawMessage) (json.RawMessage, *wire.ErrorBody, error) {
	type outcome struct {
		res  json.RawMessage
		errb *wire.ErrorBody
	}
	ch := make(chan outcome, 1)
	if data == nil {
		data = json.RawMessage("null")
	}
	ob := outbox{}
	e.mu.Lock()
	st := e.st
	id := e.callLocked(&ob, st, functionID, data, nil, "", "", func(res json.RawMessage, errb *wire.ErrorBody) {
		ch <- outcome{bytes.Clone(res), errb}
	})
	e.mu.Unlock()
	e.flush(&ob)
	select {
	case o := <-ch:
		return o.res, o.errb, nil
	case <-ctx.Done():
		if !id.IsZero() {
			e.mu.Lock()
			delete(st.pending, id)
			e.mu.Unlock()
		}
		return nil, nil, ctx.Err()
	}
}

// enqueueAction handles an invokefunction with the enqueue action: the
// engine hands the job to engine::queue::enqueue and answers the caller with
// the receipt id (§4.5).
func (e *Engine) enqueueAction(c *worker, m *wire.InvokeFunction) {
	receipt := wire.NewUUID().String()
	payload := marshal(struct {
		Queue       string          `json:"queue"`
		FunctionID  string          `json:"function_id"`
		Data        json.RawMessage `json:"data"`
		Receipt     string          `json:"messageReceiptId"`
		Traceparent *string         `json:"traceparent"`
		Baggage     *string         `json:"baggage"`
		Namespace   string          `json:"namespace,omitempty"` // WithNamespaces, not default
	}{m.Action.Queue, m.FunctionID, m.Data, receipt, optString(m.Traceparent), optString(enqueueBaggage(m.Baggage, m.FunctionID)), e.enqueueNamespace(m)})
	var cp *wire.InvokeFunction
	if m.HasInvocationID {
		cp = &wire.InvokeFunction{InvocationID: m.InvocationID, FunctionID: m.FunctionID, Traceparent: m.Traceparent, Baggage: m.Baggage}
	}
	ob := outbox{from: c.sock}
	e.mu.Lock()
	if c.gone {
		e.mu.Unlock()
		return
	}
	e.callLocked(&ob, c.st, enqueueProvider, payload, nil, "", "", func(_ json.RawMessage, errb *wire.ErrorBody) {
		if cp == nil {
			return
		}
		if errb != nil {
			msg := errb.Code + ": " + errb.Message
			if errb.Code == "function_not_found" {
				msg = "No queue provider is installed. `TriggerAction::Enqueue` routes through the `" + enqueueProvider +
					"` provider, which the standalone queue worker registers. Add it with `iii worker add queue`. (underlying: " + errb.Message + ")"
			}
			e.reply(c, cp, nil, &wire.ErrorBody{Code: "enqueue_error", Message: msg})
			return
		}
		e.reply(c, cp, receiptResult(receipt), nil)
	})
	e.mu.Unlock()
	e.flush(&ob)
}

// enqueueBaggage is the baggage handed to the queue provider: the caller's,
// with iii.function.id naming the target (none when the caller sent none).
func enqueueBaggage(baggage, fnID string) string {
	if baggage == "" {
		return ""
	}
	return withFunctionIDBaggage(baggage, fnID)
}

func receiptResult(id string) json.RawMessage {
	b := append([]byte(`{"messageReceiptId":`), wire.AppendString(nil, id)...)
	return append(b, '}')
}

func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// functionIDBaggage starts the baggage member naming the called function.
const functionIDBaggage = "iii.function.id="

// withFunctionIDBaggage sets iii.function.id in a W3C baggage header: an
// existing member is removed and the new one goes last, as the engine
// re-serialises it.
func withFunctionIDBaggage(baggage, fnID string) string {
	const key = functionIDBaggage
	if len(baggage) == len(key)+len(fnID) && baggage[:len(key)] == key && baggage[len(key):] == fnID {
		return baggage // what the steps below would rebuild
	}
	var parts []string
	if baggage != "" {
		for _, p := range strings.Split(baggage, ",") {
			k, _, _ := strings.Cut(p, "=")
			if strings.TrimSpace(k) != "iii.function.id" {
				parts = append(parts, p)
			}
		}
	}
	return strings.Join(append(parts, "iii.function.id="+fnID), ",")
}

// injectCaller appends data with "_caller_worker_id" set to id when data is
// a JSON object (replacing an existing member), and data unchanged
// otherwise. The member is spliced in first; the rest of the bytes are
// kept as sent.
func injectCaller(dst, data []byte, id string) []byte {
	i := 0
	for i < len(data) && isSpaceByte(data[i]) {
		i++
	}
	if i >= len(data) || data[i] != '{' {
		return append(dst, data...)
	}
	if bytes.Contains(data, callerKey) {
		data = removeMember(data[i:], callerKey)
		i = 0
	}
	dst = append(dst, `{"_caller_worker_id":`...)
	dst = wire.AppendString(dst, id)
	rest := data[i+1:]
	j := 0
	for j < len(rest) && isSpaceByte(rest[j]) {
		j++
	}
	if j < len(rest) && rest[j] == '}' {
		return append(dst, '}')
	}
	dst = append(dst, ',')
	return append(dst, rest...)
}

var callerKey = []byte(`"_caller_worker_id"`)

func isSpaceByte(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// removeMember returns a copy of the (valid) JSON object obj without its
// top-level members whose raw key is key (quotes included).
func removeMember(obj, key []byte) []byte {
	out := make([]byte, 0, len(obj))
	out = append(out, '{')
	i := 1
	first := true
	for {
		for i < len(obj) && (isSpaceByte(obj[i]) || obj[i] == ',') {
			i++
		}
		if i >= len(obj) || obj[i] == '}' {
			break
		}
		start := i
		i = skipString(obj, i)
		k := obj[start:i]
		for i < len(obj) && (isSpaceByte(obj[i]) || obj[i] == ':') {
			i++
		}
		i = skipValue(obj, i)
		if bytes.Equal(k, key) {
			continue
		}
		if !first {
			out = append(out, ',')
		}
		first = false
		out = append(out, obj[start:i]...)
	}
	return append(out, '}')
}

// skipString returns the index after the string starting at obj[i].
func skipString(b []byte, i int) int {
	i++
	for i < len(b) {
		switch b[i] {
		case '\\':
			i += 2
		case '"':
			return i + 1
		default:
			i++
		}
	}
	return i
}

// skipValue returns the index after the (valid) JSON value at b[i].
func skipValue(b []byte, i int) int {
	depth := 0
	for i < len(b) {
		switch c := b[i]; c {
		case '"':
			i = skipString(b, i)
			if depth == 0 {
				return i
			}
			continue
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return i
			}
			depth--
			if depth == 0 {
				return i + 1
			}
		case ',':
			if depth == 0 {
				return i
			}
		}
		i++
	}
	return i
}

func marshal(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic("iiitest: " + err.Error())
	}
	return b
}
