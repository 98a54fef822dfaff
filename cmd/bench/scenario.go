package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/connection/wire"
	"github.com/iii-go/iii/test/iiitest"
)

// The scenarios, in the order a full run does them.
const (
	scRPC      = "rpc"      // awaited round trips, 100 B, at each -concurrency
	scPayload  = "payload"  // awaited round trips at c=16, each -payload size
	scVoid     = "void"     // fire-and-forget, window of 64
	scEnqueue  = "enqueue"  // awaited enqueue receipts, c=64; deliveries counted
	scFanIn    = "fanin"    // -callers calling workers × 8 calls each, one handler
	scChannel  = "channel"  // bulk bytes through a data channel
	scSides    = "sides"    // rpc c=64 with the handler in a child process
	scInflight = "inflight" // -inflight awaited calls parked at the handler
)

// allScenarios is the order of a full run. inflight comes last: the SDK
// handler keeps the invocation actors it grew for it (one goroutine each),
// which would weigh on every later run in this process.
var allScenarios = []string{scRPC, scPayload, scVoid, scEnqueue, scFanIn, scChannel, scSides, scInflight}

// Fixed shapes of the scenarios that do not follow -concurrency.
const (
	basePayload        = 100 // bytes, the rpc payload
	payloadConcurrency = 16
	refConcurrency     = 64 // void window, enqueue, sides, the targets
	fanInPerCaller     = 8
	queueName          = "bench"
)

// emptyPayload is the payload of the awaited call that closes a void batch.
var emptyPayload = []byte("{}")

// caller is one calling connection of an implementation (a worker, or a
// raw socket); each calling goroutine uses a session of its own.
type caller interface {
	session() session
	close()
}

type session interface {
	// call makes an awaited call of fn.
	call(ctx context.Context, fn string, payload []byte) error
	// void makes a fire-and-forget call of fn.
	void(ctx context.Context, fn string, payload []byte) error
	// enqueue puts a call of fn on the engine's queue and waits for the receipt.
	enqueue(ctx context.Context, queue, fn string, payload []byte) error
}

func (rc *rawCaller) session() session {
	return &rawSession{rc: rc, slot: rawCall{done: make(chan struct{}, 1)}}
}

type rawSession struct {
	rc   *rawCaller
	slot rawCall
}

func (s *rawSession) call(ctx context.Context, fn string, payload []byte) error {
	return s.rc.call(ctx, &s.slot, fn, payload, wire.TriggerAction{})
}

func (s *rawSession) void(ctx context.Context, fn string, payload []byte) error {
	return s.rc.void(ctx, fn, payload)
}

func (s *rawSession) enqueue(ctx context.Context, queue, fn string, payload []byte) error {
	return s.rc.call(ctx, &s.slot, fn, payload, wire.TriggerAction{Kind: wire.ActionEnqueue, Queue: queue})
}

// env is one benchmark process's setup: the engine, the local handlers,
// the control connection.
type env struct {
	opt     options
	url     string
	desc    string          // what the engine is, for the report
	double  *child          // the engine double in a child process, or nil
	inproc  *iiitest.Engine // the engine double in this process, or nil
	ctl     *rawCaller      // calls the handlers' control functions
	local   map[string]*handlerState
	closers []func()
	// otelHandler is the handler worker with telemetry on (-telemetry), whose
	// lost spans the otel rows report.
	otelHandler *iii.III
	prog        *progress

	// -peer: the peers prepared, their running handlers, the reason a
	// peer cannot run.
	peerMu    sync.Mutex
	peers     map[string]*peer
	peerProcs map[string]*peerProc
	peerErr   map[string]error
}

