package invocation

import (
	"sync"

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
	user    *goid.Set // holds the goroutine while it runs

	suspended bool  // after a failure, until the supervisor's decision
	held      []any // user messages that arrived while suspended
}

// system wraps a system message on the mailbox's single channel.
type system struct{ m any }

func newMailbox(wg *sync.WaitGroup, user *goid.Set) actor.Mailbox {
	return &mailbox{ch: make(chan any, 6), wg: wg, user: user}
}

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
func (mb *mailbox) UserMessageCount() int { return len(mb.ch) + len(mb.held) }

// run drains the mailbox until the actor stops. If user code ends the
// goroutine with runtime.Goexit (which no recover stops), the actor has
// already dealt with its task (invocationActor.run), and the mailbox goes
// on on a new goroutine.
func (mb *mailbox) run() {
	leave := mb.user.Enter()
	returned := false
	defer func() {
		leave()
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
