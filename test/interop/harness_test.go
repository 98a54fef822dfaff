package interop_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	// waitTimeout bounds every wait for an event. A Node process needs
	// 0.3–4 s to become ready on a busy 2-core machine; a wait that takes
	// longer than this is a failure, not slowness.
	waitTimeout = 30 * time.Second
	// stopGrace is how long a process may take to exit after being asked to.
	stopGrace = 10 * time.Second
)

// event is one JSON line a script printed on stdout.
type event struct {
	Name string          // its "event" field
	Raw  json.RawMessage // the whole line
}

// decode unmarshals the event into v, failing the test if it does not fit.
func (e event) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(e.Raw, v); err != nil {
		t.Fatalf("event %s: %v", e.Raw, err)
	}
}

// proc is a child process of a test: a Node script (stdout: JSON lines,
// stopped by closing its stdin) or the standalone engine double (stopped by
// SIGTERM). It is stopped and reaped by t.Cleanup at the latest.
type proc struct {
	t    testing.TB
	name string
	cmd  *exec.Cmd
	// workerName is the III_WORKER_NAME the process was given.
	workerName string
	stderr     tail
	// interrupt asks the process to exit cleanly.
	interrupt func() error

	mu      sync.Mutex
	events  []event
	changed chan struct{} // closed and replaced whenever events or exited change
	failed  bool          // a wait failed and printed the stderr tail
	exited  bool
	state   *os.ProcessState
	done    chan struct{} // closed once the process is reaped
}

// startScript runs `node <file>` in the scripts' directory with III_URL=url
// and env ("KEY=value", overriding the defaults: OTel off, 5 s call timeout,
// a recognisable worker name), with a stdin pipe that stays open until
// stop.
func startScript(t testing.TB, url, file string, env ...string) *proc {
	t.Helper()
	cmd := exec.Command("node", file)
	cmd.Dir = nodeDir
	return startInterop(t, file, cmd, url, "interop-"+strings.TrimSuffix(file, ".mjs"), env...)
}

// startInterop runs cmd, a program of the interop convention (JSON lines on
// stdout, stops on stdin EOF), with III_URL=url, the common defaults (OTel
// off, 5 s call timeout, III_WORKER_NAME=workerName) and env ("KEY=value",
// overriding them), and a stdin pipe that stays open until stop.
func startInterop(t testing.TB, name string, cmd *exec.Cmd, url, workerName string, env ...string) *proc {
	t.Helper()
	workerName = uniqueWorkerName(workerName)
	cmd.Env = append(os.Environ(),
		"III_URL="+url,
		"OTEL_ENABLED=false",
		"CALL_TIMEOUT_MS=5000",
		"III_WORKER_NAME="+workerName,
		"EXIT_ON_STDIN_EOF=1",
	)
	cmd.Env = append(cmd.Env, env...)
	p := &proc{t: t, name: name, cmd: cmd, workerName: workerName}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.interrupt = stdin.Close
	p.start()
	return p
}

// startProcess runs cmd; interrupt (e.g. SIGTERM) asks it to exit.
func startProcess(t testing.TB, name string, cmd *exec.Cmd, interrupt func(*os.Process) error) *proc {
	t.Helper()
	p := &proc{t: t, name: name, cmd: cmd}
	p.interrupt = func() error { return interrupt(cmd.Process) }
	p.start()
	return p
}

func (p *proc) start() {
	t := p.t
	t.Helper()
	p.changed = make(chan struct{})
	p.done = make(chan struct{})
	p.cmd.Stderr = &p.stderr
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", p.name, err)
	}
	p.name = fmt.Sprintf("%s[pid %d]", p.name, p.cmd.Process.Pid)
	go p.read(stdout)
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			p.report()
		}
	})
}

// read collects stdout's JSON lines until EOF, then reaps the process.
func (p *proc) read(stdout io.Reader) {
	defer close(p.done)
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 0, 64<<10), 64<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		var head struct {
			Event string `json:"event"`
		}
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &head) != nil || head.Event == "" {
			continue // not one of ours: SDK chatter
		}
		p.mu.Lock()
		p.events = append(p.events, event{Name: head.Event, Raw: bytes.Clone(line)})
		p.notifyLocked()
		p.mu.Unlock()
	}
	_, _ = io.Copy(io.Discard, stdout) // after a scanner error; Wait needs EOF
	_ = p.cmd.Wait()
	p.mu.Lock()
	p.exited, p.state = true, p.cmd.ProcessState
	p.notifyLocked()
	p.mu.Unlock()
}

func (p *proc) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// match selects events: by name, and by fields when the fields are given.
type match struct {
	name   string
	fields map[string]any // top-level field -> value, compared as JSON
}

// ev matches events named name whose fields equal the given key/value pairs.
func ev(name string, kv ...any) match {
	m := match{name: name, fields: map[string]any{}}
	for i := 0; i+1 < len(kv); i += 2 {
		m.fields[kv[i].(string)] = kv[i+1]
	}
	return m
}

