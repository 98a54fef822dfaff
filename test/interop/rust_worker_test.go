package interop_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/connection/wire"
	"github.com/iii-go/iii/test/iiitest"
)

func TestRustLoggerRecordsReachTheDoubleAsLogsFrames(t *testing.T) {
	eng := doubleEngine(t)
	const mark = "interop-rust-log-5c1e"
	p := startRust(t, eng.URL, "logger", "LOG_MARK="+mark) // the program turns OTel on
	p.wait(ev("logged"))
	requireLoggerRecords(t, markedLogRecords(t, eng, mark), mark, "")
	if n := eng.TelemetryFrames(wire.TelemetryLogs); n < 1 {
		t.Fatalf("%d LOGS frames", n)
	}
	if code := p.stop(); code != 0 {
		t.Fatalf("Rust logger exited with %d", code)
	}
}

func TestRustListsFunctionsAndWorkersThroughTheBuiltins(t *testing.T) {
	eng := doubleEngine(t)
	worker := startRust(t, eng.URL, "worker", "FUNCTIONS=interop::echo,interop::fail", "III_WORKER_NAME=interop-rust-worker")
	workerID := rustWorkerID(t, eng, worker)
	lister := startRust(t, eng.URL, "list", "REGISTER=interop::listed", "III_WORKER_NAME=interop-rust-lister")
	lister.waitExit()
	// The lister exits as soon as it has listed, maybe before a poll of the
	// double's live workers sees it (rustWorkerID): its id is taken from its
	// own workers list and checked against the process id its connection
	// reported (the double keeps a closed connection's frames).
	listerID := rustListerID(t, eng, lister, "interop-rust-lister")

	var fns rustResult
	lister.wait(ev("result", "function_id", "engine::functions::list")).decode(t, &fns)
	if !fns.OK {
		t.Fatalf("engine::functions::list: %s", jsonText(fns.Error))
	}
	// Sorted by id, slim (as the engine's FunctionSummary: no formats), the
	// description only where one was given. (The functions of the engine's
	// in-process state and stream workers are listed too, as on the
	// engine; this test is about the workers'.)
	var listed struct {
		Functions []map[string]any `json:"functions"`
	}
	if err := json.Unmarshal(fns.Result, &listed); err != nil {
		t.Fatal(err)
	}
	all := len(listed.Functions)
	listed.Functions = slices.DeleteFunc(listed.Functions, func(f map[string]any) bool {
		return f["worker_name"] == "iii-state" || f["worker_name"] == "iii-stream"
	})
	workersOwn, _ := json.Marshal(listed)
	requireJSON(t, "engine::functions::list", json.RawMessage(workersOwn), json.RawMessage(`{"functions":[
		{"function_id":"interop::echo","worker_name":"interop-rust-worker"},
		{"function_id":"interop::fail","worker_name":"interop-rust-worker"},
		{"function_id":"interop::listed","worker_name":"interop-rust-lister","description":"interop interop::listed"}]}`))
	// The Rust SDK registers every function with JSON schemas of the
	// handler's input and output types (schemars; here serde_json::Value).
	for _, m := range eng.Received(workerID) {
		if rf, ok := m.(*wire.RegisterFunction); ok && (len(rf.RequestFormat) == 0 || len(rf.ResponseFormat) == 0) {
			t.Fatalf("registerfunction %s without the Rust SDK's schemas: %+v", rf.ID, rf)
		}
	}

	var wks rustResult
	lister.wait(ev("result", "function_id", "engine::workers::list")).decode(t, &wks)
	if !wks.OK {
		t.Fatalf("engine::workers::list: %s", jsonText(wks.Error))
	}
	type summary struct {
		ID            string  `json:"id"`
		Name          string  `json:"name"`
		Runtime       string  `json:"runtime"`
		Version       string  `json:"version"`
		Status        string  `json:"status"`
		FunctionCount int     `json:"function_count"`
		OS            string  `json:"os"`
		IPAddress     *string `json:"ip_address"`
		ConnectedAtMs int64   `json:"connected_at_ms"`
	}
	var workers struct {
		Workers []summary `json:"workers"`
	}
	if err := json.Unmarshal(wks.Result, &workers); err != nil {
		t.Fatalf("engine::workers::list result %s: %v", wks.Result, err)
	}
	var names []string
	for _, w := range workers.Workers {
		names = append(names, w.Name)
	}
	if !slices.Equal(names, []string{"iii-engine-functions", "interop-rust-lister", "interop-rust-worker"}) {
		t.Fatalf("engine::workers::list names %v in %s", names, wks.Result)
	}
	for _, w := range []struct {
		got       summary
		id        string
		functions int
	}{{workers.Workers[1], listerID, 1}, {workers.Workers[2], workerID, 2}} {
		g := w.got
		if g.ID != w.id || g.Runtime != "rust" || g.Version != "0.22.1" || g.Status != "connected" || g.FunctionCount != w.functions ||
			g.OS == "" || g.IPAddress == nil || *g.IPAddress != "127.0.0.1" || g.ConnectedAtMs <= 0 {
			t.Fatalf("worker %s listed as %+v", w.id, g)
		}
	}

	// The Rust SDK's own FunctionInfo decodes the functions list; its
	// WorkerInfo cannot decode the workers list: it requires a "functions"
	// array that the engine's WorkerSummary (engine_fn/mod.rs) does not
	// have, and the double, like the engine, does not send (see
	// rust/NOTES.md).
	var decoded struct {
		OK    bool   `json:"ok"`
		Count int    `json:"count"`
		Error string `json:"error"`
	}
	lister.wait(ev("decoded", "function_id", "engine::functions::list")).decode(t, &decoded)
	if !decoded.OK || decoded.Count != all {
		t.Fatalf("functions list as iii_sdk FunctionInfo: %+v", decoded)
	}
	lister.wait(ev("decoded", "function_id", "engine::workers::list")).decode(t, &decoded)
	if decoded.OK || !strings.HasPrefix(decoded.Error, "missing field `functions`") {
		t.Fatalf("workers list as iii_sdk WorkerInfo: %+v; want the SDK's missing field `functions` error", decoded)
	}

	// The metadata the Rust SDK registered, as the double stored it.
	for _, wi := range eng.Workers() {
		if wi.ID != workerID {
			continue
		}
		var meta struct {
			Runtime   string `json:"runtime"`
			Version   string `json:"version"`
			Name      string `json:"name"`
			PID       int    `json:"pid"`
			Telemetry struct {
				ProjectName string `json:"project_name"`
				Framework   string `json:"framework"`
			} `json:"telemetry"`
		}
		if err := json.Unmarshal(wi.Metadata, &meta); err != nil || meta.Runtime != "rust" || meta.Name != "interop-rust-worker" ||
			meta.PID != worker.cmd.Process.Pid || meta.Telemetry.ProjectName != "iii-interop-rust" || meta.Telemetry.Framework != "iii-rust" ||
			!slices.Equal(wi.Functions, []string{"interop::echo", "interop::fail"}) {
			t.Fatalf("double's worker info %+v, metadata %s (%v)", wi, wi.Metadata, err)
		}
	}
}

