package invocation

import (
	"sync"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/iii-go/iii/internal/goid"
)

// mailbox is an invocation actor's mailbox (an actor.Mailbox): a queue
// drained by a goroutine of the actor's own. Messages are handled in
// arrival order; a wake-up is one unlock that readies the parked goroutine,
// with no closure or dispatcher on the way (protoactor's default mailbox
// allocates a closure per wake-up and schedules through a dispatcher). User
// code runs here, so it never blocks another actor. The goroutine ends once
// the actor has processed Stop.
//
// The mailbox is small because there is one per invocation actor, and so
// one per running invocation: a mutex, a queue whose first array, of one
// message, is part of the mailbox (the Inbound hands tasks to idle actors
// only, plus the odd system message), and a second mutex the goroutine
// sleeps on, with no channel. Posting never blocks. While the actor is
// suspended (after a failure, until its supervisor decides), user messages
// stay in the queue, in order, and only system messages are taken.
type mailbox struct {
	mu        sync.Mutex
	wake      sync.Mutex // locked but while a post wakes the goroutine: a binary semaphore
	head      int32      // queue[head:] are the messages not taken yet
	sleeping  bool       // the goroutine is, or is about to be, blocked on wake
	suspended bool       // after a failure, until the supervisor's decision
	queue     []any
	invoker   actor.MessageInvoker
	owner     *mailboxOwner
	goid      atomic.Uint64 // the id of the goroutine that drains it (see Inbound.Runs); goidEnded once it has ended
	first     [1]any        // queue's first array
}

// goidEnded is the goid of a mailbox whose goroutine has ended for good
// (no goroutine has that id).
const goidEnded = ^uint64(0)

// system wraps a system message in the mailbox's single queue.
type system struct{ m any }

// mailboxOwner is told of its mailboxes' goroutines: wg counts them, and
// ended (if not nil) is called by one that ends for good, once its
// mailbox's goid is goidEnded.
type mailboxOwner struct {
	wg    sync.WaitGroup
	ended func(*mailbox)
}

func newMailbox(owner *mailboxOwner) *mailbox {
	mb := &mailbox{owner: owner}
	mb.queue = mb.first[:0]
	mb.wake.Lock()
	return mb
}

// PostUserMessage implements actor.Mailbox.
func (mb *mailbox) PostUserMessage(m any) { mb.post(m) }

// PostSystemMessage implements actor.Mailbox.
func (mb *mailbox) PostSystemMessage(m any) { mb.post(system{m}) }

func (mb *mailbox) post(m any) {
	mb.mu.Lock()
	mb.queue = append(mb.queue, m)
	wake := mb.sleeping
	mb.sleeping = false
	mb.mu.Unlock()
	if wake {
		mb.wake.Unlock() // exactly one unlock per sleep: sleeping was set by it
	}
}

// take returns the next message to handle, waiting for one: the oldest,
// or while the actor is suspended, the oldest system message.
func (mb *mailbox) take() any {
	mb.mu.Lock()
	for {
		if m, ok := mb.takeLocked(); ok {
			mb.mu.Unlock()
			return m
		}
		if int(mb.head) == len(mb.queue) {
			mb.queue, mb.head = mb.queue[:0], 0
		}
		mb.sleeping = true
		mb.mu.Unlock()
		mb.wake.Lock() // until a post unlocks it
		mb.mu.Lock()
	}
}

func (mb *mailbox) takeLocked() (any, bool) {
	q := mb.queue
	i := int(mb.head)
	if mb.suspended {
		for i < len(q) {
			if _, ok := q[i].(system); ok {
				break
			}
			i++
		}
	}
	if i == len(q) {
		return nil, false
	}
	m := q[i]
	if i == int(mb.head) {
		q[i] = nil
		mb.head++
	} else { // a system message overtakes the user messages held
		copy(q[i:], q[i+1:])
		q[len(q)-1] = nil
		mb.queue = q[:len(q)-1]
	}
	return m, true
}

// RegisterHandlers implements actor.Mailbox; the dispatcher is not used.
func (mb *mailbox) RegisterHandlers(invoker actor.MessageInvoker, _ actor.Dispatcher) {
	mb.invoker = invoker
}

// Start implements actor.Mailbox.
func (mb *mailbox) Start() {
	mb.owner.wg.Add(1)
	go mb.run()
}

// UserMessageCount implements actor.Mailbox (for protoactor's metrics):
// the messages not taken yet.
func (mb *mailbox) UserMessageCount() int {
	mb.mu.Lock()
	defer mb.mu.Unlock()
	return len(mb.queue) - int(mb.head)
}

// run drains the mailbox until the actor stops. If user code ends the
// goroutine with runtime.Goexit (which no recover stops), the actor has
// already dealt with its task (invocationActor.run), and the mailbox goes
// on on a new goroutine.
func (mb *mailbox) run() {
	mb.goid.Store(goid.ID())
	returned := false
	defer func() {
		if !returned {
			mb.goid.Store(0)
			go mb.run()
			return
		}
		mb.goid.Store(goidEnded)
		if mb.owner.ended != nil {
			mb.owner.ended(mb)
		}
		mb.owner.wg.Done()
	}()
	mb.loop()
	returned = true
}

func (mb *mailbox) loop() {
	for {
		m := mb.take()
		if s, ok := m.(system); ok {
			if mb.handleSystem(s.m) {
				return
			}
			continue
		}
		mb.invokeUser(m)
	}
}

// handleSystem handles one system message and reports whether the actor
// has stopped (an invocation actor has no children, so Stop completes at once).
func (mb *mailbox) handleSystem(m any) (stopped bool) {
	switch m.(type) {
	case *actor.SuspendMailbox:
		mb.setSuspended(true)
		return false
	case *actor.ResumeMailbox:
		mb.setSuspended(false) // the user messages held come next, in order
		return false
	}
	defer func() {
		if r := recover(); r != nil {
			mb.invoker.EscalateFailure(r, m)
		}
	}()
	mb.invoker.InvokeSystemMessage(m)
	_, stopped = m.(*actor.Stop)
	return stopped
}

func (mb *mailbox) setSuspended(v bool) {
	mb.mu.Lock()
	mb.suspended = v
	mb.mu.Unlock()
}

func (mb *mailbox) invokeUser(m any) {
	defer func() {
		if r := recover(); r != nil {
			mb.invoker.EscalateFailure(r, m) // suspends this mailbox and asks the supervisor
		}
	}()
	mb.invoker.InvokeUserMessage(m)
}
