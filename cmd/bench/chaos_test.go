package main

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/iii-go/iii/test/iiitest"
)

func TestChaosScheduleIsRepeatableAndCoversEveryFault(t *testing.T) {
	kinds := func(seed uint64) []string {
		var out []string
		for _, f := range chaosSchedule(seed, 12, faultKinds) {
			out = append(out, f.kind+" "+f.pause.String()+" "+f.gap.String())
		}
		return out
	}
	a, b, c := kinds(7), kinds(7), kinds(8)
	if !slices.Equal(a, b) {
		t.Errorf("seed 7 gave two schedules:\n%q\n%q", a, b)
	}
	if slices.Equal(a, c) {
		t.Errorf("seeds 7 and 8 gave the same schedule %q", a)
	}
	first := map[string]bool{}
	for _, f := range chaosSchedule(7, len(faultKinds), faultKinds) {
		first[f.kind] = true
	}
	if len(first) != len(faultKinds) {
		t.Errorf("the first %d faults are not one of each kind: %v", len(faultKinds), first)
	}
}

func TestExecCountsFindCallsExecutedTwice(t *testing.T) {
	var c execCounts
	for _, id := range []uint64{1, 2, 2, 3, 9000, 9000, 9000} {
		c.add(id)
	}
	if execs, dups := c.totals(); execs != 7 || dups != 2 {
		t.Errorf("executions %d, duplicated %d; want 7 and 2", execs, dups)
	}
}

// runChaosJSON runs the chaos scenario with args and returns its figures.
func runChaosJSON(t *testing.T, args ...string) *chaosFigures {
	t.Helper()
	rep := runJSON(t, append([]string{"-scenario", "chaos"}, args...)...)
	if len(rep.Results) != 1 || rep.Results[0].Chaos == nil {
		t.Fatalf("results: %+v", rep.Results)
	}
	if r := rep.Results[0]; r.Error != "" {
		t.Fatal(r.Error)
	}
	return rep.Results[0].Chaos
}

// TestChaosLeavesNoCallHungOrExecutedTwice runs a short chaos schedule:
// rpc load while the double restarts and worker sockets are stalled and
// dropped.
func TestChaosLeavesNoCallHungOrExecutedTwice(t *testing.T) {
	if testing.Short() {
		t.Skip("a few seconds of faults")
	}
	c := runChaosJSON(t, "-duration", "4s", "-seed", "3")
	t.Logf("%d faults (%s): %d calls, %d ok, failed %v; registrations per connection %.2f; recovery %+v",
		c.Faults, c.Schedule, c.Calls, c.OK, c.FailedByCode, c.RegistrationsPerConnection, c.Recovery)
	if c.Hung != 0 || c.Duplicated != 0 || c.WrongResult != 0 {
		t.Errorf("hung %d, executed twice %d, wrong results %d; want 0, 0, 0", c.Hung, c.Duplicated, c.WrongResult)
	}
	if c.Faults < 2 || c.OK == 0 || c.Unrecovered != 0 || c.HandlerConnections < 2 {
		t.Errorf("faults %d, ok %d, unrecovered %d, handler connections %d: the schedule did not run",
			c.Faults, c.OK, c.Unrecovered, c.HandlerConnections)
	}
	if c.Executions < c.OK {
		t.Errorf("%d calls succeeded but the handler ran %d", c.OK, c.Executions)
	}
}

// TestChaosThroughProxiesAgainstAnExternalEngine runs the chaos schedule
// against an engine it does not control, as against a real one: a double
// started apart stands for it, the stalls and drops go through a proxy per
// worker, and without -engine-restart there is no restart.
func TestChaosThroughProxiesAgainstAnExternalEngine(t *testing.T) {
	if testing.Short() {
		t.Skip("a few seconds of faults")
	}
	eng := iiitest.NewEngine(t)
	c := runChaosJSON(t, "-engine", eng.URL, "-duration", "4s", "-seed", "5")
	t.Logf("%d faults (%s): %d calls, %d ok, failed %v; recovery %+v", c.Faults, c.Schedule, c.Calls, c.OK, c.FailedByCode, c.Recovery)
	if !c.External || strings.Contains(c.Schedule, faultRestart) {
		t.Errorf("external %v, schedule %q: want the external engine's faults, no restart", c.External, c.Schedule)
	}
	if c.Hung != 0 || c.Duplicated != 0 || c.WrongResult != 0 {
		t.Errorf("hung %d, executed twice %d, wrong results %d; want 0, 0, 0", c.Hung, c.Duplicated, c.WrongResult)
	}
	// The double saw the proxies' connections come and go: each fault cost
	// the worker it hit its connection.
	if c.Faults < 2 || c.OK == 0 || c.Unrecovered != 0 || c.HandlerConnections+c.CallerConnections < 2+c.Faults {
		t.Errorf("faults %d, ok %d, unrecovered %d, connections %d and %d: the faults did not hit the workers",
			c.Faults, c.OK, c.Unrecovered, c.HandlerConnections, c.CallerConnections)
	}
	if c.GoroutinesAfterClose > c.GoroutinesBefore {
		t.Errorf("goroutines: %d before, %d after the proxies' Close", c.GoroutinesBefore, c.GoroutinesAfterClose)
	}
}

func TestChaosTextOutputAndFlagErrors(t *testing.T) {
	r := result{Scenario: scChaos, Impl: "sdk", Label: "c=64 seed=1", Seconds: 1,
		Chaos: &chaosFigures{Seed: 1, Faults: 1, Calls: 10, OK: 9, FailedByCode: map[string]uint64{"timeout": 1},
			Hung: 1, Functions: 2, Recovery: []recoveryFigures{{Kind: "all", Count: 1, Median: 1e6, Max: 2e6}}, Schedule: "restart 10ms"}}
	var out bytes.Buffer
	(&report{Results: []result{r}}).writeText(&out)
	for _, want := range []string{"chaos c=64 seed=1", "timeout 1", "1 (MUST BE 0)", "executed twice", "recovery median", "restart 10ms"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the output lacks %q:\n%s", want, out.String())
		}
	}
	for _, args := range [][]string{
		{"-scenario", "chaos", "-role", "caller", "-engine", "ws://127.0.0.1:1"},
		{"-scenario", "chaos", "-engine-restart", "true"},
		{"-scenario", "rpc", "-engine", "ws://127.0.0.1:1", "-engine-restart", "true"},
	} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 2 {
			t.Errorf("bench %s: exit %d, want 2", strings.Join(args, " "), code)
		}
	}
}
