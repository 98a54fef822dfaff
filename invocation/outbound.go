// Package invocation owns invocations while they are in flight: inbound
// ones, each run by an invocation actor from a pool (inbound.go), and
// outbound ones, each a pending call waiting for its result (this file).
//
// It is an implementation package of the iii SDK (github.com/iii-go/iii),
// importable for the SDK's own use: it follows the SDK's version (iii.Version)
// and its API may change in any release. Programs use the root package iii,
// which documents every type they need.
package invocation

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/iii-go/iii/connection"
	"github.com/iii-go/iii/connection/wire"
)

// Outcome is how a call ended: a result frame from the engine, or Err.
type Outcome struct {
	Result *wire.InvocationResult
	Err    error
}

// Call is an outbound invocation waiting for its result.
type Call struct {
	ID         wire.UUID
	FunctionID string
	sock       atomic.Pointer[connection.Socket]
	done       chan Outcome
	p          *Pending    // the table the call is in (the timer's)
	timer      *time.Timer // times the call out; kept across reuses
	spoilt     bool        // the timer may still be running: never reuse
}

// Bind implements connection.Binder: the call now depends on s.
func (c *Call) Bind(s *connection.Socket) { c.sock.Store(s) }

// Socket returns the socket the call was sent on, or nil if it was not sent yet.
func (c *Call) Socket() *connection.Socket { return c.sock.Load() }

const shards = 64

// Pending is the table of outbound calls, keyed by invocation id. The read
// loop completes calls straight from it, without an actor hop.
type Pending struct {
	shards [shards]struct {
		mu sync.Mutex
		m  map[wire.UUID]*Call
		_  [40]byte // keep shards on separate cache lines
	}
	n      atomic.Int64
	closed atomic.Pointer[error] // once set, new calls fail with it
}

// NewPending returns an empty table.
func NewPending() *Pending {
	p := &Pending{}
	for i := range p.shards {
		p.shards[i].m = make(map[wire.UUID]*Call)
	}
	return p
}

func (p *Pending) shard(id wire.UUID) int { return int(id[0]^id[15]) % shards }

// calls recycles Call objects (and their channels): a call goes back to the
// pool only once its one outcome was taken (Release).
var calls = sync.Pool{New: func() any { return &Call{done: make(chan Outcome, 1)} }}

// Add registers a new call to functionID with a fresh id. It fails if the
// table was closed. Release the call when done with it.
func (p *Pending) Add(functionID string) (*Call, error) {
	if err := p.closed.Load(); err != nil {
		return nil, *err
	}
	c := calls.Get().(*Call)
	c.ID, c.FunctionID, c.p = wire.NewUUID(), functionID, p
	sh := &p.shards[p.shard(c.ID)]
	sh.mu.Lock()
	sh.m[c.ID] = c
	sh.mu.Unlock()
	p.n.Add(1)
	if err := p.closed.Load(); err != nil { // closed concurrently: do not strand the call
		p.finish(c, Outcome{Err: *err})
	}
	return c, nil
}

// Len returns the number of calls in flight.
func (p *Pending) Len() int { return int(p.n.Load()) }

// take removes the call with id, if it is still pending.
func (p *Pending) take(id wire.UUID) *Call {
	sh := &p.shards[p.shard(id)]
	sh.mu.Lock()
	c, ok := sh.m[id]
	if ok {
		delete(sh.m, id)
	}
	sh.mu.Unlock()
	if ok {
		p.n.Add(-1)
	}
	return c
}

// finish completes c with o if c is still pending; exactly one outcome wins.
func (p *Pending) finish(c *Call, o Outcome) bool {
	if p.take(c.ID) != c {
		return false
	}
	c.done <- o
	return true
}

// Complete delivers a result frame to its call. It reports false for an
// unknown id (a late result after a timeout, or an id this worker never
// issued), which the caller ignores.
func (p *Pending) Complete(m *wire.InvocationResult) bool {
	c := p.take(m.InvocationID)
	if c == nil {
		return false
	}
	c.done <- Outcome{Result: m}
	return true
}

// Fail ends c with err if it is still pending.
func (p *Pending) Fail(c *Call, err error) bool { return p.finish(c, Outcome{Err: err}) }

// FailSocket fails every call that was sent on s.
func (p *Pending) FailSocket(s *connection.Socket, err error) int {
	return p.failWhere(func(c *Call) bool { return c.sock.Load() == s }, err)
}

// FailAll fails every pending call, and with close set, every later Add too.
func (p *Pending) FailAll(err error, close bool) int {
	if close {
		p.closed.Store(&err)
	}
	return p.failWhere(func(*Call) bool { return true }, err)
}

func (p *Pending) failWhere(match func(*Call) bool, err error) int {
	var failed []*Call
	for i := range p.shards {
		sh := &p.shards[i]
		sh.mu.Lock()
		for id, c := range sh.m {
			if match(c) {
				delete(sh.m, id)
				failed = append(failed, c)
			}
		}
		sh.mu.Unlock()
	}
	p.n.Add(-int64(len(failed)))
	for _, c := range failed {
		c.done <- Outcome{Err: err}
	}
	return len(failed)
}

// Release returns c to the pool. Call it once Wait returned and c is no
// longer used; c must not have been completed without Wait taking the outcome.
func (p *Pending) Release(c *Call) {
	if c.spoilt {
		return
	}
	c.sock.Store(nil)
	c.FunctionID, c.p = "", nil
	calls.Put(c)
}

// ErrTimeout is the cause of a call whose timeout elapsed.
var ErrTimeout = errors.New("iii: invocation timed out")

// Wait waits for c's outcome, for at most timeout (none if ≤ 0) and until
// ctx ends. A call that gives up is removed, so a late result is ignored.
func (p *Pending) Wait(ctx context.Context, c *Call, timeout time.Duration) Outcome {
	if timeout > 0 {
		if c.timer == nil {
			c.timer = time.AfterFunc(timeout, c.timedOut)
		} else {
			c.timer.Reset(timeout)
		}
		defer func() {
			if !c.timer.Stop() {
				c.spoilt = true // fired: its function may still be running
			}
		}()
	}
	done := ctx.Done()
	if done == nil { // a context that never ends: one channel to wait on
		return <-c.done
	}
	select {
	case o := <-c.done:
		return o
	case <-done:
		if p.finish(c, Outcome{Err: ctx.Err()}) {
			return <-c.done
		}
	}
	return <-c.done // completed concurrently: take what won
}

func (c *Call) timedOut() { c.p.finish(c, Outcome{Err: ErrTimeout}) }
