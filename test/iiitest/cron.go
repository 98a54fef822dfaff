package iiitest

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"

	"github.com/iii-go/iii/connection/wire"
)

// The engine's cron worker (iii-cron) provides the "cron" trigger type.
// The double's copy fires each binding on its schedule (see cronexpr.go
// for the dialect), taking time from the engine's Clock (WithClock).
func init() {
	registerEngineTriggerType(engineTriggerType{
		id:          "cron",
		description: "Cron-based scheduled triggers",
		newProvider: func(e *Engine) engineProvider {
			return &cronProvider{jobs: make(map[string]*cronJob)}
		},
	})
}

// cronProvider runs the cron jobs of one engine state. Its fields are
// guarded by Engine.mu.
type cronProvider struct {
	jobs   map[string]*cronJob
	closed bool
}

// cronJob is one binding's schedule. Like the engine's job loop, it is
// armed for the first scheduled time after now, fires, waits for the
// function's result, and only then is armed again, from the time the run
// ended: runs never overlap, and the times that passed during a run are
// skipped.
type cronJob struct {
	p       *cronProvider
	st      *state
	b       *binding
	cond    string
	sched   *cronSchedule
	timer   ClockTimer
	next    time.Time
	stopped bool
}

func (p *cronProvider) bind(e *Engine, ob *outbox, st *state, b *binding) *wire.ErrorBody {
	var cfg struct {
		Expression any `json:"expression"`
		Condition  any `json:"condition_function_id"`
	}
	_ = json.Unmarshal(b.config, &cfg)
	expr, _ := cfg.Expression.(string)
	if expr == "" {
		return &wire.ErrorBody{Code: "trigger_registration_failed", Message: "Cron expression is required"}
	}
	if p.closed {
		return &wire.ErrorBody{Code: "trigger_registration_failed", Message: "cron scheduler is shutting down; cannot register job '" + b.id + "'"}
	}
	if p.jobs[b.id] != nil {
		return &wire.ErrorBody{Code: "trigger_registration_failed", Message: "Cron job '" + b.id + "' is already registered"}
	}
	sched, err := parseCron(expr)
	if err != nil {
		return &wire.ErrorBody{Code: "trigger_registration_failed", Message: "Invalid cron expression '" + expr + "': " + err.Error()}
	}
	j := &cronJob{p: p, st: st, b: b, sched: sched}
	j.cond, _ = cfg.Condition.(string)
	p.jobs[b.id] = j
	j.armLocked(e)
	return nil
}

func (p *cronProvider) unbind(e *Engine, ob *outbox, st *state, b *binding) {
	if j := p.jobs[b.id]; j != nil {
		delete(p.jobs, b.id)
		j.stopLocked()
	}
}

// close stops every job (the engine stops or restarts).
func (p *cronProvider) close() {
	p.closed = true
	for id, j := range p.jobs {
		delete(p.jobs, id)
		j.stopLocked()
	}
}

func (j *cronJob) stopLocked() {
	j.stopped = true
	if j.timer != nil {
		j.timer.Stop()
		j.timer = nil
	}
}

// armLocked sets the timer for the first scheduled time after now; a
// schedule with no time left leaves the job idle, as the engine does.
func (j *cronJob) armLocked(e *Engine) {
	clk := e.clock()
	now := clk.Now()
	next, ok := j.sched.next(now)
	if !ok {
		e.log.Warn("iiitest: no upcoming schedule for cron job", "job", j.b.id)
		return
	}
	j.next = next
	j.timer = clk.AfterFunc(next.Sub(now), func() { j.fire(e) })
}

// fire runs the job once: the condition function first, if any, then the
// bound function, with the binding's metadata.
func (j *cronJob) fire(e *Engine) {
	if !e.enter() {
		return
	}
	defer e.wg.Done()
	ob := outbox{}
	e.mu.Lock()
	if j.stopped || e.st != j.st {
		e.mu.Unlock()
		return
	}
	j.timer = nil
	event := cronEventJSON(j.b.id, j.next, e.clock().Now())
	if j.cond != "" {
		e.callLocked(&ob, j.st, j.cond, event, nil, "", "", func(res json.RawMessage, errb *wire.ErrorBody) {
			if errb != nil || bytes.Equal(bytes.TrimSpace(res), []byte("false")) {
				j.rearm(e)
				return
			}
			j.call(e, event)
		})
	} else {
		j.callLocked(e, &ob, event)
	}
	e.mu.Unlock()
	e.flush(&ob)
}

func (j *cronJob) call(e *Engine, event json.RawMessage) {
	if !e.enter() {
		return
	}
	defer e.wg.Done()
	ob := outbox{}
	e.mu.Lock()
	if !j.stopped && e.st == j.st {
		j.callLocked(e, &ob, event)
	}
	e.mu.Unlock()
	e.flush(&ob)
}

func (j *cronJob) callLocked(e *Engine, ob *outbox, event json.RawMessage) {
	e.callLocked(ob, j.st, j.b.function, event, j.b.metadata, "", "", func(json.RawMessage, *wire.ErrorBody) {
		j.rearm(e)
	})
}

// rearm arms the job again once its run ended (whatever the outcome).
func (j *cronJob) rearm(e *Engine) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if j.stopped || e.st != j.st || j.timer != nil {
		return
	}
	j.armLocked(e)
	e.notifyLocked()
}

// cronEventJSON is the engine's cron event, with its keys in the
// engine's (sorted) order: actual_time, job_id, scheduled_time and
// trigger ("cron"), the times in RFC 3339 with a +00:00 offset and as many
// fractional digits (0, 3, 6 or 9) as they need.
func cronEventJSON(jobID string, scheduled, actual time.Time) json.RawMessage {
	b := []byte(`{"actual_time":"`)
	b = appendRFC3339(b, actual)
	b = append(b, `","job_id":`...)
	b = wire.AppendString(b, jobID)
	b = append(b, `,"scheduled_time":"`...)
	b = appendRFC3339(b, scheduled)
	return append(b, `","trigger":"cron"}`...)
}

// appendRFC3339 formats t in UTC as the engine's clock library does by
// default (seconds, then .mmm, .mmmuuu or .mmmuuunnn when not zero, then
// "+00:00").
func appendRFC3339(b []byte, t time.Time) []byte {
	t = t.UTC()
	b = t.AppendFormat(b, "2006-01-02T15:04:05")
	ns := t.Nanosecond()
	switch {
	case ns == 0:
	case ns%1_000_000 == 0:
		b = append(b, '.')
		b = appendPadded(b, ns/1_000_000, 3)
	case ns%1_000 == 0:
		b = append(b, '.')
		b = appendPadded(b, ns/1_000, 6)
	default:
		b = append(b, '.')
		b = appendPadded(b, ns, 9)
	}
	return append(b, "+00:00"...)
}

func appendPadded(b []byte, v, width int) []byte {
	s := strconv.Itoa(v)
	for i := len(s); i < width; i++ {
		b = append(b, '0')
	}
	return append(b, s...)
}