// setup starts what the role needs: an engine double unless -engine is
// given, and the local handlers for role both.
func setup(ctx context.Context, opt options, prog *progress) (*env, error) {
	e := &env{opt: opt, url: opt.engine, local: make(map[string]*handlerState), prog: prog,
		peers: map[string]*peer{}, peerProcs: map[string]*peerProc{}, peerErr: map[string]error{}}
	if e.url == "" {
		if opt.double == "child" {
			ch, url, err := startChild("-serve", "127.0.0.1:0")
			if err == nil {
				e.double, e.url = ch, url
				e.desc = "engine double (test/iiitest) in a child process, " + url
				e.closers = append(e.closers, ch.stop)
			} else {
				prog.note("cannot start the engine double in a child process (%v); running it in this process", err)
			}
		}
		if e.url == "" {
			eng, err := iiitest.Start("127.0.0.1:0", doubleOptions()...)
			if err != nil {
				return nil, err
			}
			e.inproc, e.url = eng, eng.URL
			e.desc = "engine double (test/iiitest) in this process, " + eng.URL
			e.closers = append(e.closers, eng.Close)
		}
	} else {
		e.desc = "external engine " + e.url
	}
	if opt.role == "both" {
		if err := e.startHandlers(ctx, opt.ns); err != nil {
			e.close()
			return nil, err
		}
	}
	rc, err := dialRawCaller(ctx, e.url)
	if err != nil {
		e.close()
		return nil, fmt.Errorf("connecting to %s: %w", e.url, err)
	}
	e.ctl = rc
	e.closers = append(e.closers, rc.close)
	return e, nil
}

// startHandlers connects the handlers of the selected implementations.
func (e *env) startHandlers(ctx context.Context, ns string) error {
	limit := max(e.opt.inflight+64, 1024)
	impls := e.opt.impls
	if e.opt.telemetry && slices.Contains(impls, "sdk") {
		impls = append(slices.Clip(impls), implOtel)
	}
	for _, impl := range impls {
		hs := newHandlerState()
		switch impl {
		case "sdk", implOtel:
			w, err := startSDKHandler(ctx, e.url, ns, impl, hs, limit)
			if err != nil {
				return err
			}
			e.closers = append(e.closers, w.Shutdown)
			if impl == implOtel {
				e.otelHandler = w
			}
		case "raw":
			h, err := startRawHandler(ctx, e.url, ns, hs)
			if err != nil {
				return err
			}
			e.closers = append(e.closers, h.close)
		}
		e.local[impl] = hs
	}
	return nil
}

// close stops everything setup started, last first.
func (e *env) close() {
	for i := len(e.closers) - 1; i >= 0; i-- {
		e.closers[i]()
	}
	e.closers = nil
}

func (e *env) dial(ctx context.Context, impl string) (caller, error) {
	if impl == "sdk" || impl == implOtel {
		return dialSDKCaller(ctx, e.url, impl == implOtel)
	}
	return dialRawCaller(ctx, e.url)
}

// ctlCall calls a handler's control function.
func (e *env) ctlCall(ctx context.Context, ns, impl, op string) (ctlReply, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return e.ctl.ctl(ctx, functionID(ns, impl, opCtl), op)
}

