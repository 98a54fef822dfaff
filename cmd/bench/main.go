// Command bench is the load benchmark of the iii Go SDK.
//
// With no flags it starts the engine double (package iiitest) in a child
// process, connects a handler worker and a calling worker in this process,
// and runs every scenario twice: once with the SDK, once with a minimal
// hand-written WebSocket client (the raw baseline) exchanging the same
// frames. It prints a table of throughput, latency percentiles, CPU and
// allocations per operation and peak RSS, each SDK figure as a ratio to
// raw, and the performance targets with their measured values.
//
//	go run ./cmd/bench                                    # everything, about a minute
//	go run ./cmd/bench -scenario rpc -concurrency 64      # one shape
//	go run ./cmd/bench -scenario chaos -seed 2            # faults under load, 45 s
//	go run ./cmd/bench -peer node,rust,python -scenario rpc   # the other SDKs beside Go and raw
//	go run ./cmd/bench -json > bench.json                 # machine-readable
//	go run ./cmd/bench -serve 127.0.0.1:49134             # only the engine double
//	go run ./cmd/bench -serve 127.0.0.1:49134 -serve-http 127.0.0.1:3111   # with its HTTP port there
//	go run ./cmd/bench -role handler -engine ws://host:49134   # one side per process
//	go run ./cmd/bench -role caller  -engine ws://host:49134
//
// See BENCHMARKS.md at the repository root for the method and the figures.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// options are the parsed flags.
type options struct {
	engine      string
	role        string
	double      string
	scenarios   []string
	duration    time.Duration
	warmup      time.Duration
	concurrency []int
	payloads    []int
	inflight    int
	callers     int
	impls       []string
	telemetry   bool // also run the rpc scenario with the SDK's telemetry on ("otel")
	count       int
	json        bool
	chart       string
	cpuprofile  string
	memprofile  string
	heapprofile string
	quiet       bool
	ns          string
	peers       []string      // -peer: other SDKs run in the rpc scenario
	seed        uint64        // chaos: the fault schedule
	chaosDur    time.Duration // chaos: how long faults are injected
	restartCmd  string        // chaos with -engine: the command that restarts the engine
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the whole command; it returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: bench [flags]\n\n"+
			"Load benchmark of the iii Go SDK against an iii engine (by default the engine\n"+
			"double, started in a child process), with a raw WebSocket client as baseline.\n\n"+
			"scenarios: rpc (awaited calls, 100 B, at each -concurrency), payload (awaited,\n"+
			"c=16, each -payload size), void (fire-and-forget, window 64), enqueue (c=64),\n"+
			"fanin (-callers workers × 8 calls, one handler), channel (bytes through a data\n"+
			"channel), inflight (-inflight calls parked at the handler: heap per call), sides\n"+
			"(rpc c=64 with the handler in a child process: CPU and allocations per side).\n"+
			"Not in all: chaos (rpc c=64 while the engine double is restarted and worker\n"+
			"sockets are stalled and dropped, on a schedule drawn from -seed; 45 s unless\n"+
			"-duration is given; with -engine, through a proxy per worker, and restarts with\n"+
			"-engine-restart).\n\nflags:\n")
		fs.PrintDefaults()
	}
	var (
		serve       = fs.String("serve", "", "run only the engine double, listening on `addr` (e.g. 127.0.0.1:49134), until SIGINT/SIGTERM")
		serveHTTP   = fs.String("serve-http", "", "with -serve: the `addr` of the double's HTTP port, where \"http\" triggers are served (default: a free loopback port)")
		engine      = fs.String("engine", "", "use the engine at `url` (ws://host:port: a real iii engine, or -serve in another process) instead of starting the double")
		engRestart  = fs.String("engine-restart", "", "chaos with -engine: shell `command` that restarts the engine (stops it, starts it again in the background, returns); without it the schedule has no restarts")
		role        = fs.String("role", "both", "`side` run by this process: both, handler (serve the bench functions until SIGINT) or caller (run the scenarios against a handler in another process); handler and caller need -engine")
		double      = fs.String("double", "child", "`where` the engine double runs without -engine: child (a child process, so that CPU and allocations are the workers' own) or inproc")
		scenarios   = fs.String("scenario", "all", "comma-separated `list` of scenarios, or all: "+strings.Join(allScenarios, ","))
		duration    = fs.Duration("duration", 1200*time.Millisecond, "measured `time` per run")
		warmup      = fs.Duration("warmup", 300*time.Millisecond, "warm-up `time` before each measured window")
		concurrency = fs.String("concurrency", "1,16,64,256", "calls in flight for the rpc scenario, comma-separated `list`")
		payloads    = fs.String("payload", "10KiB,1MiB", "payload `sizes` for the payload scenario (100, 10KiB, 1MiB, ...)")
		inflight    = fs.Int("inflight", 10000, "calls parked at the handler in the inflight scenario")
		callers     = fs.Int("callers", 8, "calling workers in the fanin scenario")
		count       = fs.Int("count", 1, "run each shape `n` times, raw and SDK alternately, and merge the rounds (steadier ratios on a busy machine)")
		sdkOnly     = fs.Bool("sdk-only", false, "run only the SDK (no raw baseline)")
		rawOnly     = fs.Bool("raw-only", false, "run only the raw baseline")
		jsonOut     = fs.Bool("json", false, "write one JSON document on stdout instead of the tables")
		chart       = fs.String("chart", "", "write an SVG chart of the rpc results (throughput and p99 against concurrency) to `file`")
		cpuprofile  = fs.String("cpuprofile", "", "write a CPU profile of this process to `file` (with -serve: of the engine double alone)")
		memprofile  = fs.String("memprofile", "", "write an allocation profile of this process to `file` (records every allocation, which slows the run)")
		heapprofile = fs.String("heapprofile", "", "write heap profiles of the inflight scenario, named after `file`: <file>-<impl>-base.prof before the calls, <file>-<impl>.prof with all of them parked (compare with go tool pprof -diff_base); records every allocation, which slows the run")
		quiet       = fs.Bool("q", false, "no progress output on stderr")
		ns          = fs.String("ns", "", "namespace of the bench functions (bench::<ns>sdk::echo, ...); for running several benchmarks on one engine")
		peers       = fs.String("peer", "", "comma-separated `list` of other SDKs to run in the rpc scenario beside the Go SDK and raw: node, rust, python (programs in cmd/bench/peers; each installs its dependencies on first use; rpc then runs -concurrency, 10 KiB at c=64 and void batches, by default at c=1,64,256)")
		seed        = fs.Uint64("seed", 1, "chaos: `seed` of the fault schedule (the same seed gives the same faults in the same order)")
		telemetry   = fs.Bool("telemetry", false, "also run the rpc and inflight scenarios with the SDK's telemetry on (impl otel: spans, metrics and logs exported to the engine's /otel); the sdk rows always run with it off")
	)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "bench: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if *serveHTTP != "" && *serve == "" {
		fmt.Fprintln(stderr, "bench: -serve-http needs -serve")
		return 2
	}
	if *serve != "" {
		// -cpuprofile profiles the double alone here (run the workers with
		// -engine in another process).
		stopProfile, err := startCPUProfile(*cpuprofile)
		if err == nil {
			err = runServe(*serve, serveOptions(*serveHTTP)...)
			stopProfile()
		}
		if err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 1
		}
		return 0
	}
	opt := options{engine: *engine, restartCmd: *engRestart, role: *role, double: *double, duration: *duration, warmup: *warmup,
		inflight: *inflight, callers: *callers, count: *count, json: *jsonOut, chart: *chart,
		cpuprofile: *cpuprofile, memprofile: *memprofile, heapprofile: *heapprofile, quiet: *quiet, ns: *ns,
		telemetry: *telemetry, seed: *seed, chaosDur: chaosDuration}
	explicitConc := false
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "duration":
			opt.chaosDur = *duration // an explicit -duration also sets the chaos schedule's length
		case "concurrency":
			explicitConc = true
		}
	})
	if *peers != "" {
		for _, p := range strings.Split(*peers, ",") {
			p = strings.TrimSpace(p)
			if !slices.Contains(knownPeers, p) {
				fmt.Fprintf(stderr, "bench: unknown peer %q (have %s)\n", p, strings.Join(knownPeers, ", "))
				return 2
			}
			opt.peers = append(opt.peers, p)
		}
		if !explicitConc {
			*concurrency = "1,64,256"
		}
	}
	if err := opt.parse(*scenarios, *concurrency, *payloads, *sdkOnly, *rawOnly); err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if opt.memprofile != "" || opt.heapprofile != "" {
		// Every allocation, so that the profile's counts per site are exact
		// (this slows the run: its figures are not the benchmark's).
		runtime.MemProfileRate = 1
	}
	stopProfile, err := startCPUProfile(opt.cpuprofile)
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	defer stopProfile()
	if opt.role == "handler" {
		err = runHandlerRole(ctx, stop, opt, stderr)
	} else {
		err = runBench(ctx, opt, args, stdout, stderr)
	}
	if err == nil && opt.memprofile != "" {
		err = writeMemProfile(opt.memprofile)
	}
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	return 0
}

