package main

// Peers: the official SDKs of other languages (-peer node,rust,python),
// measured on the same engine double in the same run as the Go SDK and the
// raw client. Each peer is a small program under cmd/bench/peers/<name>
// with two modes:
//
//	handler  registers bench::peer.<name>::echo (returns its input) and
//	         bench::peer.<name>::sink (returns nothing), prints
//	         {"event":"ready"} once it can call its own echo, and runs until
//	         its stdin closes.
//	caller   reads III_URL, FN, ECHO_FN, MODE (call or void), CONC,
//	         PAYLOAD_FILE, WARMUP_MS and DURATION_MS; drives CONC loops
//	         (call: one awaited call of FN at a time; void: voidBatch void
//	         calls of FN, then one awaited call of ECHO_FN), prints
//	         {"event":"measuring"} when the measured window starts, then
//	         {"event":"result","ok","errors","seconds","lat_us","first_error",
//	         "unfinished"} (unfinished: loops whose call had not returned 10 s
//	         after the window).
//
// The CPU of both peer processes is read from /proc/<pid>/stat at the
// "measuring" and "result" lines, the double's from its child as usual.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// scPeers is the scenario of the -peer runs (every implementation's rows).
const scPeers = "peers"

// The peers -peer knows.
var knownPeers = []string{"node", "rust", "python"}

// peerShape is one row shape of the -peer runs.
type peerShape struct {
	label   string
	conc    int
	payload int
	void    bool
}

// peerShapes are the -peer shapes: rpc at each -concurrency (100 B), rpc
// with 10 KiB at c=64, and void batches from 4 loops.
func peerShapes(concurrency []int) []peerShape {
	var out []peerShape
	for _, c := range concurrency {
		out = append(out, peerShape{label: fmt.Sprintf("rpc c=%d", c), conc: c, payload: basePayload})
	}
	return append(out,
		peerShape{label: fmt.Sprintf("rpc 10KiB c=%d", refConcurrency), conc: refConcurrency, payload: 10 << 10},
		peerShape{label: fmt.Sprintf("void 4×(%d+1)", voidBatch), conc: 4, payload: basePayload, void: true})
}

// load returns the shape as a load of the Go implementations.
func (s peerShape) load(ns string) load {
	l := load{scenario: scPeers, label: s.label, ns: ns, callers: 1, conc: s.conc, payload: s.payload, kind: kindCall, op: opEcho}
	if s.void {
		l.kind, l.op = kindVoidBatch, opSink
	}
	return l
}

// peerDir returns cmd/bench/peers/<name>: from the working directory (go
// run ./cmd/bench at the repository root), or beside this source file.
func peerDir(name string) (string, error) {
	cands := []string{filepath.Join("cmd", "bench", "peers", name), filepath.Join("peers", name)}
	if _, file, _, ok := runtime.Caller(0); ok {
		cands = append(cands, filepath.Join(filepath.Dir(file), "peers", name))
	}
	for _, d := range cands {
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			return filepath.Abs(d)
		}
	}
	return "", fmt.Errorf("no directory cmd/bench/peers/%s (run from the repository root)", name)
}

// errSkipped marks a peer whose toolchain is missing.
var errSkipped = errors.New("skipped")

// peer is one peer SDK, prepared: its command line per mode.
type peer struct {
	name    string
	dir     string
	command func(mode string) (string, []string)
}

// preparePeer checks the toolchain of peer name and installs its
// dependencies on first use (npm ci, cargo build --release, a venv with
// pip install -r requirements.txt). Progress goes to log.
func preparePeer(name string, log io.Writer) (*peer, error) {
	dir, err := peerDir(name)
	if err != nil {
		return nil, err
	}
	need := func(tools ...string) error {
		for _, t := range tools {
			if _, err := exec.LookPath(t); err != nil {
				return fmt.Errorf("%w: %s not found in PATH", errSkipped, t)
			}
		}
		return nil
	}
	run := func(what string, name string, args ...string) error {
		fmt.Fprintf(log, "bench: peer %s: %s\n", filepath.Base(dir), what)
		cmd := exec.Command(name, args...)
		cmd.Dir, cmd.Stdout, cmd.Stderr = dir, log, log
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s %s in %s: %w", name, strings.Join(args, " "), dir, err)
		}
		return nil
	}
	p := &peer{name: name, dir: dir}
	switch name {
	case "node":
		if err := need("node", "npm"); err != nil {
			return nil, err
		}
		if _, err := os.Stat(filepath.Join(dir, "node_modules", "iii-sdk", "package.json")); err != nil {
			if err := run("npm ci (first use)", "npm", "ci", "--no-audit", "--no-fund"); err != nil {
				return nil, err
			}
		}
		p.command = func(mode string) (string, []string) { return "node", []string{"peer.mjs", mode} }
	case "rust":
		if err := need("cargo"); err != nil {
			return nil, err
		}
		bin := filepath.Join(dir, "target", "release", "iii-bench-peer")
		what := "cargo build --release (up to date: a second)"
		if _, err := os.Stat(bin); err != nil {
			what = "cargo build --release (first use: some minutes)"
		}
		if err := run(what, "cargo", "build", "--release", "--quiet", "--locked"); err != nil {
			return nil, err
		}
		p.command = func(mode string) (string, []string) { return bin, []string{mode} }
	case "python":
		if err := need("python3"); err != nil {
			return nil, err
		}
		py := filepath.Join(dir, ".venv", "bin", "python")
		reqs, err := os.ReadFile(filepath.Join(dir, "requirements.txt"))
		if err != nil {
			return nil, err
		}
		stamp := filepath.Join(dir, ".venv", "installed-requirements.txt")
		if old, err := os.ReadFile(stamp); err != nil || !bytes.Equal(old, reqs) {
			if _, err := os.Stat(py); err != nil {
				if err := run("python3 -m venv .venv (first use)", "python3", "-m", "venv", ".venv"); err != nil {
					return nil, err
				}
			}
			if err := run("pip install -r requirements.txt", py, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", "requirements.txt"); err != nil {
				return nil, err
			}
			if err := os.WriteFile(stamp, reqs, 0o644); err != nil {
				return nil, err
			}
		}
		p.command = func(mode string) (string, []string) { return py, []string{"peer.py", mode} }
	default:
		return nil, fmt.Errorf("unknown peer %q (have %s)", name, strings.Join(knownPeers, ", "))
	}
	return p, nil
}

