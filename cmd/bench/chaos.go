package main

// The chaos scenario: rpc load while the engine double is restarted, and
// worker sockets are stalled (half-open) and dropped, on a schedule drawn
// from -seed. It checks the SDK's liveness promises: no call outlives its
// timeout, no call runs twice, registrations are replayed once per
// connection, and nothing is left behind after Shutdown.
//
// Against an external engine (-engine) each worker connects through a
// fault-injecting proxy of its own (iiitest.Proxy), which stalls and drops
// its connections, and the engine is restarted with the -engine-restart
// command (without one the schedule has no restarts).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os/exec"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/connection/wire"
	"github.com/iii-go/iii/test/iiitest"
)

const scChaos = "chaos"

// Shape of the chaos scenario.
const (
	chaosConcurrency = 64
	// chaosDuration is the default length of the fault schedule (without
	// an explicit -duration).
	chaosDuration = 45 * time.Second
	// chaosCallTimeout is every call's timeout; a call that has not
	// returned chaosHungGrace after it is hung.
	chaosCallTimeout = 3 * time.Second
	chaosHungGrace   = 2 * time.Second
	// chaosRecoveryCap is how long the schedule waits for a successful
	// call after a fault before it gives up on that fault.
	chaosRecoveryCap = 20 * time.Second
	// chaosWarmup is the steady load before the first fault.
	chaosWarmup      = 300 * time.Millisecond
	chaosHandlerName = "bench-chaos-handler"
	chaosCallerName  = "bench-chaos-caller"
)

// The faults.
const (
	faultRestart      = "restart"       // Stop, a pause, Resume: the double forgets everything
	faultStallHandler = "stall handler" // the handler's socket goes half-open
	faultStallCaller  = "stall caller"  // the caller's socket goes half-open
	faultDropHandler  = "drop handler"  // the handler's TCP connection is closed abruptly
	faultDropCaller   = "drop caller"   // the caller's TCP connection is closed abruptly
)

var faultKinds = []string{faultRestart, faultStallHandler, faultStallCaller, faultDropHandler, faultDropCaller}

// chaosFunctions are what the handler registers (the replay count per
// connection should be their number).
var chaosFunctions = []string{"bench::chaos::echo", "bench::chaos::spare"}

// chaosFigures are the chaos scenario's results.
type chaosFigures struct {
	Seed         uint64            `json:"seed"`
	Faults       int               `json:"faults"`
	Calls        uint64            `json:"calls"`
	OK           uint64            `json:"ok"`
	FailedByCode map[string]uint64 `json:"failed_by_code,omitempty"`
	// Hung are calls that had not returned chaosHungGrace after their
	// timeout (must be 0).
	Hung uint64 `json:"hung"`
	// Duplicated are calls the handler executed more than once (must be 0).
	Duplicated uint64 `json:"duplicated"`
	// WrongResult are successful calls whose result was another call's.
	WrongResult uint64 `json:"wrong_result"`
	Executions  uint64 `json:"executions"`
	// HandlerConnections and CallerConnections count the workers'
	// connections (the first one included).
	HandlerConnections int `json:"handler_connections"`
	CallerConnections  int `json:"caller_connections"`
	// RegistrationsPerConnection is the registerfunction frames the double
	// received ÷ the handler's connections (it registers len(chaosFunctions));
	// 0 against an external engine, which does not say.
	RegistrationsPerConnection float64 `json:"registrations_per_connection"`
	// External is set when the engine was the one of -engine, not the
	// double: faults went through proxies and the restart command.
	External  bool `json:"external,omitempty"`
	Functions int  `json:"functions"`
	// Recovery is per fault kind, plus "all".
	Recovery []recoveryFigures `json:"recovery"`
	// Unrecovered faults saw no successful call within chaosRecoveryCap.
	Unrecovered int `json:"unrecovered,omitempty"`
	// Goroutines and HeapAlloc (after GC): before the double starts, after
	// the workers' Shutdown (the double still up), after the double's Close
	// (against an external engine: its proxies').
	GoroutinesBefore     int    `json:"goroutines_before"`
	GoroutinesAfter      int    `json:"goroutines_after"`
	GoroutinesAfterClose int    `json:"goroutines_after_close"`
	HeapBefore           uint64 `json:"heap_before"`
	HeapAfter            uint64 `json:"heap_after"`
	HeapAfterClose       uint64 `json:"heap_after_close"`
	Schedule             string `json:"schedule"`
}