func (o *options) parse(scenarios, concurrency, payloads string, sdkOnly, rawOnly bool) error {
	switch o.role {
	case "both":
	case "handler", "caller":
		if o.engine == "" {
			return fmt.Errorf("-role %s needs -engine ws://host:port (the engine both sides connect to)", o.role)
		}
	default:
		return fmt.Errorf("-role must be both, handler or caller, not %q", o.role)
	}
	if o.double != "child" && o.double != "inproc" {
		return fmt.Errorf("-double must be child or inproc, not %q", o.double)
	}
	if o.engine != "" && !strings.HasPrefix(o.engine, "ws://") && !strings.HasPrefix(o.engine, "wss://") {
		return fmt.Errorf("-engine must be a ws:// or wss:// URL, not %q", o.engine)
	}
	if scenarios == "all" || scenarios == "" {
		o.scenarios = allScenarios
	} else {
		want := map[string]bool{}
		for _, s := range strings.Split(scenarios, ",") {
			s = strings.TrimSpace(s)
			if !slices.Contains(allScenarios, s) && s != scChaos {
				return fmt.Errorf("unknown scenario %q (have %s, %s)", s, strings.Join(allScenarios, ", "), scChaos)
			}
			want[s] = true
		}
		for _, s := range append(slices.Clip(allScenarios), scChaos) { // always in the order of a full run
			if want[s] {
				o.scenarios = append(o.scenarios, s)
			}
		}
	}
	for _, s := range strings.Split(concurrency, ",") {
		c, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || c <= 0 {
			return fmt.Errorf("bad -concurrency %q", s)
		}
		o.concurrency = append(o.concurrency, c)
	}
	for _, s := range strings.Split(payloads, ",") {
		n, err := parseSize(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("-payload: %w", err)
		}
		o.payloads = append(o.payloads, n)
	}
	switch {
	case sdkOnly && rawOnly:
		return errors.New("-sdk-only and -raw-only exclude each other")
	case sdkOnly:
		o.impls = []string{"sdk"}
	case rawOnly:
		o.impls = []string{"raw"}
	default:
		o.impls = []string{"raw", "sdk"}
	}
	if o.duration <= 0 || o.warmup < 0 {
		return errors.New("-duration must be positive and -warmup not negative")
	}
	if slices.Contains(o.scenarios, scChaos) && o.role != "both" {
		return errors.New("-scenario chaos runs both workers in this process: no -role")
	}
	if o.restartCmd != "" && (o.engine == "" || !slices.Contains(o.scenarios, scChaos)) {
		return errors.New("-engine-restart is for -scenario chaos with -engine")
	}
	if o.inflight <= 0 || o.callers <= 0 || o.count <= 0 {
		return errors.New("-inflight, -callers and -count must be positive")
	}
	return nil
}