func (m match) String() string {
	if len(m.fields) == 0 {
		return fmt.Sprintf("%q", m.name)
	}
	b, _ := json.Marshal(m.fields)
	return fmt.Sprintf("%q with %s", m.name, b)
}

func (m match) matches(e event) bool {
	if e.Name != m.name {
		return false
	}
	if len(m.fields) == 0 {
		return true
	}
	var got map[string]any
	if json.Unmarshal(e.Raw, &got) != nil {
		return false
	}
	for k, want := range m.fields {
		if !jsonEqual(got[k], want) {
			return false
		}
	}
	return true
}

// jsonEqual compares two values by their JSON encodings' meaning.
func jsonEqual(a, b any) bool {
	norm := func(v any) any {
		raw, ok := v.(json.RawMessage)
		if !ok {
			var err error
			if raw, err = json.Marshal(v); err != nil {
				return err
			}
		}
		var out any
		if err := json.Unmarshal(raw, &out); err != nil {
			return err
		}
		return out
	}
	return reflect.DeepEqual(norm(a), norm(b))
}

// wait returns the first event (since the start) that m selects, failing
// the test if the process exits or waitTimeout passes first.
func (p *proc) wait(m match) event {
	p.t.Helper()
	return p.waitN(m, 1)[0]
}

// waitN returns the first n events that m selects, in output order.
func (p *proc) waitN(m match, n int) []event {
	p.t.Helper()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	for {
		p.mu.Lock()
		var got []event
		for _, e := range p.events {
			if m.matches(e) {
				got = append(got, e)
			}
		}
		changed, exited := p.changed, p.exited
		p.mu.Unlock()
		if len(got) >= n {
			return got[:n]
		}
		if exited {
			p.fail(fmt.Sprintf("exited (%v) after %d of %d events %v", p.exitStatus(), len(got), n, m))
		}
		select {
		case <-changed:
		case <-timer.C:
			p.fail(fmt.Sprintf("no %d× event %v within %v", n, m, waitTimeout))
		}
	}
}

// fail fails the test with the reason and the process's stderr tail.
func (p *proc) fail(reason string) {
	p.t.Helper()
	p.mu.Lock()
	p.failed = true
	p.mu.Unlock()
	p.t.Fatalf("%s: %s\nstderr (tail):\n%s", p.name, reason, p.stderr.String())
}

// all returns the events printed so far that m selects.
func (p *proc) all(m match) []event {
	p.mu.Lock()
	defer p.mu.Unlock()
	var got []event
	for _, e := range p.events {
		if m.matches(e) {
			got = append(got, e)
		}
	}
	return got
}

// waitExit waits for a script that ends by itself and requires exit code 0.
func (p *proc) waitExit() {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(waitTimeout):
		p.fail(fmt.Sprintf("did not exit within %v", waitTimeout))
	}
	if code := p.state.ExitCode(); code != 0 {
		p.fail(fmt.Sprintf("exited with %v, want 0", p.exitStatus()))
	}
}

// stop asks the process to exit, kills it after stopGrace, and reaps it. It
// returns the exit code (-1 if it was killed). It may be called repeatedly.
func (p *proc) stop() int {
	select {
	case <-p.done:
	default:
		_ = p.interrupt()
		select {
		case <-p.done:
		case <-time.After(stopGrace):
			p.t.Errorf("%s did not exit within %v of being asked to; killing it", p.name, stopGrace)
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
	return p.state.ExitCode()
}

func (p *proc) exitStatus() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.exited {
		return "running"
	}
	return p.state.String()
}

// report logs what the process printed, for a failed test.
func (p *proc) report() {
	p.mu.Lock()
	var out strings.Builder
	for _, e := range p.events {
		out.Write(e.Raw)
		out.WriteByte('\n')
	}
	if !p.failed { // else fail printed it already
		fmt.Fprintf(&out, "stderr (tail):\n%s", p.stderr.String())
	}
	p.mu.Unlock()
	p.t.Logf("%s (%s) stdout events:\n%s", p.name, p.exitStatus(), out.String())
}

// tail keeps the last tailSize bytes written to it.
type tail struct {
	mu  sync.Mutex
	buf []byte
}

const tailSize = 16 << 10

func (w *tail) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, b...)
	if over := len(w.buf) - tailSize; over > 0 {
		w.buf = append(w.buf[:0], w.buf[over:]...)
	}
	return len(b), nil
}

func (w *tail) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.buf)
}

// sigterm asks a process to exit.
func sigterm(p *os.Process) error { return p.Signal(syscall.SIGTERM) }

// testCtx is a context for waits on the engine double, bounded so that a
// broken test fails instead of hanging.
func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

// poll waits for cond, for state the double exposes only by inspection.
func poll(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// requireJSON fails unless got and want mean the same JSON.
func requireJSON(t testing.TB, what string, got, want any) {
	t.Helper()
	if !jsonEqual(got, want) {
		t.Fatalf("%s:\n got %s\nwant %s", what, jsonText(got), jsonText(want))
	}
}

func jsonText(v any) string {
	if raw, ok := v.(json.RawMessage); ok {
		return string(raw)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%#v", v)
	}
	return string(b)
}
