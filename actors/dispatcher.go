package actors

import (
	"sync"

	"github.com/iii-go/iii/internal/goid"
)

// poolDispatcher runs mailboxes on a fixed set of goroutines instead of
// starting a goroutine at every wake-up, which is what protoactor's default
// dispatcher does (about 5 µs per wake-up against 0.9 µs here; see
// ../shared/research/actor-costs.md). When its queue is full it falls back to
// a goroutine per schedule, so it never blocks a sender. Actors on it must
// not block.
type poolDispatcher struct {
	q    chan func()
	quit chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

func newPoolDispatcher(workers, queue int) *poolDispatcher {
	d := &poolDispatcher{q: make(chan func(), queue), quit: make(chan struct{})}
	d.wg.Add(workers)
	for range workers {
		go d.run()
	}
	return d
}

func (d *poolDispatcher) run() {
	defer d.wg.Done()
	for {
		select {
		case fn := <-d.q:
			fn()
		case <-d.quit:
			return
		}
	}
}

// Schedule implements actor.Dispatcher.
func (d *poolDispatcher) Schedule(fn func()) {
	select {
	case <-d.quit: // closed: no worker drains the queue any more
		go fn()
		return
	default:
	}
	select {
	case d.q <- fn:
	default:
		go fn()
		return
	}
	select {
	case <-d.quit: // closed meanwhile: close's drain may have missed fn
		select {
		case f := <-d.q:
			go f()
		default:
		}
	default:
	}
}

// Throughput implements actor.Dispatcher: messages per mailbox run before yielding.
func (d *poolDispatcher) Throughput() int { return 300 }

// close stops the workers; mailboxes scheduled afterwards run on goroutines of their own.
func (d *poolDispatcher) close() {
	d.once.Do(func() {
		close(d.quit)
		d.wg.Wait()
		// A Schedule that queues after this drain takes one run back out
		// itself (it sees quit closed), so no run is left on the queue.
		for {
			select {
			case fn := <-d.q:
				go fn()
			default:
				return
			}
		}
	})
}

// OwnDispatcher runs one actor's mailbox on one long-lived goroutine of its
// own, for actors that run user code: a wake-up is a channel send to a
// parked goroutine, and code that blocks blocks only its own actor. The
// actor calls Stop while it processes *actor.Stopped; the goroutine exits
// after that run. protoactor schedules a mailbox at most once while it is
// not running, so the buffer absorbs any schedule racing the stop.
type OwnDispatcher struct {
	ch      chan func()
	stopped bool // only touched on the dispatcher's own goroutine
}

// NewOwnDispatcher starts the goroutine; wg counts it until it exits, and
// user (if not nil) holds it meanwhile.
func NewOwnDispatcher(wg *sync.WaitGroup, user *goid.Set) *OwnDispatcher {
	d := &OwnDispatcher{ch: make(chan func(), 4)}
	wg.Add(1)
	go func() {
		defer wg.Done()
		id := user.Enter()
		defer user.Leave(id)
		for fn := range d.ch {
			fn()
			if d.stopped {
				return
			}
		}
	}()
	return d
}

// Schedule implements actor.Dispatcher.
func (d *OwnDispatcher) Schedule(fn func()) { d.ch <- fn }

// Throughput implements actor.Dispatcher.
func (d *OwnDispatcher) Throughput() int { return 300 }

// Stop ends the goroutine after the current run; call it from the actor.
func (d *OwnDispatcher) Stop() { d.stopped = true }