// waitHandler waits until the handler of impl answers its control
// function (a handler in another process may start after the caller).
func (e *env) waitHandler(ctx context.Context, ns, impl string, patience time.Duration) error {
	t0 := time.Now()
	deadline := t0.Add(patience)
	told := false
	for {
		_, err := e.ctlCall(ctx, ns, impl, "ping")
		var re *remoteErr
		if err == nil || !errors.As(err, &re) || re.body.Code != "function_not_found" || time.Now().After(deadline) {
			return err
		}
		if !told && time.Since(t0) > 2*time.Second {
			e.prog.note("waiting for the %s handler (%s) to register", impl, functionID(ns, impl, opCtl))
			told = true
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// sample is everything measured at one edge of a window.
type sample struct {
	at      time.Time
	self    procSample
	double  *procSample
	handler ctlReply
}

func (e *env) sample(ctx context.Context, ns, impl string) (sample, error) {
	s := sample{}
	h, err := e.ctlCall(ctx, ns, impl, "snap")
	if err != nil {
		return s, fmt.Errorf("handler control: %w", err)
	}
	s.handler = h
	if e.double != nil {
		if d, err := e.double.stats(); err == nil {
			s.double = &d
		}
	}
	s.self = sampleSelf()
	s.at = time.Now()
	return s, nil
}

// load is the shape of a throughput run.
type load struct {
	scenario string
	label    string
	ns       string // handler namespace ("" or "side.")
	callers  int    // connections (workers)
	conc     int    // calls in flight per connection (void: the window)
	payload  int
	kind     int
	op       string
}

const (
	kindCall = iota
	kindVoid
	kindEnqueue
	// kindVoidBatch: each calling goroutine sends voidBatch void calls,
	// then one awaited call of echo, and so on (the flow control of the
	// -peer runs, which every SDK can do); an op is a void call.
	kindVoidBatch
)

// voidBatch is the void calls per awaited call in kindVoidBatch.
const voidBatch = 64

// runLoad runs one throughput scenario for one implementation: warm-up,
// then a measured window of -duration.
func (e *env) runLoad(ctx context.Context, impl string, l load) (res result) {
	res = result{Scenario: l.scenario, Impl: impl, Label: l.label, Callers: l.callers,
		Concurrency: l.callers * l.conc, PayloadBytes: l.payload}
	ctx, cancel := context.WithTimeout(ctx, e.opt.warmup+e.opt.duration+2*time.Minute)
	defer cancel()
	patience := 10 * time.Second
	if e.opt.role == "caller" {
		patience = 2 * time.Minute
	}
	if err := e.waitHandler(ctx, l.ns, impl, patience); err != nil {
		res.Error = "handler not reachable: " + err.Error()
		return res
	}
	resetPeakRSS()
	callers := make([]caller, 0, l.callers)
	defer func() {
		for _, c := range callers {
			c.close()
		}
	}()
	for range l.callers {
		c, err := e.dial(ctx, impl)
		if err != nil {
			res.Error = err.Error()
			return res
		}
		callers = append(callers, c)
	}
	fn := functionID(l.ns, impl, l.op)
	start, err := e.ctlCall(ctx, l.ns, impl, "ping")
	if err != nil {
		res.Error = err.Error()
		return res
	}

	var (
		phase     atomic.Int32 // 0 warm-up, 1 measured, 2 stopping
		ops, errs atomic.Uint64
		sent      atomic.Uint64 // void and enqueue: successful calls in any phase, to drain
		firstErr  atomic.Pointer[string]
		hist      shardedHist
		wg        sync.WaitGroup
		stop      = make(chan struct{})
	)
	runCtx, stopCalls := context.WithCancel(ctx)
	defer stopCalls()
	fail := func(err error) {
		errs.Add(1)
		s := err.Error()
		firstErr.CompareAndSwap(nil, &s)
		select { // do not spin on an error that repeats
		case <-stop:
		case <-time.After(time.Millisecond):
		}
	}
	payload := makePayload(l.payload)

	switch l.kind {
	case kindCall, kindEnqueue, kindVoidBatch:
		echoFn := functionID(l.ns, impl, opEcho)
		for ci, c := range callers {
			for g := range l.conc {
				idx := ci*l.conc + g
				wg.Add(1)
				go func() {
					defer wg.Done()
					s := c.session()
					for phase.Load() != 2 {
						t0 := time.Now()
						var err error
						switch l.kind {
						case kindCall:
							err = s.call(runCtx, fn, payload)
						case kindEnqueue:
							err = s.enqueue(runCtx, queueName, fn, payload)
						case kindVoidBatch:
							for i := 0; i < voidBatch && err == nil; i++ {
								err = s.void(runCtx, fn, payload)
							}
							if err == nil {
								err = s.call(runCtx, echoFn, emptyPayload)
							}
						}
						d := time.Since(t0)
						if err != nil {
							if runCtx.Err() != nil {
								return
							}
							fail(err)
							continue
						}
						if l.kind == kindEnqueue {
							sent.Add(1)
						}
						if phase.Load() == 1 {
							if l.kind == kindVoidBatch {
								ops.Add(voidBatch)
								continue
							}
							hist.Record(idx, d)
							ops.Add(1)
						}
					}
				}()
			}
		}
	case kindVoid:
		window := l.conc
		tokens := make(chan struct{}, max(window*16, 1024))
		if hs := e.localHandler(start, impl); hs != nil {
			hs.tokens.Store(&tokens)
			defer hs.tokens.Store(nil)
		} else {
			// The handler is in another process: refill the window from
			// its count, polled every millisecond.
			window = cap(tokens)
			wg.Add(1)
			go func() {
				defer wg.Done()
				last := start.Sink
				for {
					select {
					case <-stop:
						return
					case <-time.After(time.Millisecond):
					}
					r, err := e.ctlCall(runCtx, l.ns, impl, "ping")
					if err != nil {
						continue
					}
					for ; last < r.Sink; last++ {
						select {
						case tokens <- struct{}{}:
						default:
						}
					}
				}
			}()
		}
		for range window {
			tokens <- struct{}{}
		}
		senders := min(window, 8)
		for i := range senders {
			c := callers[i%len(callers)]
			wg.Add(1)
			go func() {
				defer wg.Done()
				s := c.session()
				p := stampedPayload(l.payload) // stamped and sent again: void keeps no reference to it
				for {
					select {
					case <-tokens:
					case <-stop:
						return
					}
					stamp(p, time.Now().UnixNano())
					if err := s.void(runCtx, fn, p); err != nil {
						if runCtx.Err() != nil {
							return
						}
						fail(err)
						tokens <- struct{}{}
						continue
					}
					sent.Add(1)
				}
			}()
		}
	}

	step := e.prog.start(fmt.Sprintf("%s %s %s", l.scenario, l.label, impl), e.opt.warmup, e.opt.duration, func() uint64 {
		if l.kind == kindVoid {
			return sent.Load()
		}
		return ops.Load()
	})
	defer func() { step.done(res.summary()) }()
	shutdown := func() {
		phase.Store(2)
		close(stop)
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			stopCalls() // calls stuck: abort them
			<-done
		}
	}
	if !sleepCtx(ctx, e.opt.warmup) {
		shutdown()
		res.Error = ctx.Err().Error()
		return res
	}
	if l.kind == kindVoid {
		if _, err := e.ctlCall(ctx, l.ns, impl, "reset"); err != nil {
			shutdown()
			res.Error = err.Error()
			return res
		}
	}
	before, err := e.sample(ctx, l.ns, impl)
	if err != nil {
		shutdown()
		res.Error = err.Error()
		return res
	}
	phase.Store(1)
	step.measuring()
	sleepCtx(ctx, e.opt.duration)
	// A window without a completed operation measures nothing (a very short
	// -duration on a loaded machine): it is extended until one completes,
	// for at most 30 s. The rate is over the window's real length.
	for waited := time.Duration(0); ops.Load() == 0 && l.kind != kindVoid && waited < 30*time.Second && ctx.Err() == nil; waited += 10 * time.Millisecond {
		sleepCtx(ctx, 10*time.Millisecond)
	}
	measured := ops.Load()
	after, err := e.sample(ctx, l.ns, impl)
	shutdown()
	if err != nil {
		res.Error = err.Error()
		return res
	}
	res.Seconds = after.at.Sub(before.at).Seconds()
	h := hist.Merged()
	switch l.kind {
	case kindVoid:
		measured = after.handler.Sink - before.handler.Sink
		if after.handler.Oneway != nil {
			h = after.handler.Oneway.hist()
		}
		res.Notes = append(res.Notes, "latency: one-way, from the caller's clock to the handler's")
		if !e.drain(ctx, l.ns, impl, func(r ctlReply) bool { return r.Sink >= start.Sink+sent.Load() }) {
			res.Notes = append(res.Notes, "the handler did not receive every void call within 10 s")
		}
	case kindEnqueue:
		res.DeliveredPerSec = float64(after.handler.Job-before.handler.Job) / res.Seconds
		if !e.drain(ctx, l.ns, impl, func(r ctlReply) bool { return r.Job >= start.Job+sent.Load() }) {
			res.Notes = append(res.Notes, "the queue did not deliver every job within 10 s")
		}
	}
	res.fill(measured, errs.Load(), h, before, after)
	if p := firstErr.Load(); p != nil {
		res.Notes = append(res.Notes, "first error: "+*p)
		if measured == 0 {
			res.Error = *p
		}
	}
	if impl == implOtel {
		if spans, frames := e.telemetryLost(ctx, callers); spans+frames > 0 {
			res.Notes = append(res.Notes, fmt.Sprintf("telemetry lost %d spans and %d frames: this row measures less than every call's telemetry", spans, frames))
		}
	}
	res.PeakRSSBytes = peakRSS()
	return res
}

// telemetryLost flushes the telemetry of the callers and of the handler
// with telemetry on, and returns the spans and frames they dropped so far
// (spans still queued when the flush fails count as dropped): an otel row
// that lost some did less than the work it claims to measure.
func (e *env) telemetryLost(ctx context.Context, callers []caller) (spans, frames uint64) {
	ws := []*iii.III{e.otelHandler}
	for _, c := range callers {
		if sc, ok := c.(*sdkCaller); ok {
			ws = append(ws, sc.w)
		}
	}
	for _, w := range ws {
		if w == nil {
			continue
		}
		fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := w.FlushTelemetry(fctx)
		cancel()
		s := w.TelemetryStats()
		spans += s.SpansDropped
		frames += s.FramesDropped
		if err != nil {
			spans += uint64(s.SpansQueued)
		}
	}
	return spans, frames
}

// localHandler returns the handler state of impl if the handler runs in
// this process.
func (e *env) localHandler(r ctlReply, impl string) *handlerState {
	if r.PID != os.Getpid() {
		return nil
	}
	return e.local[impl]
}

// drain waits (up to 10 s) until the handler's counters satisfy ok.
func (e *env) drain(ctx context.Context, ns, impl string, ok func(ctlReply) bool) bool {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		r, err := e.ctlCall(ctx, ns, impl, "ping")
		if err == nil && ok(r) {
			return true
		}
		if !sleepCtx(ctx, 5*time.Millisecond) {
			return false
		}
	}
	return false
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// runInflight parks opt.inflight awaited calls at the handler and measures
// the heap they hold: HeapAlloc after GC with all of them in flight, minus
// HeapAlloc after GC before the first was made, per call.
func (e *env) runInflight(ctx context.Context, impl string) (res result) {
	n := e.opt.inflight
	res = result{Scenario: scInflight, Impl: impl, Label: fmt.Sprintf("n=%d", n), Callers: 1, Concurrency: n, PayloadBytes: basePayload}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if err := e.waitHandler(ctx, e.opt.ns, impl, 2*time.Minute); err != nil {
		res.Error = "handler not reachable: " + err.Error()
		return res
	}
	resetPeakRSS()
	c, err := e.dial(ctx, impl)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer c.close()
	payload := makePayload(basePayload)
	// Warm the call path up (not the parking: the pools that parking grows
	// are part of what it costs).
	s := c.session()
	for range 200 {
		if err := s.call(ctx, functionID(e.opt.ns, impl, opEcho), payload); err != nil {
			res.Error = err.Error()
			return res
		}
	}
	step := e.prog.start(fmt.Sprintf("%s %s %s", scInflight, res.Label, impl), 0, 0, nil)
	defer func() { step.done(res.summary()) }()
	step.measuring()
	hBase, err := e.ctlCall(ctx, e.opt.ns, impl, "gc")
	if err != nil {
		res.Error = err.Error()
		return res
	}
	base := settledHeap()
	// -heapprofile file.prof: file-<impl>-base.prof before, file-<impl>.prof
	// with all calls parked; compare with go tool pprof -diff_base.
	heapProfile := func(suffix string) {
		if e.opt.heapprofile == "" {
			return
		}
		path := strings.TrimSuffix(e.opt.heapprofile, ".prof") + "-" + impl + suffix + ".prof"
		if err := writeHeapProfile(path); err != nil {
			e.prog.note("heap profile: %v", err)
		}
	}
	heapProfile("-base")
	fn := functionID(e.opt.ns, impl, opPark)
	var (
		wg       sync.WaitGroup
		errs     atomic.Uint64
		firstErr atomic.Pointer[string]
		hist     shardedHist
	)
	t0 := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := c.session()
			t := time.Now()
			if err := s.call(ctx, fn, payload); err != nil {
				errs.Add(1)
				msg := err.Error()
				firstErr.CompareAndSwap(nil, &msg)
				return
			}
			hist.Record(i, time.Since(t))
		}()
	}
	release := func() {
		_, _ = e.ctlCall(context.WithoutCancel(ctx), e.opt.ns, impl, "release")
	}
	parkedAll := false
	for !parkedAll && ctx.Err() == nil && errs.Load() == 0 {
		r, err := e.ctlCall(ctx, e.opt.ns, impl, "ping")
		parkedAll = err == nil && r.Parked >= int64(n)
		if !parkedAll {
			sleepCtx(ctx, 5*time.Millisecond)
		}
	}
	parkTime := time.Since(t0)
	if !parkedAll {
		release()
		wg.Wait()
		res.Error = "the calls were not all parked"
		if p := firstErr.Load(); p != nil {
			res.Error += ": " + *p
		}
		return res
	}
	peak := settledHeap()
	heapProfile("")
	hPeak, err := e.ctlCall(ctx, e.opt.ns, impl, "gc")
	t1 := time.Now()
	release()
	wg.Wait()
	releaseTime := time.Since(t1)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	per := func(a, b uint64) float64 { return (float64(b) - float64(a)) / float64(n) }
	f := &inflightFigures{N: n,
		HeapBytesPerCall:  per(base.HeapAlloc, peak.HeapAlloc),
		StackBytesPerCall: per(base.StackInuse, peak.StackInuse),
		GoroutinesPerCall: per(uint64(base.Goroutines), uint64(peak.Goroutines)),
		ParkSeconds:       parkTime.Seconds(), ReleaseSeconds: releaseTime.Seconds()}
	if hPeak.PID != os.Getpid() {
		v := per(hBase.HeapAlloc, hPeak.HeapAlloc)
		f.HandlerHeapBytesPerCall = &v
	}
	res.Inflight = f
	res.Ops = uint64(n)
	res.Seconds = (parkTime + releaseTime).Seconds()
	res.OpsPerSec = float64(n) / res.Seconds
	res.setLatency(hist.Merged())
	res.Errors = errs.Load()
	res.PeakRSSBytes = peakRSS()
	res.Notes = append(res.Notes, fmt.Sprintf("all %d parked in %s, released in %s", n, parkTime.Round(time.Millisecond), releaseTime.Round(time.Millisecond)))
	return res
}

// runSides runs rpc c=64 with the handler of impl in a child process, so
// that CPU and allocations are measured for each side alone.
func (e *env) runSides(ctx context.Context, impl string) result {
	l := load{scenario: scSides, label: fmt.Sprintf("c=%d", refConcurrency), ns: "side.", callers: 1,
		conc: refConcurrency, payload: basePayload, kind: kindCall, op: opEcho}
	ch, _, err := startChild("-role", "handler", "-engine", e.url, "-ns", l.ns, "-"+impl+"-only")
	if err != nil {
		return result{Scenario: l.scenario, Impl: impl, Label: l.label, Error: "cannot start the handler process: " + err.Error()}
	}
	defer ch.stop()
	return e.runLoad(ctx, impl, l)
}
