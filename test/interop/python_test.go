package interop_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/iii-go/iii/connection/wire"
)

// requirePyStack fails unless a Python handler's stacktrace is the traceback
// of the exception raised in file, ending in "<exception>: <message>".
func requirePyStack(t testing.TB, what string, stack *string, file, exception string) {
	t.Helper()
	if stack == nil || !strings.HasPrefix(*stack, "Traceback (most recent call last):\n") ||
		!strings.Contains(*stack, file) || !strings.Contains(*stack, "\n"+exception+"\n") {
		t.Fatalf("%s: stacktrace %v; want the Python traceback of %s in %s", what, stack, exception, file)
	}
}

func TestPythonWorkerCallsPythonWorkerThroughTheDouble(t *testing.T) {
	testWorkerCallsWorker(t, workerCalls{
		caller: pythonSDK, worker: pythonSDK, queue: true,
		workerEnv: []string{"FUNCTIONS=interop::echo,interop::fail,interop::void,interop::coded",
			"FAIL_MESSAGE=boom from python", "FAIL_CODE=E_PY"},
		callerEnv: []string{"CODED_FN=interop::coded"},
		payload:   `{"hello":"world","n":42,"nested":{"list":[1,"two",null],"unicode":"ünï ✓"}}`,
		metadata:  `{"origin":"python-caller","attempt":1}`,
		// A raised exception is invocation_failed with str(exc) and the traceback.
		fail: pythonRaise("boom from python", "RuntimeError: boom from python"),
		// A raised InvocationError keeps no code of its own either: the SDK sends
		// invocation_failed with str(err), "<code>: <message>".
		coded: &callError{"invocation_failed", "E_PY: boom from python", func(t testing.TB, what string, stack *string) {
			t.Helper()
			requirePyStack(t, what, stack, "worker.py", "iii.errors.InvocationError: E_PY: boom from python")
		}},
	})
}

func TestPythonTriggerProviderGetsBindingsOfAnotherPythonWorkerAndFiresThem(t *testing.T) {
	testTriggerProviderGetsBindingsOfAnotherWorkerAndFiresThem(t, pythonSDK)
}

func TestPythonChannelInOneProcessCarriesBytesAndInterleavedMessagesInOrder(t *testing.T) {
	testChannelInOneProcess(t, pythonSDK)
}

func TestPythonListsFunctionsAndWorkersThroughTheBuiltins(t *testing.T) {
	testListsFunctionsAndWorkersThroughTheBuiltins(t, pythonSDK)
}

func TestPythonLoggerRecordsReachTheDoubleAsLogsFrames(t *testing.T) {
	eng := doubleEngine(t)
	const mark = "interop-pylog-5c1e"
	p := startPy(t, eng.URL, "logger.py", "LOG_MARK="+mark) // the script turns OTel on
	p.wait(ev("flushed"))
	ours := markedLogRecords(t, eng, mark)
	if code := p.stop(); code != 0 {
		t.Fatalf("logger.py exited with %d", code)
	}
	requireLoggerRecords(t, ours, mark, "interop-logger")
	// One record per frame (the SDK's default batch size is 1), all on /otel.
	if n := eng.TelemetryFrames(wire.TelemetryLogs); n < 4 {
		t.Fatalf("%d LOGS frames, want at least 4", n)
	}
}