// recoveryFigures are the recovery times of one kind of fault: from the
// fault's end to the end of the first successful call started after it.
type recoveryFigures struct {
	Kind   string `json:"kind"`
	Count  int    `json:"count"`
	Median int64  `json:"median_ns"`
	Max    int64  `json:"max_ns"`
}

// chaosFault is one fault of the schedule.
type chaosFault struct {
	kind      string
	pause     time.Duration // restart: time the double stays down
	gap       time.Duration // steady load after recovery, before the next fault
	end       atomic.Int64  // unix ns when the fault ended
	recovered atomic.Int64  // unix ns when the first call started after end succeeded
}

// chaosSchedule draws the faults: rounds of the given kinds in a shuffled
// order, each with its pause and the gap after it.
func chaosSchedule(seed uint64, n int, of []string) []*chaosFault {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var out []*chaosFault
	for len(out) < n {
		kinds := slices.Clone(of)
		rng.Shuffle(len(kinds), func(i, j int) { kinds[i], kinds[j] = kinds[j], kinds[i] })
		for _, k := range kinds {
			if len(out) == n {
				break
			}
			f := &chaosFault{kind: k, gap: time.Duration(200+rng.IntN(600)) * time.Millisecond}
			if k == faultRestart {
				f.pause = time.Duration(rng.IntN(500)) * time.Millisecond
			}
			out = append(out, f)
		}
	}
	return out
}

// execCounts counts the executions of each call id (ids are 1, 2, ...).
type execCounts struct {
	mu sync.Mutex
	n  []uint8
}

func (c *execCounts) add(id uint64) {
	c.mu.Lock()
	for uint64(len(c.n)) <= id {
		c.n = append(c.n, make([]uint8, max(len(c.n), 1<<12))...)
	}
	if c.n[id] < 255 {
		c.n[id]++
	}
	c.mu.Unlock()
}

// totals returns the executions and the ids executed more than once.
func (c *execCounts) totals() (execs, dups uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, v := range c.n {
		execs += uint64(v)
		if v > 1 {
			dups++
		}
	}
	return execs, dups
}

// chaosCall is the echo function's payload and result.
type chaosCall struct {
	ID  uint64 `json:"id"`
	Pad string `json:"pad,omitempty"`
}

// chaosOptions are the workers' options: short keepalive and reconnect
// delays, so that a fault is noticed and repaired in about a second.
func chaosOptions(name string, connects *atomic.Int32) iii.InitOptions {
	return iii.InitOptions{
		Metadata:          &iii.WorkerMetadata{Name: name},
		Telemetry:         telemetryOption(false),
		InvocationTimeout: chaosCallTimeout,
		DialTimeout:       time.Second,
		PingInterval:      250 * time.Millisecond,
		IdleTimeout:       time.Second,
		Reconnect:         &iii.ReconnectConfig{InitialDelay: 50 * time.Millisecond, MaxDelay: 500 * time.Millisecond},
		OnStateChange: func(s iii.ConnectionState) {
			if s == iii.Connected {
				connects.Add(1)
			}
		},
	}
}

// chaosErrorCode names the failure of a call.
func chaosErrorCode(err error) string {
	if c := iii.ErrorCode(err); c != "" {
		return c
	}
	switch {
	case errors.Is(err, iii.ErrConnectionLost):
		return "connection_lost"
	case errors.Is(err, iii.ErrNotConnected):
		return "not_connected"
	case errors.Is(err, iii.ErrTimeout):
		return "timeout"
	case errors.Is(err, iii.ErrShutdown):
		return "shutdown"
	}
	return "other"
}

// chaosEngine is where the chaos workers connect and how the faults are
// made: with the double's own hooks (double), or against an external
// engine through a proxy per worker and the -engine-restart command.
type chaosEngine struct {
	double *iiitest.Engine // nil for an external engine

	restartCmd string                    // external: the -engine-restart command, or ""
	proxies    map[string]*iiitest.Proxy // external: per worker name
}

