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
	"encoding/binary"
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
//
// A call is in its shard's table from Add until one outcome wins; whoever
// takes it out of the table (under the shard's lock) sets out and signals
// done, once. Its timeout is not a timer of its own but an entry of its
// shard's deadline heap, so a call holds no reference from elsewhere once
// it has ended and can be reused safely.
type Call struct {
	ID       wire.UUID
	sock     atomic.Pointer[connection.Socket]
	done     chan struct{} // signalled once out is set; buffered (1)
	out      Outcome
	deadline int64 // when it times out (clock); set while in the heap
	next     *Call // the next call of its bucket in the shard's table
	index    int32 // its place in the shard's deadline heap, -1 if not there
}

// Bind implements connection.Binder: the call now depends on s.
func (c *Call) Bind(s *connection.Socket) { c.sock.Store(s) }

// Socket returns the socket the call was sent on, or nil if it was not sent yet.
func (c *Call) Socket() *connection.Socket { return c.sock.Load() }

const shards = 64

// shard is one part of the table: its calls by id, and the deadlines of
// those that wait with a timeout, with one timer for the earliest.
type shard struct {
	mu      sync.Mutex
	buckets []*Call     // a hash table of calls by id, chained through Call.next; a power of two long (or empty)
	n       int         // calls in buckets
	heap    []*Call     // min-heap by deadline
	timer   *time.Timer // runs expire; made on first use
	when    int64       // when timer is due (clock), 0 if not armed
	_       [48]byte    // keep shards on separate cache lines
}

// Pending is the table of outbound calls, keyed by invocation id. The read
// loop completes calls straight from it, without an actor hop.
type Pending struct {
	shards [shards]shard
	n      atomic.Int64
	closed atomic.Pointer[error] // once set, new calls fail with it
}

// NewPending returns an empty table.
func NewPending() *Pending { return &Pending{} }

func (p *Pending) shard(id wire.UUID) *shard { return &p.shards[int(id[0]^id[15])%shards] }

// epoch is the origin of clock.
var epoch = time.Now()

// clock returns monotonic nanoseconds since epoch.
func clock() int64 { return int64(time.Since(epoch)) }

// calls recycles Call objects (and their channels): a call goes back to the
// pool only once its one outcome was taken (Release).
var calls = sync.Pool{New: func() any { return &Call{done: make(chan struct{}, 1), index: -1} }}

// Add registers a new call with a fresh id. It fails if the table was
// closed. Release the call when done with it.
func (p *Pending) Add() (*Call, error) {
	if err := p.closed.Load(); err != nil {
		return nil, *err
	}
	c := calls.Get().(*Call)
	c.ID = wire.NewUUID()
	sh := p.shard(c.ID)
	sh.mu.Lock()
	sh.insert(c)
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
	sh := p.shard(id)
	sh.mu.Lock()
	c := sh.delete(id)
	if c != nil && c.index >= 0 {
		sh.remove(c)
	}
	sh.mu.Unlock()
	if c != nil {
		p.n.Add(-1)
	}
	return c
}

// deliver hands o to c, which its caller has just taken out of the table.
func (c *Call) deliver(o Outcome) {
	c.out = o
	c.done <- struct{}{}
}

// finish completes c with o if c is still pending; exactly one outcome wins.
func (p *Pending) finish(c *Call, o Outcome) bool {
	if p.take(c.ID) != c {
		return false
	}
	c.deliver(o)
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
	c.deliver(Outcome{Result: m})
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
	n := p.failWhere(func(*Call) bool { return true }, err)
	if close {
		// No call is armed any more: the timers left running (see
		// remove) have nothing to do.
		for i := range p.shards {
			sh := &p.shards[i]
			sh.mu.Lock()
			if sh.timer != nil {
				sh.timer.Stop()
			}
			sh.when = 0
			sh.mu.Unlock()
		}
	}
	return n
}

func (p *Pending) failWhere(match func(*Call) bool, err error) int {
	var failed []*Call
	for i := range p.shards {
		sh := &p.shards[i]
		sh.mu.Lock()
		for b := range sh.buckets {
			for link := &sh.buckets[b]; *link != nil; {
				c := *link
				if !match(c) {
					link = &c.next
					continue
				}
				*link, c.next = c.next, nil
				sh.n--
				if c.index >= 0 {
					sh.remove(c)
				}
				failed = append(failed, c)
			}
		}
		sh.shrink()
		sh.mu.Unlock()
	}
	p.n.Add(-int64(len(failed)))
	for _, c := range failed {
		c.deliver(Outcome{Err: err})
	}
	return len(failed)
}

// Release returns c to the pool. Call it once Wait returned and c is no
// longer used; c must not have been completed without Wait taking the outcome.
func (p *Pending) Release(c *Call) {
	c.sock.Store(nil)
	c.out = Outcome{}
	calls.Put(c)
}

// ErrTimeout is the cause of a call whose timeout elapsed.
var ErrTimeout = errors.New("iii: invocation timed out")

// Wait waits for c's outcome, for at most timeout (none if ≤ 0) and until
// ctx ends. A call that gives up is removed, so a late result is ignored.
func (p *Pending) Wait(ctx context.Context, c *Call, timeout time.Duration) Outcome {
	if timeout > 0 {
		p.arm(c, timeout)
	}
	if done := ctx.Done(); done != nil {
		select {
		case <-c.done:
			return c.out
		case <-done:
			p.finish(c, Outcome{Err: ctx.Err()}) // or it completed concurrently: take what won
		}
	}
	<-c.done
	return c.out
}