// peerProc is a running peer program.
type peerProc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string // stdout, line by line; closed at EOF
	stderr *tailBuffer
	once   sync.Once
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.b))
}

// start runs the peer in mode with the extra environment.
func (p *peer) start(mode string, env ...string) (*peerProc, error) {
	name, args := p.command(mode)
	cmd := exec.Command(name, args...)
	cmd.Dir = p.dir
	// The SDKs' telemetry off, as in the sdk rows.
	cmd.Env = append(append(os.Environ(), "OTEL_ENABLED=false"), env...)
	tail := &tailBuffer{max: 4 << 10}
	cmd.Stderr = tail // the SDKs' chatter; shown when something fails
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	pp := &peerProc{cmd: cmd, stdin: stdin, lines: make(chan string, 16), stderr: tail}
	go func() {
		defer close(pp.lines)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 256<<20) // the result line holds every latency
		for sc.Scan() {
			pp.lines <- sc.Text()
		}
	}()
	return pp, nil
}

// expect waits (up to d) for a JSON line whose event is event and decodes
// it into v (if not nil). Other lines are ignored.
func (pp *peerProc) expect(event string, d time.Duration, v any) error {
	t := time.NewTimer(d)
	defer t.Stop()
	var other []string // lines that were not the event, for the error
	for {
		select {
		case line, ok := <-pp.lines:
			if !ok {
				_ = pp.cmd.Wait()
				return fmt.Errorf("the peer exited before %q (%v); other lines on its stdout: %.300q; its stderr ends with:\n%s",
					event, pp.cmd.ProcessState, other, pp.stderr)
			}
			var head struct {
				Event string `json:"event"`
			}
			if json.Unmarshal([]byte(line), &head) != nil || head.Event != event {
				other = append(other, line)
				continue
			}
			if v != nil {
				return json.Unmarshal([]byte(line), v)
			}
			return nil
		case <-t.C:
			return fmt.Errorf("no %q from the peer within %s; its stderr ends with:\n%s", event, d, pp.stderr)
		}
	}
}

// stop closes the peer's stdin and waits for it (killing it after 5 s).
func (pp *peerProc) stop() {
	pp.once.Do(func() {
		pp.stdin.Close()
		t := time.AfterFunc(5*time.Second, func() { _ = pp.cmd.Process.Kill() })
		defer t.Stop()
		for range pp.lines { //nolint:revive // drain, so that the reader ends
		}
		_ = pp.cmd.Wait()
	})
}

// cpu returns the process's CPU time so far (user + system, all threads),
// from /proc/<pid>/stat.
func (pp *peerProc) cpu() (time.Duration, error) {
	return procCPU(pp.cmd.Process.Pid)
}

// clockTick is USER_HZ, the unit of /proc/<pid>/stat's times (100 on
// every Linux configuration that matters here).
const clockTick = 100

func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseProcStatCPU(b)
}

// parseProcStatCPU reads utime + stime (fields 14 and 15) of a
// /proc/<pid>/stat line; the command name (field 2) may hold spaces and
// parentheses, so the fields are counted from the last ')'.
func parseProcStatCPU(b []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("malformed /proc stat")
	}
	// f[0] is field 3 (state): utime is field 14, f[11]; stime f[12].
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	s, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("malformed /proc stat")
	}
	return time.Duration(u+s) * time.Second / clockTick, nil
}

// peerResult is the caller's result line.
type peerResult struct {
	OK         uint64  `json:"ok"`
	Errors     uint64  `json:"errors"`
	Seconds    float64 `json:"seconds"`
	LatUs      []int64 `json:"lat_us"`
	FirstError *string `json:"first_error"`
	Unfinished int     `json:"unfinished"`
}