func TestRustWorkerReconnectsWithReattachThenReplayThenMetadata(t *testing.T) {
	eng := doubleEngine(t)
	p := startRust(t, eng.URL, "reconnect", "TRIGGER_TYPE=interop::reconnect-type", "FUNCTION_ID=interop::reconnect-fn")
	first := rustWorkerID(t, eng, p)
	triggerID := rustBindingID(t, eng, first, "interop::reconnect-fn")
	// The registrations, kind by kind (types, functions, bindings; the SDK
	// keeps each kind in a hash map, so a kind's own order is arbitrary),
	// then, last, the metadata. (The program's ready round trip may come
	// anywhere after the registrations.)
	replay := []string{
		"registertriggertype interop::reconnect-type",
		"registerfunction interop::reconnect-fn",
		"registertrigger " + triggerID + " interop::reconnect-type interop::reconnect-fn {\"reconnect\":true}",
	}
	withoutReady := func(ms []wire.Message) []string {
		// The program's ready round trip, and the provider's answer to its
		// own binding (it races the metadata), may come anywhere after the
		// registrations; the order under test is the rest.
		return slices.DeleteFunc(describe(ms), func(s string) bool {
			return s == "invokefunction engine::functions::list" || s == "triggerregistrationresult"
		})
	}
	if got := withoutReady(eng.Journal(first)); !slices.Equal(got[:min(len(got), len(replay)+1)], append(slices.Clone(replay), "invokefunction engine::workers::register")) {
		t.Fatalf("first connection's journal:\n%s", strings.Join(got, "\n"))
	}

	if !eng.DropWorker(first) {
		t.Fatalf("DropWorker(%s): not connected", first)
	}
	// (The SDK's connection state stays "connected" through its 2 s retry
	// delay and is "reconnecting" only while it dials, so the program's
	// state events are not a reliable signal; the double's view is.)
	second := rustWorkerID(t, eng, p, first)
	journal := eng.Journal(second)
	got := withoutReady(journal)
	want := append(append([]string{"reattach"}, replay...), "invokefunction engine::workers::register")
	if !slices.Equal(got[:min(len(got), len(want))], want) {
		t.Fatalf("second connection's journal:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if ra := journal[0].(*wire.Reattach); ra.PreviousWorkerID != first || ra.ReattachToken == "" {
		t.Fatalf("reattach names %q with token %q; want %q and a token", ra.PreviousWorkerID, ra.ReattachToken, first)
	}

	// The function routes to the new connection, the provider (the same
	// worker) got its own binding again, and a Go worker's call reaches it.
	if owner := eng.Functions()["interop::reconnect-fn"]; owner != second {
		t.Fatalf("interop::reconnect-fn owned by %q, want %q", owner, second)
	}
	p.waitN(ev("registertrigger", "id", triggerID), 2)
	w := goWorker(t, eng.URL, "interop-go-caller")
	res, err := w.Trigger(testCtx(t), iii.TriggerRequest{FunctionID: "interop::reconnect-fn", Payload: map[string]any{"after": "reconnect"}})
	if err != nil {
		t.Fatalf("call after reconnect: %v", err)
	}
	requireJSON(t, "result after reconnect", res, json.RawMessage(fmt.Sprintf(`{"pid":%d,"n":1}`, p.cmd.Process.Pid)))
	if code := p.stop(); code != 0 {
		t.Fatalf("Rust reconnect worker exited with %d", code)
	}
}

func TestGoAndRustWorkersCallEachOtherAfterTheEngineRestarts(t *testing.T) {
	eng := restartingEngine(t)
	rust := startRust(t, eng.URL, "worker", "FUNCTIONS=interop::echo")
	rustFirst := eng.workerID(rust)
	w := goWorker(t, eng.URL, "interop-go-restart")
	if _, err := iii.RegisterFunction(w, "gointerop::echo", func(_ context.Context, in json.RawMessage) (json.RawMessage, error) {
		return in, nil
	}); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	if err := eng.WaitFunction(ctx, "gointerop::echo"); err != nil {
		t.Fatal(err)
	}

	// Both sides lose the engine and come back to a fresh one on the same
	// address: each replays its registrations, so calls work both ways.
	eng.restart()
	rustSecond := eng.workerID(rust, rustFirst)
	if err := eng.WaitFunction(ctx, "gointerop::echo"); err != nil {
		t.Fatal(err)
	}
	if err := w.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	res, err := w.Trigger(ctx, iii.TriggerRequest{FunctionID: "interop::echo", Payload: map[string]any{"after": "restart"}})
	if err != nil {
		t.Fatalf("Go → Rust after the restart: %v", err)
	}
	requireJSON(t, "Go → Rust after the restart", res, json.RawMessage(
		`{"input":{"after":"restart","_caller_worker_id":"`+w.WorkerID()+`"},"metadata":null}`))
	caller := startRust(t, eng.URL, "caller", "ECHO_FN=gointerop::echo", "VOID_FN=-", "FAIL_FN=-", "MISSING_FN=-", `PAYLOAD={"from":"rust"}`)
	callerID := eng.workerID(caller)
	echo := rustCallResult(t, caller, "echo")
	if !echo.OK {
		t.Fatalf("Rust → Go after the restart: %s", jsonText(echo.Error))
	}
	requireJSON(t, "Rust → Go after the restart", echo.Result, json.RawMessage(`{"from":"rust","_caller_worker_id":"`+callerID+`"}`))
	caller.waitExit()
	if rustSecond == rustFirst {
		t.Fatal("the Rust worker kept its worker id across the restart")
	}
}

// rustListerID returns the id of the Rust list program's own connection: the
// entry called name in the engine::workers::list it printed, which must be
// the connection whose engine::workers::register carried p's process id.
func rustListerID(t *testing.T, eng *iiitest.Engine, p *proc, name string) string {
	t.Helper()
	var r rustResult
	p.wait(ev("result", "function_id", "engine::workers::list")).decode(t, &r)
	var list struct {
		Workers []struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"workers"`
	}
	if err := json.Unmarshal(r.Result, &list); err != nil {
		t.Fatalf("engine::workers::list result %s: %v", r.Result, err)
	}
	for _, w := range list.Workers {
		if w.Name != name {
			continue
		}
		for _, m := range eng.Journal(w.ID) {
			inv, ok := m.(*wire.InvokeFunction)
			if !ok || inv.FunctionID != "engine::workers::register" {
				continue
			}
			var meta struct {
				PID int `json:"pid"`
			}
			if json.Unmarshal(inv.Data, &meta) == nil && meta.PID == p.cmd.Process.Pid {
				return w.ID
			}
		}
		t.Fatalf("worker %s (%s) did not register pid %d", w.ID, name, p.cmd.Process.Pid)
	}
	t.Fatalf("no worker %s in %s", name, r.Result)
	return ""
}