// arm puts c, if it is still pending, in its shard's deadline heap, due
// timeout from now, and makes sure the shard's timer runs by then.
func (p *Pending) arm(c *Call, timeout time.Duration) {
	now := clock()
	sh := p.shard(c.ID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.lookup(c.ID) != c {
		return // it has ended already
	}
	c.deadline = now + int64(timeout)
	sh.push(c)
	if c.index != 0 || sh.when != 0 && sh.when <= c.deadline {
		return // the timer runs by then already
	}
	sh.when = c.deadline
	if sh.timer == nil {
		sh.timer = time.AfterFunc(timeout, func() { p.expire(sh) })
	} else {
		sh.timer.Reset(timeout)
	}
}

// expire times out the calls of sh whose deadline has passed, and arms the
// timer for the next one. The timer may run early or more than once (a
// call whose deadline it was set for has ended since, or a Reset raced a
// run): it then finds nothing due.
func (p *Pending) expire(sh *shard) {
	var buf [16]*Call
	due := buf[:0]
	now := clock()
	sh.mu.Lock()
	for len(sh.heap) > 0 && sh.heap[0].deadline <= now {
		c := sh.heap[0]
		sh.remove(c)
		sh.delete(c.ID)
		due = append(due, c)
	}
	sh.when = 0
	if len(sh.heap) > 0 {
		sh.when = sh.heap[0].deadline
		sh.timer.Reset(time.Duration(sh.when - now))
	}
	sh.mu.Unlock()
	p.n.Add(-int64(len(due)))
	for _, c := range due {
		c.deliver(Outcome{Err: ErrTimeout})
	}
}

// bucket returns the index of id's bucket (ids are random; the shard was
// chosen by other bytes).
func (sh *shard) bucket(id wire.UUID) int {
	return int(binary.LittleEndian.Uint64(id[1:9]) & uint64(len(sh.buckets)-1))
}

// insert adds c to the table, growing it to keep about one call a bucket.
func (sh *shard) insert(c *Call) {
	if sh.n >= len(sh.buckets) {
		sh.resize(max(2*len(sh.buckets), 8))
	}
	b := sh.bucket(c.ID)
	c.next, sh.buckets[b] = sh.buckets[b], c
	sh.n++
}

// lookup returns the call with id, or nil.
func (sh *shard) lookup(id wire.UUID) *Call {
	if sh.n == 0 {
		return nil
	}
	for c := sh.buckets[sh.bucket(id)]; c != nil; c = c.next {
		if c.ID == id {
			return c
		}
	}
	return nil
}

// delete removes the call with id from the table and returns it, or nil.
func (sh *shard) delete(id wire.UUID) *Call {
	if sh.n == 0 {
		return nil
	}
	for link := &sh.buckets[sh.bucket(id)]; *link != nil; link = &(*link).next {
		if c := *link; c.ID == id {
			*link, c.next = c.next, nil
			sh.n--
			sh.shrink()
			return c
		}
	}
	return nil
}

// shrink lets go of a large table once a burst of calls is over.
func (sh *shard) shrink() {
	if sh.n == 0 && len(sh.buckets) > 1024 {
		sh.buckets = nil
	}
}

func (sh *shard) resize(n int) {
	old := sh.buckets
	sh.buckets = make([]*Call, n)
	for _, c := range old {
		for c != nil {
			next := c.next
			b := sh.bucket(c.ID)
			c.next, sh.buckets[b] = sh.buckets[b], c
			c = next
		}
	}
}

// push adds c to the deadline heap.
func (sh *shard) push(c *Call) {
	c.index = int32(len(sh.heap))
	sh.heap = append(sh.heap, c)
	sh.up(int(c.index))
}

// remove takes c out of the deadline heap.
func (sh *shard) remove(c *Call) {
	i, last := int(c.index), len(sh.heap)-1
	if i != last {
		sh.swap(i, last)
	}
	sh.heap[last] = nil
	sh.heap = sh.heap[:last]
	c.index = -1
	if i != last {
		sh.down(i)
		sh.up(i)
	}
	if len(sh.heap) == 0 && cap(sh.heap) > 1024 {
		sh.heap = nil // a burst is over: do not keep its array
	}
	// The timer is left to run when the heap empties: with few calls in
	// flight most shards empty after every call, and stopping the timer
	// then re-arming it for the next call cost two timer-heap updates per
	// call. It runs once, finds nothing due and stays off.
}

func (sh *shard) swap(i, j int) {
	h := sh.heap
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = int32(i), int32(j)
}

func (sh *shard) up(i int) {
	h := sh.heap
	for i > 0 {
		parent := (i - 1) / 2
		if h[parent].deadline <= h[i].deadline {
			return
		}
		sh.swap(i, parent)
		i = parent
	}
}

func (sh *shard) down(i int) {
	h := sh.heap
	for {
		least, l := i, 2*i+1
		if l < len(h) && h[l].deadline < h[least].deadline {
			least = l
		}
		if r := l + 1; r < len(h) && h[r].deadline < h[least].deadline {
			least = r
		}
		if least == i {
			return
		}
		sh.swap(i, least)
		i = least
	}
}