// planned is one run of the plan.
type planned struct {
	run func(ctx context.Context) result
}

// plan lists the runs: for each shape, raw first, then the SDK (then the
// SDK with telemetry on, with -telemetry), round after round.
func (e *env) plan() []planned {
	var p []planned
	o := e.opt
	addLoad := func(l load, extra ...string) {
		for range o.count {
			for _, impl := range append(slices.Clip(o.impls), extra...) {
				p = append(p, planned{func(ctx context.Context) result { return e.runLoad(ctx, impl, l) }})
			}
		}
	}
	for _, sc := range o.scenarios {
		switch sc {
		case scRPC:
			if len(o.peers) > 0 {
				for _, sh := range peerShapes(o.concurrency) {
					for range o.count {
						for _, impl := range o.impls {
							p = append(p, planned{func(ctx context.Context) result { return e.runLoad(ctx, impl, sh.load(o.ns)) }})
						}
						for _, name := range o.peers {
							p = append(p, planned{func(ctx context.Context) result { return e.runPeer(ctx, name, sh) }})
						}
					}
				}
				continue
			}
			for _, c := range o.concurrency {
				l := load{scenario: sc, label: fmt.Sprintf("c=%d", c), ns: o.ns, callers: 1, conc: c, payload: basePayload, kind: kindCall, op: opEcho}
				if o.telemetry && slices.Contains(o.impls, "sdk") {
					// In turns with the others, as they are with each
					// other: drift over the runs weighs on all alike.
					addLoad(l, implOtel)
				} else {
					addLoad(l)
				}
			}
		case scPayload:
			for _, n := range o.payloads {
				addLoad(load{scenario: sc, label: fmt.Sprintf("%s c=%d", sizeString(n), payloadConcurrency), ns: o.ns, callers: 1,
					conc: payloadConcurrency, payload: n, kind: kindCall, op: opEcho})
			}
		case scVoid:
			addLoad(load{scenario: sc, label: fmt.Sprintf("w=%d", refConcurrency), ns: o.ns, callers: 1, conc: refConcurrency,
				payload: basePayload, kind: kindVoid, op: opSink})
		case scEnqueue:
			addLoad(load{scenario: sc, label: fmt.Sprintf("c=%d", refConcurrency), ns: o.ns, callers: 1, conc: refConcurrency,
				payload: basePayload, kind: kindEnqueue, op: opJob})
		case scFanIn:
			addLoad(load{scenario: sc, label: fmt.Sprintf("%d×%d", o.callers, fanInPerCaller), ns: o.ns, callers: o.callers,
				conc: fanInPerCaller, payload: basePayload, kind: kindCall, op: opEcho})
		case scChannel:
			for range o.count {
				for _, impl := range o.impls {
					p = append(p, planned{func(ctx context.Context) result { return e.runChannel(ctx, impl) }})
				}
			}
		case scInflight:
			// Once: a second round would start from the first one's pools.
			impls := o.impls
			if o.telemetry && slices.Contains(impls, "sdk") {
				impls = append(slices.Clip(impls), implOtel)
			}
			for _, impl := range impls {
				p = append(p, planned{func(ctx context.Context) result { return e.runInflight(ctx, impl) }})
			}
		case scChaos:
			p = append(p, planned{func(ctx context.Context) result { return e.runChaos(ctx) }})
		case scSides:
			if o.role != "both" {
				continue // the caller role measures each side already
			}
			for range o.count {
				for _, impl := range o.impls {
					p = append(p, planned{func(ctx context.Context) result { return e.runSides(ctx, impl) }})
				}
			}
		}
	}
	return p
}

