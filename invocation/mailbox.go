package invocation

import (
	"sync"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/iii-go/iii/internal/goid"
)

// mailbox is an invocation actor's mailbox (an actor.Mailbox): one channel,
// drained by a goroutine of the actor's own. Messages are handled in
// arrival order; a wake-up is one channel send to a parked goroutine, with
// no queue, counters or closure on the way (protoactor's default mailbox
// allocates a closure per wake-up and schedules through a dispatcher). User
// code runs here, so it never blocks another actor. The goroutine ends once
// the actor has processed Stop.
//
// Only one task is ever queued for an invocation actor (the Inbound hands
// tasks to idle actors only), plus the odd system message, so the channel's
// buffer is never full in practice; a send would wait, not fail, if it were.
type mailbox struct {
	ch      chan any
	invoker actor.MessageInvoker
	wg      *sync.WaitGroup
	goid    atomic.Uint64 // the id of the goroutine that drains it (see Inbound.Runs)

	// susp is set after a failure, until the supervisor's decision: rare,
	// so out of line (the pool may hold ten thousand mailboxes).
	susp *suspension
}

// suspension holds the user messages that arrive while a mailbox is
// suspended.
type suspension struct{ held []any }

// system wraps a system message on the mailbox's single channel.
type system struct{ m any }

// PostUserMessage implements actor.Mailbox.
func (mb *mailbox) PostUserMessage(m any) { mb.ch <- m }

// PostSystemMessage implements actor.Mailbox.
func (mb *mailbox) PostSystemMessage(m any) { mb.ch <- system{m} }

// RegisterHandlers implements actor.Mailbox; the dispatcher is not used.
func (mb *mailbox) RegisterHandlers(invoker actor.MessageInvoker, _ actor.Dispatcher) {
	mb.invoker = invoker
}

// Start implements actor.Mailbox.
func (mb *mailbox) Start() {
	mb.wg.Add(1)
	go mb.run()
}

// UserMessageCount implements actor.Mailbox.
func (mb *mailbox) UserMessageCount() int {
	n := len(mb.ch)
	if mb.susp != nil {
		n += len(mb.susp.held)
	}
	return n
}

// run drains the mailbox until the actor stops. If user code ends the
// goroutine with runtime.Goexit (which no recover stops), the actor has
// already dealt with its task (invocationActor.run), and the mailbox goes
// on on a new goroutine.
func (mb *mailbox) run() {
	mb.goid.Store(goid.ID())
	returned := false
	defer func() {
		mb.goid.Store(0)
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
	for m := range mb.ch {
		if s, ok := m.(system); ok {
			if mb.handleSystem(s.m) {
				return
			}
			continue
		}
		if mb.susp != nil {
			mb.susp.held = append(mb.susp.held, m)
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
		if mb.susp == nil {
			mb.susp = &suspension{}
		}
		return false
	case *actor.ResumeMailbox:
		s := mb.susp
		mb.susp = nil
		for s != nil && len(s.held) > 0 {
			h := s.held[0]
			s.held = s.held[1:]
			mb.invokeUser(h)
			if mb.susp != nil { // it failed again: the rest waits, first
				mb.susp.held = append(s.held, mb.susp.held...)
				break
			}
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