// peerHandler returns the running handler of peer name, starting it (and
// preparing the peer) on first use; a peer that cannot run is remembered.
func (e *env) peerHandler(name string) (*peer, *peerProc, error) {
	e.peerMu.Lock()
	defer e.peerMu.Unlock()
	if err, ok := e.peerErr[name]; ok {
		return nil, nil, err
	}
	if h := e.peerProcs[name]; h != nil {
		return e.peers[name], h, nil
	}
	fail := func(err error) (*peer, *peerProc, error) {
		e.peerErr[name] = err
		if errors.Is(err, errSkipped) {
			e.prog.note("peer %s %v", name, err)
		} else {
			e.prog.note("peer %s: %v", name, err)
		}
		return nil, nil, err
	}
	p, err := preparePeer(name, e.prog.w)
	if err != nil {
		return fail(err)
	}
	h, err := p.start("handler", "III_URL="+e.url, "BENCH_PREFIX="+peerPrefix(name))
	if err != nil {
		return fail(err)
	}
	if err := h.expect("ready", 60*time.Second, nil); err != nil {
		h.stop()
		return fail(fmt.Errorf("handler: %w", err))
	}
	e.peers[name], e.peerProcs[name] = p, h
	e.closers = append(e.closers, h.stop)
	return p, h, nil
}

func peerPrefix(name string) string { return "bench::peer." + name + "::" }

// runPeer runs one shape with peer name's caller against its handler.
func (e *env) runPeer(ctx context.Context, name string, s peerShape) (res result) {
	res = result{Scenario: scPeers, Impl: name, Label: s.label, Callers: 1, Concurrency: s.conc, PayloadBytes: s.payload}
	p, h, err := e.peerHandler(name)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	step := e.prog.start(fmt.Sprintf("%s %s %s", scPeers, s.label, name), e.opt.warmup, e.opt.duration, nil)
	defer func() { step.done(res.summary()) }()
	pf, err := os.CreateTemp("", "iii-bench-payload-*.json")
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer os.Remove(pf.Name())
	_, err = pf.Write(makePayload(s.payload))
	if cerr := pf.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		res.Error = err.Error()
		return res
	}
	mode, fn := "call", peerPrefix(name)+opEcho
	if s.void {
		mode, fn = "void", peerPrefix(name)+opSink
	}
	c, err := p.start("caller", "III_URL="+e.url, "FN="+fn, "ECHO_FN="+peerPrefix(name)+opEcho, "MODE="+mode,
		"CONC="+strconv.Itoa(s.conc), "PAYLOAD_FILE="+pf.Name(),
		"WARMUP_MS="+strconv.FormatInt(e.opt.warmup.Milliseconds(), 10),
		"DURATION_MS="+strconv.FormatInt(e.opt.duration.Milliseconds(), 10))
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer c.stop()
	edge := func() (hc, cc time.Duration, d *procSample, err error) {
		if hc, err = h.cpu(); err != nil {
			return
		}
		if cc, err = c.cpu(); err != nil {
			return
		}
		if e.double != nil {
			if s, derr := e.double.stats(); derr == nil {
				d = &s
			}
		}
		return
	}
	if err := c.expect("measuring", 60*time.Second+e.opt.warmup, nil); err != nil {
		res.Error = "caller: " + err.Error()
		return res
	}
	step.measuring()
	hc0, cc0, d0, err := edge()
	if err != nil {
		res.Error = "CPU: " + err.Error()
		return res
	}
	var r peerResult
	if err := c.expect("result", e.opt.duration+90*time.Second, &r); err != nil {
		res.Error = "caller: " + err.Error()
		return res
	}
	hc1, cc1, d1, err := edge()
	if err != nil {
		res.Error = "CPU: " + err.Error()
		return res
	}
	res.Ops, res.Errors, res.Seconds = r.OK, r.Errors, r.Seconds
	if r.Seconds > 0 {
		res.OpsPerSec = float64(r.OK) / r.Seconds
	}
	if s.payload >= 1024 {
		res.MBPerSec = res.OpsPerSec * float64(s.payload) / 1e6
	}
	hist := &Hist{}
	for _, us := range r.LatUs {
		hist.Record(time.Duration(us) * time.Microsecond)
	}
	res.setLatency(hist)
	if r.OK > 0 {
		n := float64(r.OK)
		// The "result" line comes after the window: the CPU read at it
		// includes the caller's last calls and its wind-down, a few ms.
		res.CPUUsPerOp = float64((hc1-hc0)+(cc1-cc0)) / 1e3 / n
		hcpu := float64(hc1-hc0) / 1e3 / n
		res.HandlerCPUUsPerOp = &hcpu
		if d0 != nil && d1 != nil {
			v := float64(d1.CPU-d0.CPU) / 1e3 / n
			res.EngineCPUUsPerOp = &v
		}
	}
	if r.Unfinished > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("%d of %d caller loops had a call that had not returned 10 s after the window", r.Unfinished, s.conc))
	}
	if r.FirstError != nil {
		res.Notes = append(res.Notes, "first error: "+*r.FirstError)
		if r.OK == 0 {
			res.Error = *r.FirstError
		}
	}
	return res
}
