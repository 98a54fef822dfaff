package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// progress reports on stderr. On a terminal a live line, rewritten in
// place, shows the current run's phase and rate; elsewhere (a pipe, a CI
// log) only whole lines are written: one per finished run.
type progress struct {
	w     io.Writer
	tty   bool
	quiet bool
	total int

	mu   sync.Mutex
	n    int
	live bool // a live line is on screen
}

func newProgress(w io.Writer, quiet bool) *progress {
	p := &progress{w: w, quiet: quiet}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

// note writes a line (always, even when quiet: notes are warnings).
func (p *progress) note(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clearLocked()
	fmt.Fprintf(p.w, "bench: "+format+"\n", args...)
}

func (p *progress) clearLocked() {
	if p.live {
		fmt.Fprint(p.w, "\r\033[K")
		p.live = false
	}
}

// step is one run on the progress line.
type step struct {
	p        *progress
	label    string
	n        int
	warmup   time.Duration
	duration time.Duration
	count    func() uint64
	t0       time.Time
	mt0      time.Time
	m0       uint64
	stopTick chan struct{}
	tickDone chan struct{}
	once     sync.Once
}

// start begins a run: count, if not nil, is its running total of ops.
func (p *progress) start(label string, warmup, duration time.Duration, count func() uint64) *step {
	p.mu.Lock()
	p.n++
	s := &step{p: p, label: label, n: p.n, warmup: warmup, duration: duration, count: count, t0: time.Now()}
	p.mu.Unlock()
	if p.tty && !p.quiet {
		s.stopTick, s.tickDone = make(chan struct{}), make(chan struct{})
		go s.tick()
	}
	return s
}

func (s *step) prefix() string {
	if s.p.total > 0 {
		return fmt.Sprintf("[%2d/%d] %s", s.n, s.p.total, s.label)
	}
	return s.label
}

func (s *step) tick() {
	defer close(s.tickDone)
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-s.stopTick:
			return
		case <-t.C:
		}
		s.p.mu.Lock()
		line := s.prefix()
		if s.mt0.IsZero() {
			line += fmt.Sprintf("  warming up %.1fs", time.Since(s.t0).Seconds())
		} else {
			el := time.Since(s.mt0)
			line += fmt.Sprintf("  measuring %.1f/%.1fs", el.Seconds(), s.duration.Seconds())
			if s.count != nil && el > 0 {
				line += "  " + fmtRate(float64(s.count()-s.m0)/el.Seconds()) + " ops/s"
			}
		}
		fmt.Fprint(s.p.w, "\r\033[K"+line)
		s.p.live = true
		s.p.mu.Unlock()
	}
}

// measuring marks the start of the measured window.
func (s *step) measuring() {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	s.mt0 = time.Now()
	if s.count != nil {
		s.m0 = s.count()
	}
}

// done ends the run with a summary line; later calls do nothing.
func (s *step) done(summary string) {
	s.once.Do(func() { s.finish(summary) })
}

func (s *step) finish(summary string) {
	if s.stopTick != nil {
		close(s.stopTick)
		<-s.tickDone
	}
	if s.p.quiet {
		return
	}
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	s.p.clearLocked()
	fmt.Fprintf(s.p.w, "bench: %s: %s\n", s.prefix(), summary)
}
