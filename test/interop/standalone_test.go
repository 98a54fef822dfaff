package interop_test

import (
	"encoding/json"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startStandaloneDouble builds cmd/bench and runs `bench -serve` on a free
// loopback port until the test ends; it returns the worker URL once the
// port accepts connections.
func startStandaloneDouble(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "bench")
	build := exec.Command("go", "build", "-o", bin, "github.com/iii-go/iii/cmd/bench")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build cmd/bench: %v\n%s", err, out)
	}
	// The port is free when chosen but could be taken before bench binds
	// it; try again in that case.
	for attempt := 1; ; attempt++ {
		addr := freeAddr(t)
		p := startProcess(t, "bench -serve "+addr, exec.Command(bin, "-serve", addr), sigterm)
		if accepting(p, addr) {
			t.Cleanup(func() {
				if code := p.stop(); code != 0 {
					t.Errorf("bench -serve exited with %d on SIGTERM\n%s", code, p.stderr.String())
				}
			})
			return "ws://" + addr
		}
		if attempt < 3 && strings.Contains(p.stderr.String(), "address already in use") {
			continue
		}
		t.Fatalf("bench -serve %s (%s) does not accept connections:\n%s", addr, p.exitStatus(), p.stderr.String())
	}
}

// accepting waits until addr accepts TCP connections, and reports false if
// p exits or waitTimeout passes first.
func accepting(p *proc, addr string) bool {
	deadline := time.Now().Add(waitTimeout)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return true
		}
		select {
		case <-p.done:
			return false
		case <-time.After(20 * time.Millisecond):
		}
	}
	return false
}

// freeAddr returns a loopback address with a port nobody listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func TestNodeWorkersTalkThroughTheStandaloneDouble(t *testing.T) {
	t.Parallel()
	url := startStandaloneDouble(t)
	worker := startScript(t, url, "worker.mjs", "FUNCTIONS=interop::echo")
	readyID(t, worker)
	caller := startScript(t, url, "caller.mjs", `PAYLOAD={"via":"bench -serve"}`, `METADATA={"standalone":true}`,
		"VOID_FN=-", "FAIL_FN=-", "MISSING_FN=interop::missing")
	callerID := readyID(t, caller)

	echo := result(t, caller, "echo")
	if !echo.OK {
		t.Fatalf("echo through bench -serve: %+v", echo.Error)
	}
	requireJSON(t, "echo result", echo.Result, json.RawMessage(
		`{"input":{"via":"bench -serve","_caller_worker_id":"`+callerID+`"},"metadata":{"standalone":true}}`))
	requireError(t, result(t, caller, "missing"), "function_not_found", "Function interop::missing not found")
	caller.waitExit()
}