// newChaosEngine starts the double, or the proxies to the external engine
// at url.
func newChaosEngine(url, restartCmd string) (*chaosEngine, error) {
	if url == "" {
		eng, err := iiitest.Start("127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		return &chaosEngine{double: eng}, nil
	}
	c := &chaosEngine{restartCmd: restartCmd, proxies: map[string]*iiitest.Proxy{}}
	for _, name := range []string{chaosHandlerName, chaosCallerName} {
		p, err := iiitest.StartProxy(url)
		if err != nil {
			c.close()
			return nil, err
		}
		c.proxies[name] = p
	}
	return c, nil
}

// external reports whether the engine is not the double.
func (c *chaosEngine) external() bool { return c.double == nil }

// workerURL is the URL the worker called name connects to.
func (c *chaosEngine) workerURL(name string) string {
	if c.external() {
		return c.proxies[name].URL
	}
	return c.double.URL
}

// kinds are the faults this engine can take: no restart for an external
// engine without a restart command.
func (c *chaosEngine) kinds() []string {
	if c.external() && c.restartCmd == "" {
		return slices.DeleteFunc(slices.Clone(faultKinds), func(k string) bool { return k == faultRestart })
	}
	return faultKinds
}

// close stops the double, or the proxies.
func (c *chaosEngine) close() {
	if !c.external() {
		c.double.Close()
		return
	}
	for _, p := range c.proxies {
		p.Close()
	}
}

// inject applies one fault.
func (c *chaosEngine) inject(ctx context.Context, fl *chaosFault) error {
	if c.external() {
		return c.injectExternal(ctx, fl)
	}
	eng := c.double
	if fl.kind == faultRestart {
		eng.Stop()
		sleepCtx(ctx, fl.pause)
		return eng.Resume()
	}
	name := faultTarget(fl.kind)
	// The worker reconnected after the previous fault (a call succeeded),
	// but its registration with the double may lag a little.
	for deadline := time.Now().Add(5 * time.Second); ; {
		id := newestWorker(eng, name)
		if id != "" {
			var hit bool
			if fl.kind == faultStallHandler || fl.kind == faultStallCaller {
				hit = eng.StallWorker(id)
			} else {
				hit = eng.DropWorker(id)
			}
			if hit {
				return nil
			}
		}
		if time.Now().After(deadline) || !sleepCtx(ctx, 10*time.Millisecond) {
			return fmt.Errorf("worker %s is not connected", name)
		}
	}
}

// injectExternal applies a fault through the worker's proxy, or restarts
// the engine with the restart command (the fault's pause is the command's
// own). A stall leaves the worker's connection half-open for good (the
// proxy's Close ends it); the worker's next connection goes through.
func (c *chaosEngine) injectExternal(ctx context.Context, fl *chaosFault) error {
	if fl.kind == faultRestart {
		fl.pause = 0 // the command's own
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if out, err := exec.CommandContext(cctx, "sh", "-c", c.restartCmd).CombinedOutput(); err != nil {
			return fmt.Errorf("-engine-restart: %w: %s", err, bytes.TrimSpace(out))
		}
		return nil
	}
	p := c.proxies[faultTarget(fl.kind)]
	if fl.kind == faultDropHandler || fl.kind == faultDropCaller {
		p.Cut()
		return nil
	}
	p.StallOpen()
	return nil
}

// faultTarget names the worker a stall or a drop hits.
func faultTarget(kind string) string {
	if kind == faultStallCaller || kind == faultDropCaller {
		return chaosCallerName
	}
	return chaosHandlerName
}

// newestWorker returns the id of the newest connection of the worker
// named name, or "".
func newestWorker(eng *iiitest.Engine, name string) string {
	ws := eng.Workers()
	for i := len(ws) - 1; i >= 0; i-- {
		if ws[i].Name == name {
			return ws[i].ID
		}
	}
	return ""
}

// runChaos runs the chaos scenario against an engine double of its own in
// this process, or against the external engine of -engine.
func (e *env) runChaos(ctx context.Context) (res result) {
	dur := e.opt.chaosDur
	res = result{Scenario: scChaos, Impl: "sdk", Label: fmt.Sprintf("c=%d seed=%d", chaosConcurrency, e.opt.seed),
		Callers: 1, Concurrency: chaosConcurrency, PayloadBytes: basePayload}
	step := e.prog.start(fmt.Sprintf("%s %s", scChaos, res.Label), 0, dur, nil)
	defer func() { step.done(res.summary()) }()

	f := &chaosFigures{Seed: e.opt.seed, FailedByCode: map[string]uint64{}, Functions: len(chaosFunctions)}
	before := settledHeap()
	f.GoroutinesBefore, f.HeapBefore = before.Goroutines, before.HeapAlloc
	eng, err := newChaosEngine(e.opt.engine, e.opt.restartCmd)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	engClosed := false
	defer func() {
		if !engClosed {
			eng.close()
		}
	}()
	f.External = eng.external()
	res.Chaos = f

	// The handler: counts the executions of each call id.
	var (
		counts               = &execCounts{}
		hConnects, cConnects atomic.Int32
		handler, callerW     *iii.III
		workersDown          bool
		shutdownWorkers      = func() {
			if !workersDown {
				workersDown = true
				callerW.Shutdown()
				handler.Shutdown()
			}
		}
	)
	handler = iii.RegisterWorker(eng.workerURL(chaosHandlerName), chaosOptions(chaosHandlerName, &hConnects))
	callerW = iii.RegisterWorker(eng.workerURL(chaosCallerName), chaosOptions(chaosCallerName, &cConnects))
	defer shutdownWorkers()
	echo := func(_ context.Context, req chaosCall) (chaosCall, error) {
		counts.add(req.ID)
		return chaosCall{ID: req.ID}, nil
	}
	if _, err := iii.RegisterFunction(handler, chaosFunctions[0], echo); err != nil {
		res.Error = err.Error()
		return res
	}
	if _, err := iii.RegisterFunction(handler, chaosFunctions[1], func(context.Context, json.RawMessage) (json.RawMessage, error) {
		return nil, nil
	}); err != nil {
		res.Error = err.Error()
		return res
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	err = handler.WaitConnected(wctx)
	if err == nil {
		err = callerW.WaitConnected(wctx)
	}
	switch {
	case err != nil:
	case eng.external():
		err = callerW.WaitForFunction(wctx, chaosFunctions[0])
	default:
		// Not WaitForFunction: its subscription would count among the
		// registrations per handler connection.
		err = eng.double.WaitFunction(wctx, chaosFunctions[0])
	}
	cancel()
	if err != nil {
		res.Error = "workers did not connect: " + err.Error()
		return res
	}

	// The load: chaosConcurrency goroutines, one awaited call each at a
	// time, each call with an id of its own (never retried).
	var (
		seq, ok, calls, hung, wrong atomic.Uint64
		codesMu                     sync.Mutex
		codes                       = map[string]uint64{}
		firstOther                  string
		cur                         atomic.Pointer[chaosFault]
		stop                        atomic.Bool
		wg                          sync.WaitGroup
		hist                        shardedHist
		busy                        [chaosConcurrency]atomic.Int64 // start of the call in flight (unix ns), 0 idle, -1 counted as hung
	)
	pad := string(makePayload(basePayload - 20)[:basePayload-30])
	limit := chaosCallTimeout + chaosHungGrace
	callCtx := context.WithoutCancel(ctx)
	for g := range chaosConcurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				id := seq.Add(1)
				t0 := time.Now()
				busy[g].Store(t0.UnixNano())
				out, err := iii.Call[chaosCall](callCtx, callerW, chaosFunctions[0], chaosCall{ID: id, Pad: pad})
				t1 := time.Now()
				d := t1.Sub(t0)
				if busy[g].Swap(0) == -1 {
					continue // counted as hung already
				}
				calls.Add(1)
				if d > limit {
					hung.Add(1)
				}
				if err != nil {
					c := chaosErrorCode(err)
					codesMu.Lock()
					codes[c]++
					if c == "other" && firstOther == "" {
						firstOther = err.Error()
					}
					codesMu.Unlock()
					if errors.Is(err, iii.ErrShutdown) {
						return
					}
					continue
				}
				if out.ID != id {
					wrong.Add(1)
					continue
				}
				ok.Add(1)
				hist.Record(g, d)
				if fl := cur.Load(); fl != nil && t0.UnixNano() >= fl.end.Load() {
					fl.recovered.CompareAndSwap(0, t1.UnixNano())
				}
			}
		}()
	}

	// The faults, one at a time: inject, wait for a successful call that
	// started after the fault's end, then steady load for the fault's gap.
	t0 := time.Now()
	step.measuring()
	var done []*chaosFault
	sleepCtx(ctx, chaosWarmup)
	for _, fl := range chaosSchedule(e.opt.seed, int(dur/(200*time.Millisecond))+len(faultKinds), eng.kinds()) {
		if ctx.Err() != nil || time.Since(t0) >= dur {
			break
		}
		if err := eng.inject(ctx, fl); err != nil {
			e.prog.note("chaos: %s: %v", fl.kind, err)
			continue
		}
		fl.end.Store(time.Now().UnixNano())
		cur.Store(fl)
		done = append(done, fl)
		deadline := time.Now().Add(chaosRecoveryCap)
		for fl.recovered.Load() == 0 && time.Now().Before(deadline) && ctx.Err() == nil {
			sleepCtx(ctx, 5*time.Millisecond)
		}
		if fl.recovered.Load() == 0 {
			f.Unrecovered++
		}
		sleepCtx(ctx, fl.gap)
	}
	elapsed := time.Since(t0)

	// Stop the load; calls still out chaosCallTimeout+chaosHungGrace later
	// are hung.
	stop.Store(true)
	wgDone := make(chan struct{})
	go func() { wg.Wait(); close(wgDone) }()
	select {
	case <-wgDone:
	case <-time.After(limit + 500*time.Millisecond):
		for i := range busy {
			if v := busy[i].Load(); v > 0 && busy[i].CompareAndSwap(v, -1) {
				hung.Add(1)
			}
		}
	}
	shutdownWorkers()
	<-wgDone
	// Let go of the workers, so that what the heap holds afterwards is what
	// they left behind, not what this function still references.
	handler, callerW = nil, nil

	f.Faults = len(done)
	f.Calls, f.OK, f.Hung, f.WrongResult = calls.Load(), ok.Load(), hung.Load(), wrong.Load()
	for c, n := range codes {
		f.FailedByCode[c] = n
	}
	if firstOther != "" {
		res.Notes = append(res.Notes, "first other error: "+firstOther)
	}
	f.Executions, f.Duplicated = counts.totals()
	counts = nil
	f.HandlerConnections, f.CallerConnections = int(hConnects.Load()), int(cConnects.Load())
	if f.HandlerConnections > 0 && !f.External {
		f.RegistrationsPerConnection = float64(eng.double.FrameCount(wire.KindRegisterFunction)) / float64(f.HandlerConnections)
	}
	f.Recovery, f.Schedule = recoveryOf(done)

	res.Ops = f.OK
	res.Errors = f.Calls - f.OK
	res.Seconds = elapsed.Seconds()
	res.OpsPerSec = float64(f.OK) / res.Seconds
	res.setLatency(hist.Merged())
	res.hist = nil
	res.PeakRSSBytes = peakRSS()

	// What is left once the workers are shut down (the double still up),
	// and once the double is closed too: the workers' goroutines should
	// all end (they get a few seconds), and their memory be collectable.
	settle := func(limit int) procSample {
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
			if s := settledHeap(); s.Goroutines <= limit {
				return s
			}
			time.Sleep(20 * time.Millisecond)
		}
		return settledHeap()
	}
	var up int // the double's goroutines for connections still open
	if !f.External {
		up = len(eng.double.Workers())
	}
	after := settle(f.GoroutinesBefore + up)
	f.GoroutinesAfter, f.HeapAfter = after.Goroutines, after.HeapAlloc
	eng.close()
	engClosed = true
	closed := settle(f.GoroutinesBefore)
	f.GoroutinesAfterClose, f.HeapAfterClose = closed.Goroutines, closed.HeapAlloc
	return res
}

