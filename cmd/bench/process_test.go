//go:build unix

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildBench builds the command into a temporary directory.
func buildBench(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the command")
	}
	exe := filepath.Join(t.TempDir(), "bench")
	out, err := exec.Command("go", "build", "-o", exe, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return exe
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startProc starts a long-running process and stops it with SIGINT at the
// end of the test, checking that it exits cleanly.
func startProc(t *testing.T, exe string, args ...string) *bytes.Buffer {
	t.Helper()
	cmd := exec.Command(exe, args...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGINT)
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s: %v\n%s", strings.Join(args, " "), err, errb.String())
			}
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Errorf("%s did not stop on SIGINT", strings.Join(args, " "))
		}
	})
	return &errb
}

func waitListening(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// runProc runs the command to its end with -json and decodes its report.
func runProc(t *testing.T, exe string, args ...string) *report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, append([]string{"-json", "-q", "-duration", "200ms", "-warmup", "50ms"}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("bench %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	var rep report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("the -json output does not parse: %v\n%s", err, out.String())
	}
	return &rep
}

func checkThroughput(t *testing.T, rep *report, n int) {
	t.Helper()
	if len(rep.Results) != n {
		t.Fatalf("%d results, want %d: %+v", len(rep.Results), n, rep.Results)
	}
	for _, r := range rep.Results {
		if r.Error != "" || r.OpsPerSec <= 0 {
			t.Errorf("%s %s %s: %.0f ops/s, error %q", r.Scenario, r.Label, r.Impl, r.OpsPerSec, r.Error)
		}
	}
}

func TestEngineFlagAgainstServeInAnotherProcess(t *testing.T) {
	exe := buildBench(t)
	addr := freeAddr(t)
	startProc(t, exe, "-serve", addr)
	waitListening(t, addr)
	rep := runProc(t, exe, "-engine", "ws://"+addr, "-scenario", "rpc", "-concurrency", "8")
	checkThroughput(t, rep, 2)
	if !strings.Contains(rep.Engine, "ws://"+addr) {
		t.Errorf("engine = %q", rep.Engine)
	}
}

func TestHandlerAndCallerInSeparateProcesses(t *testing.T) {
	exe := buildBench(t)
	addr := freeAddr(t)
	startProc(t, exe, "-serve", addr)
	waitListening(t, addr)
	url := "ws://" + addr
	// The caller starts first: it waits for the handler's functions.
	got := make(chan *report, 1)
	go func() {
		got <- runProcNoFatal(exe, "-role", "caller", "-engine", url, "-scenario", "rpc,void", "-concurrency", "8")
	}()
	time.Sleep(300 * time.Millisecond)
	startProc(t, exe, "-role", "handler", "-engine", url)
	rep := <-got
	if rep == nil {
		t.Fatal("the caller failed")
	}
	checkThroughput(t, rep, 4)
	for _, r := range rep.Results {
		if r.HandlerCPUUsPerOp == nil || r.HandlerAllocsPerOp == nil || *r.HandlerCPUUsPerOp <= 0 {
			t.Errorf("%s %s: no figures of the handler process", r.Scenario, r.Impl)
		}
	}
}

// runProcNoFatal is runProc for another goroutine: nil on failure.
func runProcNoFatal(exe string, args ...string) *report {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, append([]string{"-json", "-q", "-duration", "200ms", "-warmup", "50ms"}, args...)...)
	var out bytes.Buffer
	cmd.Stdout = &out
	if cmd.Run() != nil {
		return nil
	}
	var rep report
	if json.Unmarshal(out.Bytes(), &rep) != nil {
		return nil
	}
	return &rep
}

func TestDefaultDoubleAndSidesRunInChildProcesses(t *testing.T) {
	exe := buildBench(t)
	rep := runProc(t, exe, "-scenario", "rpc,sides", "-concurrency", "4")
	checkThroughput(t, rep, 4)
	if !strings.Contains(rep.Engine, "child process") {
		t.Errorf("engine = %q, want the double in a child process", rep.Engine)
	}
	for _, r := range rep.Results {
		if r.EngineCPUUsPerOp == nil {
			t.Errorf("%s %s: no CPU figure of the engine double", r.Scenario, r.Impl)
		}
		if (r.Scenario == scSides) != (r.HandlerAllocsPerOp != nil) {
			t.Errorf("%s %s: handler figures %v", r.Scenario, r.Impl, r.HandlerAllocsPerOp)
		}
	}
	var names []string
	for _, tg := range rep.Targets {
		names = append(names, tg.Name)
	}
	if !strings.Contains(strings.Join(names, "|"), "allocations per round trip, SDK handler") {
		t.Errorf("targets = %q, want each side's allocations", names)
	}
}

func TestServeChildProtocol(t *testing.T) {
	exe := buildBench(t)
	cmd := exec.Command(exe, "-serve", "127.0.0.1:0")
	cmd.Env = append(cmd.Environ(), childEnv+"=1")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(stdout)
	url, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(url, "ws://127.0.0.1:") {
		t.Fatalf("first line %q, %v", url, err)
	}
	fmt.Fprintln(stdin, "stats")
	line, _ := r.ReadString('\n')
	var s procSample
	if err := json.Unmarshal([]byte(line), &s); err != nil || s.CPU <= 0 || s.Mallocs == 0 {
		t.Errorf("stats line %q: %+v, %v", line, s, err)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Errorf("the child did not exit cleanly when its stdin closed: %v", err)
	}
}

func TestServeHTTPFlagPutsTheDoublesHTTPPortAtTheAddress(t *testing.T) {
	exe := buildBench(t)
	addr, httpAddr := freeAddr(t), freeAddr(t)
	startProc(t, exe, "-serve", addr, "-serve-http", httpAddr)
	waitListening(t, httpAddr)
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	res, err := (&http.Client{Transport: tr}).Get("http://" + httpAddr + "/no/route")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 404 || string(body) != `{"error":{"code":"NOT_FOUND","message":"Not Found"}}` {
		t.Fatalf("GET: %d %s", res.StatusCode, body)
	}
}