func TestPythonWorkerReconnectsWithReattachThenReplayThenMetadata(t *testing.T) {
	eng := doubleEngine(t)
	p := startPy(t, eng.URL, "reconnect.py", "TRIGGER_TYPE=interop::reconnect-type", "FUNCTION_ID=interop::reconnect-fn")
	var ready struct {
		WorkerID  string `json:"worker_id"`
		TriggerID string `json:"trigger_id"`
	}
	p.wait(ev("ready")).decode(t, &ready)
	first, triggerID := ready.WorkerID, ready.TriggerID
	registrations := []string{
		"registertriggertype interop::reconnect-type",
		"registerfunction interop::reconnect-fn",
		"registertrigger " + triggerID + " interop::reconnect-type interop::reconnect-fn {\"reconnect\":true}",
	}
	// The first connection carries the metadata call and the registrations
	// as made. (The script registers once register_worker has returned,
	// which happens as soon as the socket opens, so the metadata call the
	// SDK sends on open may come before or after them.)
	firstJournal := compactTriggerConfigs(describe(eng.Journal(first)))
	if !slices.Contains(firstJournal, "invokefunction engine::workers::register") || !isSubsequenceOf(registrations, firstJournal) {
		t.Fatalf("first connection's journal:\n%s", strings.Join(firstJournal, "\n"))
	}

	if !eng.DropWorker(first) {
		t.Fatalf("DropWorker(%s): not connected", first)
	}
	var next struct {
		WorkerID string `json:"worker_id"`
	}
	p.wait(ev("worker_id", "n", 2)).decode(t, &next)
	second := next.WorkerID
	if second == first {
		t.Fatal("the new connection kept the old worker id")
	}
	p.wait(ev("state", "state", "reconnecting"))
	requireOrder(t, p, ev("state", "state", "reconnecting"), ev("worker_id", "n", 2))
	// On the new connection: reattach, the replay, then the metadata call.
	poll(t, "the second connection's engine::workers::register", func() bool {
		return slices.Contains(compactTriggerConfigs(describe(eng.Journal(second))), "invokefunction engine::workers::register")
	})
	journal := eng.Journal(second)
	// (The provider's answer to its own binding races the metadata call.)
	got := slices.DeleteFunc(compactTriggerConfigs(describe(journal)), func(s string) bool { return s == "triggerregistrationresult" })
	want := append(append([]string{"reattach"}, registrations...), "invokefunction engine::workers::register")
	if len(got) < len(want) || !slices.Equal(got[:len(want)], want) {
		t.Fatalf("second connection's journal:\n%s\nwant first:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if ra := journal[0].(*wire.Reattach); ra.PreviousWorkerID != first || ra.ReattachToken == "" {
		t.Fatalf("reattach names %q with token %q; want %q and a token", ra.PreviousWorkerID, ra.ReattachToken, first)
	}
	var meta struct {
		Runtime string `json:"runtime"`
		Version string `json:"version"`
		Name    string `json:"name"`
		PID     int    `json:"pid"`
	}
	if err := json.Unmarshal(journal[4].(*wire.InvokeFunction).Data, &meta); err != nil || meta.Runtime != "python" ||
		meta.Version != pythonSDKVersion || meta.Name != "interop-py-reconnect" || meta.PID != p.cmd.Process.Pid {
		t.Fatalf("metadata after reconnect: %s (%v)", journal[4].(*wire.InvokeFunction).Data, err)
	}

	// The function routes to the new connection, and the provider (the same
	// worker) got its own binding again.
	if owner := eng.Functions()["interop::reconnect-fn"]; owner != second {
		t.Fatalf("interop::reconnect-fn owned by %q, want %q", owner, second)
	}
	res, errb, err := eng.Invoke(testCtx(t), "interop::reconnect-fn", json.RawMessage(`{"after":"reconnect"}`))
	if err != nil || errb != nil {
		t.Fatalf("invoke after reconnect: %v %+v", err, errb)
	}
	requireJSON(t, "result after reconnect", res, json.RawMessage(fmt.Sprintf(`{"pid":%d,"worker_id":"%s"}`, p.cmd.Process.Pid, second)))
	p.waitN(ev("registertrigger", "id", triggerID), 2)
	if code := p.stop(); code != 0 {
		t.Fatalf("reconnect.py exited with %d", code)
	}
}

// requireLaterEvent fails unless an event that then selects comes after the
// first event that first selects.
func requireLaterEvent(t testing.TB, p *proc, first, then match) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	i := slices.IndexFunc(p.events, first.matches)
	if i < 0 || !slices.ContainsFunc(p.events[i+1:], then.matches) {
		t.Fatalf("%s: want %v (at %d) followed by %v", p.name, first, i, then)
	}
}

// compactTriggerConfigs rewrites the JSON config at the end of describe's
// registertrigger lines compactly (Python's json.dumps puts spaces after
// ':' and ',').
func compactTriggerConfigs(lines []string) []string {
	out := slices.Clone(lines)
	for i, l := range out {
		if !strings.HasPrefix(l, "registertrigger ") {
			continue
		}
		if k := strings.Index(l, "{"); k >= 0 {
			var b bytes.Buffer
			if json.Compact(&b, []byte(l[k:])) == nil {
				out[i] = l[:k] + b.String()
			}
		}
	}
	return out
}

// isSubsequenceOf reports whether want appears in got in order, not
// necessarily contiguously.
func isSubsequenceOf(want, got []string) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want)
}

// The Python SDK serialises its frames with pydantic's exclude_none, so a
// None payload or trigger config leaves out "data" or "config", which the
// engine requires: it drops such a frame as undecodable (engine/mod.rs,
// "json decode error"), and so must the double. See python/NOTES.md.
func TestPythonCallWithNonePayloadIsDroppedAsUndecodable(t *testing.T) {
	eng := doubleEngine(t)
	// No worker has interop::nobody: a decodable call would get
	// function_not_found at once; the dropped one times out in the SDK.
	caller := startPy(t, eng.URL, "caller.py", "PAYLOAD=null", "ECHO_FN=interop::nobody", "WAIT_MS=0",
		"VOID_FN=-", "FAIL_FN=-", "MISSING_FN=-", "CALL_TIMEOUT_MS=1000")
	r := result(t, caller, "echo")
	if r.OK || r.Error == nil || r.Error.Code != "TIMEOUT" {
		t.Fatalf("call with payload None: %+v; want the SDK's TIMEOUT", r)
	}
	if n := eng.FrameCount(wire.KindInvalid); n != 1 {
		t.Fatalf("%d undecodable frames, want 1", n)
	}
	caller.waitExit()
}

func TestPythonTriggerWithNoneConfigIsDroppedAsUndecodable(t *testing.T) {
	eng := doubleEngine(t)
	binder := startPy(t, eng.URL, "trigger_binder.py", "TRIGGER_TYPE=interop::ticker", "FUNCTION_ID=interop::ticked", "CONFIG=null")
	id := readyID(t, binder) // after a round trip that followed the registertrigger
	if n := eng.FrameCount(wire.KindInvalid); n != 1 {
		t.Fatalf("%d undecodable frames, want 1", n)
	}
	got := describe(eng.Journal(id))
	if !slices.Contains(got, "registerfunction interop::ticked") || slices.ContainsFunc(got, func(s string) bool {
		return strings.HasPrefix(s, "registertrigger ")
	}) {
		t.Fatalf("binder's journal:\n%s\nwant its function and no binding", strings.Join(got, "\n"))
	}
}
