package iiitest

import (
	"bytes"
	"encoding/json"
	"sort"
	"time"

	"github.com/iii-go/iii/connection/wire"
)

// durablePublish is the queue worker's publish function.
const durablePublish = "iii::durable::publish"

// The engine's queue worker provides the "durable:subscriber" trigger type
// and iii::durable::publish: a message published to a topic is queued once
// for each distinct function subscribed to it, and the subscriptions of
// one function compete for its copies. The double's copy exists only
// WithQueue, like its engine::queue::enqueue provider.
func init() {
	registerEngineTriggerType(engineTriggerType{
		id:          "durable:subscriber",
		description: "Queue core module",
		newProvider: func(e *Engine) engineProvider {
			if e.cfg.queue == nil {
				return nil
			}
			return &durableProvider{queues: make(map[string]*durableQueue), subs: make(map[string]*durableSub), timers: make(map[*durableTimer]struct{})}
		},
	})
	builtins[durablePublish] = builtinDef{fn: builtinDurablePublish, description: "Enqueue a message", worker: "queue"}
}

// durableProvider holds the topic queues of one engine state. Its fields
// are guarded by Engine.mu.
type durableProvider struct {
	st     *state
	queues map[string]*durableQueue // by "topic::function"
	subs   map[string]*durableSub   // by binding id
	timers map[*durableTimer]struct{}
	closed bool
}

// durableQueue is the queue of one function's copies of a topic's
// messages, as the engine keeps one per (topic, function).
type durableQueue struct {
	topic, fn string
	waiting   []*durableMsg // oldest first
	subs      []*durableSub
	next      int // round robin over subs
	// The retry tuning of the last subscription that gave a queue_config
	// (nil: the provider's defaults), as the engine keeps it per queue.
	maxRetries *int
	backoffMS  *int
}

// durableSub is one binding: a consumer of its queue.
type durableSub struct {
	id          string
	q           *durableQueue
	cond        string
	concurrency int
	fifo        bool
	inflight    int
	stopped     bool
}

type durableMsg struct {
	data     json.RawMessage
	attempts int
}

type durableTimer struct{ t ClockTimer }

func (p *durableProvider) bind(e *Engine, ob *outbox, st *state, b *binding) *wire.ErrorBody {
	p.st = st
	var cfg struct {
		Topic     any             `json:"topic"`
		Condition any             `json:"condition_function_id"`
		Queue     json.RawMessage `json:"queue_config"`
	}
	_ = json.Unmarshal(b.config, &cfg)
	topic, _ := cfg.Topic.(string)
	if topic == "" {
		// The engine accepts the binding and ignores it.
		e.log.Warn("iiitest: durable:subscriber binding without a topic is ignored", "id", b.id, "function", b.function)
		return nil
	}
	name := topic + "::" + b.function
	q := p.queues[name]
	if q == nil {
		q = &durableQueue{topic: topic, fn: b.function}
		p.queues[name] = q
	}
	s := &durableSub{id: b.id, q: q, concurrency: e.cfg.queue.Concurrency}
	s.cond, _ = cfg.Condition.(string)
	var qc map[string]json.RawMessage
	if json.Unmarshal(cfg.Queue, &qc) == nil && qc != nil {
		var mode string
		var conc, retries, backoff *int
		set := false
		if json.Unmarshal(qc["type"], &mode) == nil && qc["type"] != nil {
			set = true
		}
		for key, dst := range map[string]**int{"concurrency": &conc, "maxRetries": &retries, "backoffDelayMs": &backoff} {
			var v uint64
			if json.Unmarshal(qc[key], &v) == nil && qc[key] != nil {
				n := int(v)
				*dst, set = &n, true
			}
		}
		for _, key := range []string{"visibilityTimeout", "delaySeconds", "backoffType", "maxPriority"} {
			if qc[key] != nil && !bytes.Equal(qc[key], []byte("null")) {
				set = true
			}
		}
		if set {
			s.fifo = mode == "fifo"
			if conc != nil {
				s.concurrency = *conc
			}
			q.maxRetries, q.backoffMS = retries, backoff
		}
	}
	if s.fifo {
		s.concurrency = 1
	}
	p.subs[b.id] = s
	q.subs = append(q.subs, s)
	p.pumpLocked(e, ob, q)
	return nil
}