// recoveryOf summarises the recovery times per fault kind and writes the
// schedule as it ran.
func recoveryOf(faults []*chaosFault) ([]recoveryFigures, string) {
	by := map[string][]int64{}
	sched := ""
	for i, fl := range faults {
		if i > 0 {
			sched += ", "
		}
		sched += fl.kind
		if fl.kind == faultRestart && fl.pause > 0 {
			sched += " " + strconv.FormatInt(fl.pause.Milliseconds(), 10) + "ms"
		}
		r := fl.recovered.Load()
		if r == 0 {
			continue
		}
		d := r - fl.end.Load()
		by[fl.kind] = append(by[fl.kind], d)
		by["all"] = append(by["all"], d)
	}
	var out []recoveryFigures
	for _, k := range append(slices.Clone(faultKinds), "all") {
		v := by[k]
		if len(v) == 0 {
			continue
		}
		sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
		out = append(out, recoveryFigures{Kind: k, Count: len(v), Median: v[len(v)/2], Max: v[len(v)-1]})
	}
	return out, sched
}

// writeChaos writes the chaos tables: the calls, then the recovery per
// kind of fault.
func writeChaos(w io.Writer, r *result) {
	c := r.Chaos
	if r.Error != "" || c == nil {
		fmt.Fprintf(w, "chaos %s: error: %s\n\n", r.Label, r.Error)
		return
	}
	var failed []string
	for code, n := range c.FailedByCode {
		failed = append(failed, fmt.Sprintf("%s %d", code, n))
	}
	sort.Strings(failed)
	verdict := func(n uint64) string {
		if n == 0 {
			return "0 (ok)"
		}
		return fmt.Sprintf("%d (MUST BE 0)", n)
	}
	lat := ""
	if l := r.Latency; l != nil {
		lat = fmt.Sprintf(", p50 %s, p99 %s, max %s", fmtDur(l.P50), fmtDur(l.P99), fmtDur(l.Max))
	}
	t := &table{head: []string{"chaos " + r.Label, r.Impl}}
	add := func(k, v string) { t.rows = append(t.rows, []string{k, v}) }
	add("faults", fmt.Sprintf("%d in %.1fs", c.Faults, r.Seconds))
	add("calls", fmt.Sprintf("%d", c.Calls))
	add("ok", fmt.Sprintf("%d (%s/s%s)", c.OK, fmtRate(r.OpsPerSec), lat))
	add("failed, by code", fmt.Sprintf("%d: %s", c.Calls-c.OK-c.WrongResult, strings.Join(failed, ", ")))
	add("hung past timeout+"+chaosHungGrace.String(), verdict(c.Hung))
	add("executed twice", verdict(c.Duplicated))
	add("wrong result", verdict(c.WrongResult))
	add("executions at the handler", fmt.Sprintf("%d", c.Executions))
	add("connections: handler, caller", fmt.Sprintf("%d, %d", c.HandlerConnections, c.CallerConnections))
	if c.External {
		add("registrations per handler connection", "not known (external engine)")
	} else {
		add("registrations per handler connection", fmt.Sprintf("%.2f (it registers %d functions)", c.RegistrationsPerConnection, c.Functions))
	}
	add("unrecovered faults", fmt.Sprintf("%d", c.Unrecovered))
	closed := "the double's Close"
	if c.External {
		closed = "the proxies' Close"
	}
	add("goroutines: before, after Shutdown, after "+closed, fmt.Sprintf("%d, %d, %d", c.GoroutinesBefore, c.GoroutinesAfter, c.GoroutinesAfterClose))
	add("heap: before, after Shutdown, after "+closed, fmt.Sprintf("%s, %s, %s KiB", fmtNum(float64(c.HeapBefore)/1024), fmtNum(float64(c.HeapAfter)/1024), fmtNum(float64(c.HeapAfterClose)/1024)))
	t.write(w)
	fmt.Fprintln(w)
	rt := &table{head: []string{"fault", "count", "recovery median", "max"}}
	for _, rf := range c.Recovery {
		rt.rows = append(rt.rows, []string{rf.Kind, fmt.Sprintf("%d", rf.Count), fmtDur(rf.Median), fmtDur(rf.Max)})
	}
	rt.write(w)
	fmt.Fprintf(w, "\nschedule (seed %d): %s\n\n", c.Seed, c.Schedule)
}
