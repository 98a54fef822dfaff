package interop_test

import (
	"encoding/json"
	"strings"
	"testing"
)

// Rust and Python, the third pair of foreign SDKs: calls both ways through
// the engine (the double, or the engine at III_ENGINE_URL).

// requireQueuedEcho checks a caller's "enqueue" result (a receipt) and that
// the queued job reached the worker's echo handler (its second echo call)
// with the payload.
func requireQueuedEcho(t *testing.T, enq json.RawMessage, worker *proc, payload string) {
	t.Helper()
	var receipt struct {
		MessageReceiptID string `json:"messageReceiptId"`
	}
	if json.Unmarshal(enq, &receipt) != nil || receipt.MessageReceiptID == "" {
		t.Fatalf("enqueue result %s; want a receipt", enq)
	}
	var job invoked
	worker.waitN(ev("invoked", "function_id", "interop::echo"), 2)[1].decode(t, &job)
	var input map[string]any
	if err := json.Unmarshal(job.Input, &input); err != nil {
		t.Fatal(err)
	}
	delete(input, "_caller_worker_id")
	requireJSON(t, "queued job's payload", input, json.RawMessage(payload))
}

func TestRustWorkerCallsPythonWorker(t *testing.T) {
	eng := routingEngine(t, interopQueue())
	worker := startPy(t, eng.URL, "worker.py", "FUNCTIONS=interop::echo,interop::fail,interop::void", "FAIL_MESSAGE=python says no")
	readyID(t, worker)
	payload := `{"hello":"python","n":42,"nested":{"list":[1,"two",null],"unicode":"ünï ✓"}}`
	metadata := `{"origin":"rust-caller","attempt":1}`
	queue := eng.queueEnv("interop-q")
	caller := startRust(t, eng.URL, "caller", append([]string{"PAYLOAD=" + payload, "METADATA=" + metadata}, queue...)...)
	callerID := eng.workerID(caller)
	withCaller := func(extra string) string {
		return strings.TrimSuffix(payload, "}") + extra + `,"_caller_worker_id":"` + callerID + `"}`
	}

	// Sync call: the Python handler got the payload with the caller's id and
	// the metadata, and its result reached Rust unchanged.
	echo := rustCallResult(t, caller, "echo")
	if !echo.OK {
		t.Fatalf("echo: %s", jsonText(echo.Error))
	}
	requireJSON(t, "Python echo as Rust sees it", echo.Result, json.RawMessage(`{"input":`+withCaller("")+`,"metadata":`+metadata+`}`))
	var seen invoked
	worker.wait(ev("invoked", "function_id", "interop::echo")).decode(t, &seen)
	requireJSON(t, "Python handler input", seen.Input, json.RawMessage(withCaller("")))
	requireJSON(t, "Python handler metadata", seen.Metadata, json.RawMessage(metadata))

	// Void: Rust gets null at once; the Python handler still runs, with metadata.
	if void := rustCallResult(t, caller, "void"); !void.OK || string(void.Result) != "null" {
		t.Fatalf("void: %+v", void)
	}
	worker.wait(ev("void", "function_id", "interop::void")).decode(t, &seen)
	requireJSON(t, "Python void input", seen.Input, json.RawMessage(withCaller(`,"void":true`)))
	requireJSON(t, "Python void metadata", seen.Metadata, json.RawMessage(metadata))

	// A Python raise reaches Rust as Error::Remote invocation_failed with
	// str(exc) and the Python traceback.
	st := requireRustError(t, rustCallResult(t, caller, "fail"), "invocation_failed", "python says no")
	requirePyStack(t, "Python traceback as Rust sees it", st, "worker.py", "RuntimeError: python says no")
	if st := requireRustError(t, rustCallResult(t, caller, "missing"), "function_not_found", "Function interop::missing not found"); st != nil {
		t.Fatalf("function_not_found carries a stack %q", *st)
	}

	// Enqueue: Rust gets the receipt, the job runs the Python handler.
	if queue != nil {
		enq := rustCallResult(t, caller, "enqueue")
		if !enq.OK {
			t.Fatalf("enqueue: %s", jsonText(enq.Error))
		}
		requireQueuedEcho(t, enq.Result, worker, payload)
	}
	caller.wait(ev("done"))
	caller.waitExit()
	if code := worker.stop(); code != 0 {
		t.Fatalf("Python worker exited with %d", code)
	}
}

func TestPythonWorkerCallsRustWorker(t *testing.T) {
	eng := routingEngine(t, interopQueue())
	worker := startRust(t, eng.URL, "worker", "FUNCTIONS=interop::echo,interop::fail,interop::error,interop::void",
		"FAIL_CODE=E_RUST", "FAIL_MESSAGE=rust says no")
	eng.workerID(worker)
	payload := `{"hello":"rust","n":42,"nested":{"list":[1,"two",null],"unicode":"ünï ✓"}}`
	metadata := `{"origin":"python-caller","attempt":1}`
	queue := eng.queueEnv("interop-q")
	caller := startPy(t, eng.URL, "caller.py", append([]string{"PAYLOAD=" + payload, "METADATA=" + metadata,
		"CODED_FN=interop::error"}, queue...)...)
	callerID := readyID(t, caller)
	withCaller := func(extra string) string {
		return strings.TrimSuffix(payload, "}") + extra + `,"_caller_worker_id":"` + callerID + `"}`
	}

	echo := result(t, caller, "echo")
	if !echo.OK {
		t.Fatalf("echo: %+v", echo.Error)
	}
	requireJSON(t, "Rust echo as Python sees it", echo.Result, json.RawMessage(`{"input":`+withCaller("")+`,"metadata":`+metadata+`}`))
	var seen invoked
	worker.wait(ev("invoked", "function_id", "interop::echo")).decode(t, &seen)
	requireJSON(t, "Rust handler input", seen.Input, json.RawMessage(withCaller("")))
	requireJSON(t, "Rust handler metadata", seen.Metadata, json.RawMessage(metadata))

	if void := result(t, caller, "void"); !void.OK || string(void.Result) != "null" {
		t.Fatalf("void: %+v", void)
	}
	worker.wait(ev("void", "function_id", "interop::void")).decode(t, &seen)
	requireJSON(t, "Rust void input", seen.Input, json.RawMessage(withCaller(`,"void":true`)))
	requireJSON(t, "Rust void metadata", seen.Metadata, json.RawMessage(metadata))

	// The Rust handler's Error::Remote code reaches Python unchanged (a
	// Python handler cannot send its own code), without a stack.
	if fail := requireError(t, result(t, caller, "fail"), "E_RUST", "rust says no"); fail.Stacktrace != nil {
		t.Fatalf("E_RUST carries a stack %q", *fail.Stacktrace)
	}
	// Any other Rust error is invocation_failed with its Display text and
	// the backtrace the SDK captured.
	if coded := requireError(t, result(t, caller, "coded"), "invocation_failed", "handler error: rust says no"); coded.Stacktrace == nil || *coded.Stacktrace == "" {
		t.Fatalf("handler error without the SDK's backtrace: %+v", coded)
	}
	requireError(t, result(t, caller, "missing"), "function_not_found", "Function interop::missing not found")

	if queue != nil {
		enq := result(t, caller, "enqueue")
		if !enq.OK {
			t.Fatalf("enqueue: %+v", enq.Error)
		}
		requireQueuedEcho(t, enq.Result, worker, payload)
	}
	caller.wait(ev("done"))
	caller.waitExit()
	if code := worker.stop(); code != 0 {
		t.Fatalf("Rust worker exited with %d", code)
	}
}
