package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// quick are the flags of a very short run against the engine double in
// this process (the tests cannot re-execute the command).
var quick = []string{"-double", "inproc", "-duration", "150ms", "-warmup", "50ms", "-q"}

// runJSON runs the command with -json and decodes its report.
func runJSON(t *testing.T, args ...string) *report {
	t.Helper()
	var out, errb bytes.Buffer
	if code := run(append(append(append([]string{}, quick...), "-json"), args...), &out, &errb); code != 0 {
		t.Fatalf("bench %s: exit %d\n%s", strings.Join(args, " "), code, errb.String())
	}
	var rep report
	dec := json.NewDecoder(&out)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep); err != nil {
		t.Fatalf("the -json output does not parse: %v\n%s", err, out.String())
	}
	if dec.More() {
		t.Fatal("the -json output holds more than one document")
	}
	return &rep
}

func TestJSONOutputIsOneDocumentWithResultsAndTargets(t *testing.T) {
	rep := runJSON(t, "-scenario", "rpc", "-concurrency", "64")
	if len(rep.Results) != 2 {
		t.Fatalf("got %d results, want raw and sdk", len(rep.Results))
	}
	for _, r := range rep.Results {
		if r.Error != "" || r.Ops == 0 || r.OpsPerSec <= 0 || r.Latency == nil || r.Latency.P99 <= 0 || r.CPUUsPerOp <= 0 {
			t.Errorf("%s: %+v", r.Impl, r)
		}
	}
	sdk := rep.Results[1]
	if sdk.Impl != "sdk" || sdk.VsRaw == nil || sdk.VsRaw.Throughput <= 0 || sdk.VsRaw.P99 <= 0 {
		t.Errorf("the SDK result has no ratios to raw: %+v", sdk.VsRaw)
	}
	var names []string
	for _, tg := range rep.Targets {
		names = append(names, tg.Name)
	}
	if len(rep.Targets) != 3 {
		t.Errorf("targets = %q, want throughput, p99 and the allocation estimate", names)
	}
	if rep.Machine.CPUs == 0 || rep.Engine == "" || rep.Command == "" {
		t.Errorf("report header: %+v", rep)
	}
}

func TestEveryScenarioKindHasThroughput(t *testing.T) {
	rep := runJSON(t, "-scenario", "rpc,payload,void,enqueue,fanin,channel,inflight",
		"-concurrency", "4", "-payload", "2KiB", "-callers", "2", "-inflight", "300")
	seen := map[string]bool{}
	for _, r := range rep.Results {
		seen[r.Scenario+" "+r.Impl] = true
		if r.Error != "" || r.OpsPerSec <= 0 || r.Ops == 0 {
			t.Errorf("%s %s %s: ops %d, %.0f/s, error %q, notes %q", r.Scenario, r.Label, r.Impl, r.Ops, r.OpsPerSec, r.Error, r.Notes)
		}
		if r.Scenario == scInflight && (r.Inflight == nil || r.Inflight.HeapBytesPerCall <= 0 || r.Inflight.N != 300) {
			t.Errorf("inflight %s: %+v", r.Impl, r.Inflight)
		}
		if r.Scenario == scEnqueue && r.DeliveredPerSec <= 0 {
			t.Errorf("enqueue %s: no job was delivered", r.Impl)
		}
	}
	for _, sc := range []string{scRPC, scPayload, scVoid, scEnqueue, scFanIn, scChannel, scInflight} {
		for _, impl := range []string{"raw", "sdk"} {
			if !seen[sc+" "+impl] {
				t.Errorf("no result for %s %s", sc, impl)
			}
		}
	}
}

func TestTextOutputHasTablesTargetsAndChart(t *testing.T) {
	var out, errb bytes.Buffer
	chart := t.TempDir() + "/rpc.svg"
	args := append(append([]string{}, quick...), "-scenario", "rpc", "-concurrency", "1,8", "-chart", chart)
	if code := run(args, &out, &errb); code != 0 {
		t.Fatalf("exit %d\n%s", code, errb.String())
	}
	for _, want := range []string{"rpc c=1 ", "rpc c=8 ", "thr ×raw", "p99 ×raw", "allocs/op"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the output lacks %q:\n%s", want, out.String())
		}
	}
	svg := readFile(t, chart)
	if !strings.HasPrefix(svg, "<svg") || !strings.Contains(svg, "polyline") || strings.Count(svg, "<polyline") != 4 {
		t.Errorf("the chart is not two series in two panels:\n%.300s", svg)
	}
}

func TestFlagErrors(t *testing.T) {
	for _, args := range [][]string{
		{"-role", "caller"},
		{"-role", "nobody"},
		{"-scenario", "nope"},
		{"-concurrency", "0"},
		{"-sdk-only", "-raw-only"},
		{"-engine", "http://x"},
		{"extra"},
	} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 2 {
			t.Errorf("bench %s: exit %d, want 2", strings.Join(args, " "), code)
		}
	}
}
