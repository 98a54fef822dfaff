package main

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestParseProcStatCPU(t *testing.T) {
	// utime 250 and stime 50 ticks; the command name holds ") (" and spaces.
	line := []byte("4242 (node ) (peer) S 1 4242 4242 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 11 0 123 456 789\n")
	d, err := parseProcStatCPU(line)
	if err != nil || d != 3*time.Second {
		t.Errorf("got %v, %v; want 3s", d, err)
	}
	if _, err := parseProcStatCPU([]byte("garbage")); err == nil {
		t.Error("garbage parsed")
	}
	if d, err := procCPU(os.Getpid()); err == nil && d <= 0 {
		t.Errorf("this process has used %v of CPU", d)
	}
}

func TestPeerShapesFollowConcurrencyAndAddPayloadAndVoid(t *testing.T) {
	var labels []string
	for _, s := range peerShapes([]int{1, 64, 256}) {
		labels = append(labels, s.label)
	}
	want := "rpc c=1,rpc c=64,rpc c=256,rpc 10KiB c=64,void 4×(64+1)"
	if strings.Join(labels, ",") != want {
		t.Errorf("shapes %q, want %q", labels, want)
	}
	if l := peerShapes([]int{1})[2].load(""); l.kind != kindVoidBatch || l.op != opSink {
		t.Errorf("the void shape runs %+v", l)
	}
}

// TestPeerWithoutToolchainIsSkipped runs -peer node with an empty PATH: the
// Go rows run, the node rows say why they did not.
func TestPeerWithoutToolchainIsSkipped(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	rep := runJSON(t, "-scenario", "rpc", "-peer", "node", "-concurrency", "2")
	seen := map[string]int{}
	for _, r := range rep.Results {
		seen[r.Impl]++
		switch r.Impl {
		case "raw", "sdk":
			if r.Scenario != scPeers || r.Error != "" || r.Ops == 0 {
				t.Errorf("%s %s: ops %d, error %q", r.Label, r.Impl, r.Ops, r.Error)
			}
		case "node":
			if !strings.HasPrefix(r.Error, "skipped: node not found") {
				t.Errorf("%s node: error %q, want the skip reason", r.Label, r.Error)
			}
		}
	}
	if seen["raw"] != 3 || seen["sdk"] != 3 || seen["node"] != 3 {
		t.Errorf("rows per implementation: %v; want 3 each (rpc c=2, 10 KiB, void)", seen)
	}
	var out bytes.Buffer
	rep.writeText(&out)
	if !strings.Contains(out.String(), "skipped: node not found in PATH") || strings.Contains(out.String(), "error: skipped") {
		t.Errorf("the table does not say plainly that node was skipped:\n%s", out.String())
	}
}

// TestNodePeerRunsEveryShape runs the Node peer for real (npm ci on first
// use), when node and npm are installed.
func TestNodePeerRunsEveryShape(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Node processes")
	}
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	chart := t.TempDir() + "/peers.svg"
	rep := runJSON(t, "-scenario", "rpc", "-peer", "node", "-concurrency", "2", "-sdk-only", "-duration", "400ms", "-chart", chart)
	n := 0
	for _, r := range rep.Results {
		if r.Impl != "node" {
			continue
		}
		n++
		if r.Error != "" || r.Ops == 0 || r.CPUUsPerOp <= 0 || r.HandlerCPUUsPerOp == nil {
			t.Errorf("node %s: ops %d, CPU %.1f µs/op, handler %v, error %q", r.Label, r.Ops, r.CPUUsPerOp, r.HandlerCPUUsPerOp, r.Error)
		}
		if !strings.HasPrefix(r.Label, "void") && (r.Latency == nil || r.Latency.P99 <= 0) {
			t.Errorf("node %s: no latencies", r.Label)
		}
	}
	if n != 3 {
		t.Errorf("%d node rows, want 3", n)
	}
	svg := readFile(t, chart)
	if !strings.HasPrefix(svg, "<svg") || !strings.Contains(svg, "Node iii-sdk") || strings.Count(svg, "<rect") < 10 {
		t.Errorf("the chart has no bars:\n%.400s", svg)
	}
}