func (p *durableProvider) unbind(e *Engine, ob *outbox, st *state, b *binding) {
	s := p.subs[b.id]
	if s == nil {
		return
	}
	delete(p.subs, b.id)
	s.stopped = true
	q := s.q
	for i, x := range q.subs {
		if x == s {
			q.subs = append(q.subs[:i], q.subs[i+1:]...)
			break
		}
	}
}

func (p *durableProvider) close() {
	p.closed = true
	for t := range p.timers {
		t.t.Stop()
	}
	clear(p.timers)
}

// publishLocked queues a copy of data for every function subscribed to
// topic. With no subscriber the message is lost (the engine keeps it in a
// queue nothing consumes).
func (p *durableProvider) publishLocked(e *Engine, ob *outbox, topic string, data json.RawMessage) {
	fns := map[string]bool{}
	for _, s := range p.subs {
		if s.q.topic == topic {
			fns[s.q.fn] = true
		}
	}
	names := make([]string, 0, len(fns))
	for fn := range fns {
		names = append(names, fn)
	}
	sort.Strings(names)
	for _, fn := range names {
		q := p.queues[topic+"::"+fn]
		q.waiting = append(q.waiting, &durableMsg{data: bytes.Clone(data)})
		p.pumpLocked(e, ob, q)
	}
}

// pumpLocked hands waiting messages to subscriptions with a free slot.
func (p *durableProvider) pumpLocked(e *Engine, ob *outbox, q *durableQueue) {
	for len(q.waiting) > 0 && len(q.subs) > 0 {
		var s *durableSub
		for i := range q.subs {
			c := q.subs[(q.next+i)%len(q.subs)]
			if c.inflight < max(c.concurrency, 1) {
				s = c
				q.next = (q.next + i + 1) % len(q.subs)
				break
			}
		}
		if s == nil {
			return
		}
		m := q.waiting[0]
		q.waiting = q.waiting[1:]
		s.inflight++
		p.deliverLocked(e, ob, s, m)
	}
}

// deliverLocked makes one attempt: the condition function first, if any
// (a false answer acknowledges the message, an error fails the attempt),
// then the function, with the message's data and no metadata.
func (p *durableProvider) deliverLocked(e *Engine, ob *outbox, s *durableSub, m *durableMsg) {
	if s.cond != "" {
		e.callLocked(ob, p.st, s.cond, m.data, nil, "", "", func(res json.RawMessage, errb *wire.ErrorBody) {
			switch {
			case errb != nil:
				p.settle(e, s, m, errb)
			case bytes.Equal(bytes.TrimSpace(res), []byte("false")):
				p.settle(e, s, m, nil)
			default:
				p.call(e, s, m)
			}
		})
		return
	}
	p.callLocked(e, ob, s, m)
}

func (p *durableProvider) call(e *Engine, s *durableSub, m *durableMsg) {
	if !e.enter() {
		return
	}
	defer e.wg.Done()
	ob := outbox{}
	e.mu.Lock()
	if !p.closed && e.st == p.st {
		p.callLocked(e, &ob, s, m)
	}
	e.mu.Unlock()
	e.flush(&ob)
}

func (p *durableProvider) callLocked(e *Engine, ob *outbox, s *durableSub, m *durableMsg) {
	e.callLocked(ob, p.st, s.q.fn, m.data, nil, "", "", func(_ json.RawMessage, errb *wire.ErrorBody) {
		p.settle(e, s, m, errb)
	})
}