// runBench runs the scenarios (roles both and caller) and writes the report.
func runBench(ctx context.Context, opt options, args []string, stdout, stderr io.Writer) error {
	prog := newProgress(stderr, opt.quiet)
	rep := &report{Tool: "iii-go cmd/bench", Command: commandLine(args), Started: time.Now().UTC().Truncate(time.Second),
		Machine: describeMachine(), Role: opt.role, Duration: opt.duration.Seconds(), Warmup: opt.warmup.Seconds(), Count: opt.count}
	var e *env
	if slices.ContainsFunc(opt.scenarios, func(s string) bool { return s != scChaos }) {
		var err error
		if e, err = setup(ctx, opt, prog); err != nil {
			return err
		}
		defer e.close()
		rep.Engine = e.desc
	} else {
		// chaos alone starts its own double (or proxies to -engine); no
		// shared engine, no handlers.
		e = &env{opt: opt, local: make(map[string]*handlerState), prog: prog}
		rep.Engine = "engine double (test/iiitest) in this process, one per chaos run"
		if opt.engine != "" {
			rep.Engine = "external engine " + opt.engine + ", through a fault-injecting proxy per worker"
		}
		rep.Duration, rep.Warmup = opt.chaosDur.Seconds(), chaosWarmup.Seconds()
	}
	runs := e.plan()
	prog.total = len(runs)
	for _, r := range runs {
		if ctx.Err() != nil {
			break
		}
		rep.Results = append(rep.Results, r.run(ctx))
	}
	rep.Machine.LoadEnd = loadAvg()
	rep.Results = mergeRounds(rep.Results)
	compare(rep.Results)
	rep.Targets = targets(rep.Results)
	if opt.chart != "" {
		write := writeChart
		if len(opt.peers) > 0 {
			write = writePeerChart
		}
		if err := write(opt.chart, rep); err != nil {
			prog.note("no chart: %v", err)
		}
	}
	if opt.json {
		return rep.writeJSON(stdout)
	}
	rep.writeText(stdout)
	if ctx.Err() != nil {
		return errors.New("interrupted")
	}
	return nil
}

// runHandlerRole serves the bench functions until interrupted (or, in a
// child of the benchmark, until its stdin closes).
func runHandlerRole(ctx context.Context, stop func(), opt options, stderr io.Writer) error {
	e := &env{opt: opt, url: opt.engine, local: make(map[string]*handlerState), prog: newProgress(stderr, opt.quiet)}
	if err := e.startHandlers(ctx, opt.ns); err != nil {
		e.close()
		return err
	}
	defer e.close()
	if isChild() {
		serveChild("ready", stop)
	} else {
		var ids []string
		for _, impl := range opt.impls {
			ids = append(ids, functionID(opt.ns, impl, "*"))
		}
		e.prog.note("serving %s on %s until interrupted", strings.Join(ids, " and "), opt.engine)
	}
	<-ctx.Done()
	return nil
}

func writeMemProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	runtime.GC()
	return pprof.Lookup("allocs").WriteTo(f, 0)
}

// writeHeapProfile writes the heap in use (as of the last GC).
func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return pprof.Lookup("heap").WriteTo(f, 0)
}

func commandLine(args []string) string {
	out := []string{"bench"}
	for _, a := range args {
		if strings.ContainsAny(a, " \t\"'") {
			a = strconv.Quote(a)
		}
		out = append(out, a)
	}
	return strings.Join(out, " ")
}

// startCPUProfile starts a CPU profile of this process written to path, if
// path is not empty; stop ends it and closes the file.
func startCPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
