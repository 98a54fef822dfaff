package iiitest

import (
	"context"
	"sort"
	"sync"
	"time"
)

// Clock is the time source of the double's time-driven work: the cron
// trigger type's schedules and the queue provider's retry backoffs (see
// [WithClock]). The default is the real clock; [FakeClock] is a clock
// tests move by hand.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// AfterFunc calls f in a goroutine of the clock's choice once d has
	// elapsed, unless the returned timer is stopped first.
	AfterFunc(d time.Duration, f func()) ClockTimer
}

// ClockTimer is a pending call of [Clock.AfterFunc].
type ClockTimer interface {
	// Stop cancels the call; it reports whether it did (false when the
	// call already ran or was stopped).
	Stop() bool
}

// WithClock makes the double take time from c instead of the real clock:
// when cron triggers are due, the times their CronEvents carry, and the
// waits between the retries of queue deliveries. With a [FakeClock], a
// test decides when a schedule fires by advancing the clock.
func WithClock(c Clock) Option { return func(cfg *config) { cfg.clock = c } }

// realClock is the default Clock.
type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) AfterFunc(d time.Duration, f func()) ClockTimer { return time.AfterFunc(d, f) }

// clock returns the engine's clock.
func (e *Engine) clock() Clock {
	if e.cfg.clock == nil {
		return realClock{}
	}
	return e.cfg.clock
}

// FakeClock is a [Clock] that stands still until the test moves it: its
// timers fire only inside [FakeClock.Advance], in the advancing goroutine,
// in the order of their due times. Use it with [WithClock] to fire cron
// triggers deterministically. It is safe for concurrent use.
type FakeClock struct {
	mu      sync.Mutex
	now     time.Time
	seq     uint64
	timers  []*fakeTimer
	changed chan struct{}
}

type fakeTimer struct {
	c   *FakeClock
	at  time.Time
	seq uint64
	f   func()
}

// NewFakeClock returns a FakeClock whose time is start.
func NewFakeClock(start time.Time) *FakeClock {
	return &FakeClock{now: start, changed: make(chan struct{})}
}

// Now returns the clock's current time.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc arranges for f to be called by the Advance that moves the clock
// to d from now or past it. A d of zero or less makes f due at once: it
// runs at the next Advance (even Advance(0)).
func (c *FakeClock) AfterFunc(d time.Duration, f func()) ClockTimer {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	t := &fakeTimer{c: c, at: c.now.Add(max(d, 0)), seq: c.seq, f: f}
	c.timers = append(c.timers, t)
	c.notifyLocked()
	return t
}

// Stop cancels the timer.
func (t *fakeTimer) Stop() bool {
	c := t.c
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, x := range c.timers {
		if x == t {
			c.timers = append(c.timers[:i], c.timers[i+1:]...)
			c.notifyLocked()
			return true
		}
	}
	return false
}

func (c *FakeClock) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// Advance moves the clock forward by d. Every timer that falls due on the
// way runs, one after the other, in order of due time (timers due at the
// same time in the order they were set), each with the clock set to its
// due time; the clock then stands at the old time plus d. A timer set by
// one that runs (or by anything it calls synchronously) runs too if it
// falls due before the end. Advance returns when they have all returned.
//
// The double re-arms a cron trigger only when its function's result comes
// back, as the engine computes a job's next time only after its run ended;
// a worker's answer usually arrives after Advance returned, so one Advance
// fires each cron trigger at most once. Wait for the trigger to be armed
// again ([FakeClock.WaitTimers]) before the next Advance.
func (c *FakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	end := c.now.Add(max(d, 0))
	c.mu.Unlock()
	for {
		c.mu.Lock()
		sort.SliceStable(c.timers, func(i, j int) bool {
			a, b := c.timers[i], c.timers[j]
			if !a.at.Equal(b.at) {
				return a.at.Before(b.at)
			}
			return a.seq < b.seq
		})
		if len(c.timers) == 0 || c.timers[0].at.After(end) {
			if end.After(c.now) {
				c.now = end
			}
			c.notifyLocked()
			c.mu.Unlock()
			return
		}
		t := c.timers[0]
		c.timers = c.timers[1:]
		if t.at.After(c.now) {
			c.now = t.at
		}
		c.notifyLocked()
		c.mu.Unlock()
		t.f()
	}
}

// Timers returns how many timers are pending (set and neither run nor
// stopped): for the double, one per armed cron trigger and one per queue
// delivery waiting for its retry.
func (c *FakeClock) Timers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// WaitTimers waits until at least n timers are pending (see
// [FakeClock.Timers]), e.g. until a cron trigger just bound, or just run,
// is armed for its next time. It returns ctx's error if ctx ends first.
func (c *FakeClock) WaitTimers(ctx context.Context, n int) error {
	for {
		c.mu.Lock()
		ok, ch := len(c.timers) >= n, c.changed
		c.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// NextTimer returns the due time of the earliest pending timer; ok is false
// when none is pending.
func (c *FakeClock) NextTimer() (at time.Time, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, t := range c.timers {
		if i == 0 || t.at.Before(at) {
			at = t.at
		}
	}
	return at, len(c.timers) > 0
}