// settle ends an attempt: success frees the slot; a failure is retried
// after the backoff (backoff × 2^(attempt-1)) until the attempts run out,
// then the message is a dead letter. A standard subscription frees its
// slot while a retry waits, and the retried message goes back to the head
// of the queue; a FIFO one keeps it, so the queue waits for the retry.
func (p *durableProvider) settle(e *Engine, s *durableSub, m *durableMsg, errb *wire.ErrorBody) {
	if !e.enter() {
		return
	}
	defer e.wg.Done()
	ob := outbox{}
	e.mu.Lock()
	defer func() {
		e.mu.Unlock()
		e.flush(&ob)
	}()
	if p.closed || e.st != p.st {
		return
	}
	q := s.q
	if errb == nil {
		s.inflight--
		p.pumpLocked(e, &ob, q)
		e.notifyLocked()
		return
	}
	m.attempts++
	qc := e.cfg.queue
	maxAttempts, backoff := qc.MaxAttempts, qc.Backoff
	if q.maxRetries != nil {
		maxAttempts = *q.maxRetries + 1
	}
	if q.backoffMS != nil {
		backoff = time.Duration(*q.backoffMS) * time.Millisecond
	}
	if m.attempts >= maxAttempts {
		p.st.deadLetters = append(p.st.deadLetters, DeadLetter{Topic: q.topic, FunctionID: q.fn, Data: m.data, Attempts: m.attempts, Error: errb})
		s.inflight--
		p.pumpLocked(e, &ob, q)
		e.notifyLocked()
		return
	}
	e.log.Debug("iiitest: durable delivery failed, retrying", "topic", q.topic, "function", q.fn, "attempt", m.attempts)
	if !s.fifo {
		s.inflight--
	}
	dt := &durableTimer{}
	p.timers[dt] = struct{}{}
	dt.t = e.clock().AfterFunc(backoff<<(m.attempts-1), func() { p.retry(e, s, m, dt) })
	p.pumpLocked(e, &ob, q)
	e.notifyLocked()
}

// retry puts a message back after its backoff.
func (p *durableProvider) retry(e *Engine, s *durableSub, m *durableMsg, dt *durableTimer) {
	if !e.enter() {
		return
	}
	defer e.wg.Done()
	ob := outbox{}
	e.mu.Lock()
	if _, ok := p.timers[dt]; ok && !p.closed && e.st == p.st {
		delete(p.timers, dt)
		q := s.q
		if s.fifo && !s.stopped {
			p.deliverLocked(e, &ob, s, m)
		} else {
			if s.fifo {
				s.inflight--
			}
			q.waiting = append([]*durableMsg{m}, q.waiting...)
			p.pumpLocked(e, &ob, q)
		}
	}
	e.mu.Unlock()
	e.flush(&ob)
}

func builtinDurablePublish(e *Engine, c *worker, id string, data json.RawMessage, reply func(json.RawMessage, *wire.ErrorBody)) {
	var in struct {
		Topic *string         `json:"topic"`
		Data  json.RawMessage `json:"data"`
	}
	if errb := decodeInput(id, data, &in); errb != nil {
		reply(nil, errb)
		return
	}
	switch {
	case in.Topic == nil:
		reply(nil, missingField(id, "topic"))
		return
	case in.Data == nil:
		reply(nil, missingField(id, "data"))
		return
	case *in.Topic == "":
		reply(nil, &wire.ErrorBody{Code: "topic_not_set", Message: "Topic is not set"})
		return
	}
	ob := outbox{}
	e.mu.Lock()
	if tt := e.st.ttypes["durable:subscriber"]; tt != nil {
		if p, ok := tt.engine.(*durableProvider); ok && !p.closed {
			if p.st == nil {
				p.st = e.st
			}
			p.publishLocked(e, &ob, *in.Topic, in.Data)
		}
	}
	e.mu.Unlock()
	e.flush(&ob)
	reply(nil, nil)
}
