package iiitest

import (
	"context"
	"encoding/json"
	"slices"
	"time"

	"github.com/iii-go/iii/connection/wire"
)

// Queue defaults, as in the engine's queue worker.
const (
	// DefaultQueueMaxAttempts is how many times a job is tried before it
	// goes to the dead-letter queue.
	DefaultQueueMaxAttempts = 3
	// DefaultQueueBackoff is the wait before a job's second attempt; it
	// doubles for each further attempt.
	DefaultQueueBackoff = time.Second
	// DefaultQueueName is the queue that always exists.
	DefaultQueueName = "default"
	// DefaultQueueConcurrency is how many jobs of one queue are delivered
	// at a time.
	DefaultQueueConcurrency = 10
)

// QueueConfig configures the in-memory queue provider installed by
// [WithQueue].
type QueueConfig struct {
	// Queues are the queue names accepted besides "default" (the engine's
	// queue worker accepts only configured queues).
	Queues []string
	// MaxAttempts is how many times a job is tried before it goes to the
	// dead-letter queue (default 3).
	MaxAttempts int
	// Backoff is the wait before the second attempt; it doubles for each
	// further attempt (default 1 s: 1 s, then 2 s).
	Backoff time.Duration
	// Concurrency is how many jobs of one queue are delivered at a time
	// (default 10); the others wait.
	Concurrency int
}

// WithQueue installs an in-memory engine::queue::enqueue provider, standing
// in for the engine's standalone queue worker. Without it, as on an engine
// without that worker, an invokefunction with the enqueue action is
// answered with enqueue_error ("No queue provider is installed...").
//
// With it, jobs go to "default" or a queue of cfg.Queues (another name is
// refused with enqueue_error "Queue '<name>' not found"). Each job is
// delivered like an engine-originated call: fresh invocation id, no
// metadata, no _caller_worker_id. A job whose delivery fails (an error
// result, the handler disconnecting, or no such function) is tried again
// after the backoff, up to MaxAttempts in total, then kept as a dead
// letter (see [Engine.DeadLetters]). Jobs run concurrently, at most
// Concurrency per queue, and in no particular order; there is no FIFO
// mode.
//
// It also installs the queue worker's topics: the "durable:subscriber"
// trigger type (iii.QueueConfig) and iii::durable::publish, whose messages
// go to the subscribed functions with the same retry defaults
// (MaxAttempts, Backoff, Concurrency per subscription) unless a binding's
// queue_config says otherwise. Retry waits run on the engine's Clock
// (see WithClock).
func WithQueue(cfg QueueConfig) Option {
	return func(c *config) {
		if cfg.MaxAttempts <= 0 {
			cfg.MaxAttempts = DefaultQueueMaxAttempts
		}
		if cfg.Backoff <= 0 {
			cfg.Backoff = DefaultQueueBackoff
		}
		if cfg.Concurrency <= 0 {
			cfg.Concurrency = DefaultQueueConcurrency
		}
		cfg.Queues = append(slices.Clone(cfg.Queues), DefaultQueueName)
		c.queue = &cfg
	}
}

// DeadLetter is a job that failed every attempt: a job of a named queue
// (enqueued with the enqueue action), or a message published to a topic
// (iii::durable::publish) that a "durable:subscriber" function failed.
type DeadLetter struct {
	// Queue is the named queue of an enqueued job; empty for a topic's
	// message.
	Queue string
	// Topic is the topic of a published message; empty for an enqueued
	// job.
	Topic string
	// FunctionID is the function that failed.
	FunctionID string
	// Data is the job's (or message's) data.
	Data json.RawMessage
	// Attempts is how many times it was tried.
	Attempts int
	// Error is the last attempt's error.
	Error *wire.ErrorBody
}

// queuedJob is a job of the in-memory queue.
type queuedJob struct {
	queue, fnID          string
	data                 json.RawMessage
	traceparent, baggage string
}

// queueKnown reports whether the queue provider accepts queue name q.
func (e *Engine) queueKnown(q string) bool {
	return e.cfg.queue != nil && slices.Contains(e.cfg.queue.Queues, q)
}

// queueJob starts delivering a job. It must be called from a goroutine the
// engine's WaitGroup counts.
func (e *Engine) queueJob(job queuedJob) {
	e.mu.Lock()
	if e.down {
		e.mu.Unlock()
		return
	}
	st, stop := e.st, e.stopBg
	e.wg.Add(1)
	e.mu.Unlock()
	go func() {
		defer e.wg.Done()
		e.runJob(st, stop, job)
	}()
}

// runJob delivers a job, with retries and the dead-letter queue.
func (e *Engine) runJob(st *state, stop <-chan struct{}, job queuedJob) {
	qc := e.cfg.queue
	for attempt := 1; ; attempt++ {
		e.mu.Lock()
		if e.st != st {
			e.mu.Unlock()
			return
		}
		sem := st.queueSlots[job.queue]
		if sem == nil {
			sem = make(chan struct{}, qc.Concurrency)
			st.queueSlots[job.queue] = sem
		}
		st.queueWaiting++
		e.notifyLocked()
		e.mu.Unlock()
		select {
		case sem <- struct{}{}:
		case <-stop:
			return
		}
		e.mu.Lock()
		st.queueWaiting--
		e.mu.Unlock()
		errb, ok := e.deliverJob(st, stop, job)
		<-sem
		if !ok || errb == nil {
			return
		}
		if attempt >= qc.MaxAttempts {
			e.mu.Lock()
			if e.st == st {
				st.deadLetters = append(st.deadLetters, DeadLetter{Queue: job.queue, FunctionID: job.fnID, Data: job.data, Attempts: attempt, Error: errb})
				e.notifyLocked()
			}
			e.mu.Unlock()
			return
		}
		e.log.Debug("iiitest: queue job failed, retrying", "function", job.fnID, "attempt", attempt)
		due := make(chan struct{})
		t := e.clock().AfterFunc(qc.Backoff<<(attempt-1), func() { close(due) })
		select {
		case <-due:
		case <-stop:
			t.Stop()
			return
		}
	}
}

// deliverJob makes one attempt; ok is false when the engine stopped.
func (e *Engine) deliverJob(st *state, stop <-chan struct{}, job queuedJob) (*wire.ErrorBody, bool) {
	done := make(chan *wire.ErrorBody, 1)
	ob := outbox{}
	e.mu.Lock()
	if e.st != st {
		e.mu.Unlock()
		return nil, false
	}
	e.callLocked(&ob, st, job.fnID, job.data, nil, job.traceparent, job.baggage, func(_ json.RawMessage, errb *wire.ErrorBody) {
		done <- errb
	})
	e.mu.Unlock()
	e.flush(&ob)
	select {
	case errb := <-done:
		return errb, true
	case <-stop:
		return nil, false
	}
}

// DeadLetters returns the jobs of the queue provider (see [WithQueue])
// that failed every attempt, oldest first.
func (e *Engine) DeadLetters() []DeadLetter {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.st.deadLetters)
}

// WaitDeadLetters waits until at least n jobs are dead letters and returns
// them.
func (e *Engine) WaitDeadLetters(ctx context.Context, n int) ([]DeadLetter, error) {
	var out []DeadLetter
	err := e.waitFor(ctx, func() bool {
		if len(e.st.deadLetters) < n {
			return false
		}
		out = slices.Clone(e.st.deadLetters)
		return true
	})
	return out, err
}
