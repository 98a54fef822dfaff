package invocation

import (
	"sync"

	"github.com/asynkron/protoactor-go/actor"
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
// one per running invocation: a mutex, a slice that holds one message or
// two (the Inbound hands tasks to idle actors only, plus the odd system
// message) and a second mutex the goroutine sleeps on, with no channel.
// Posting never blocks.
type mailbox struct {
	mu       sync.Mutex
	queue    []any // messages not taken yet: queue[head:]
	head     int
	sleeping bool       // the goroutine is, or is about to be, blocked on wake
	wake     sync.Mutex // locked but while a post wakes the goroutine: a binary semaphore
	invoker  actor.MessageInvoker
	wg       *sync.WaitGroup

	suspended bool  // after a failure, until the supervisor's decision
	held      []any // user messages that arrived while suspended
}

// system wraps a system message in the mailbox's single queue.
type system struct{ m any }

func newMailbox(wg *sync.WaitGroup) actor.Mailbox {
	mb := &mailbox{wg: wg}
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

// take returns the next message, waiting for one.
func (mb *mailbox) take() any {
	mb.mu.Lock()
	for mb.head == len(mb.queue) {
		mb.queue, mb.head = mb.queue[:0], 0
		mb.sleeping = true
		mb.mu.Unlock()
		mb.wake.Lock() // until a post unlocks it
		mb.mu.Lock()
	}
	m := mb.queue[mb.head]
	mb.queue[mb.head] = nil
	mb.head++
	mb.mu.Unlock()
	return m
}

// RegisterHandlers implements actor.Mailbox; the dispatcher is not used.
func (mb *mailbox) RegisterHandlers(invoker actor.MessageInvoker, _ actor.Dispatcher) {
	mb.invoker = invoker
}

// Start implements actor.Mailbox.
func (mb *mailbox) Start() {
	mb.wg.Add(1)
	go mb.run()
}

// UserMessageCount implements actor.Mailbox (for protoactor's metrics):
// the messages not taken yet.
func (mb *mailbox) UserMessageCount() int {
	mb.mu.Lock()
	defer mb.mu.Unlock()
	return len(mb.queue) - mb.head
}

// run drains the mailbox until the actor stops. If user code ends the
// goroutine with runtime.Goexit (which no recover stops), the actor has
// already dealt with its task (invocationActor.run), and the mailbox goes
// on on a new goroutine.
func (mb *mailbox) run() {
	returned := false
	defer func() {
		if !returned {
			go mb.run()
			return
		}
		mb.wg.Done()
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
		if mb.suspended {
			mb.held = append(mb.held, m)
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
		mb.suspended = true
		return false
	case *actor.ResumeMailbox:
		mb.suspended = false
		for len(mb.held) > 0 && !mb.suspended { // until done, or it failed again
			h := mb.held[0]
			mb.held = mb.held[1:]
			mb.invokeUser(h)
		}
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

func (mb *mailbox) invokeUser(m any) {
	defer func() {
		if r := recover(); r != nil {
			mb.invoker.EscalateFailure(r, m) // suspends this mailbox and asks the supervisor
		}
	}()
	mb.invoker.InvokeUserMessage(m)
}
