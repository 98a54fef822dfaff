package interop_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/iii-go/iii/connection/wire"
)

// Two foreign SDKs through the double: what one sends, the other reads.

func TestNodeWorkerCallsRustWorkerThroughTheDouble(t *testing.T) {
	eng := routingEngine(t, interopQueue())
	worker := startRust(t, eng.URL, "worker", "FUNCTIONS=interop::echo,interop::fail,interop::void",
		"FAIL_CODE=E_RUST", "FAIL_MESSAGE=rust says no")
	eng.workerID(worker)
	payload := `{"hello":"world","n":42,"nested":{"list":[1,"two",null],"unicode":"ünï ✓"}}`
	metadata := `{"origin":"node-caller","attempt":1}`
	queue := eng.queueEnv("interop-q")
	caller := startScript(t, eng.URL, "caller.mjs", append([]string{"PAYLOAD=" + payload, "METADATA=" + metadata}, queue...)...)
	callerID := readyID(t, caller)
	withCaller := func(extra string) string {
		return strings.TrimSuffix(payload, "}") + extra + `,"_caller_worker_id":"` + callerID + `"}`
	}

	echo := result(t, caller, "echo")
	if !echo.OK {
		t.Fatalf("echo: %+v", echo.Error)
	}
	requireJSON(t, "echo result", echo.Result, json.RawMessage(`{"input":`+withCaller("")+`,"metadata":`+metadata+`}`))
	var seen invoked
	worker.wait(ev("invoked", "function_id", "interop::echo")).decode(t, &seen)
	requireJSON(t, "Rust handler input", seen.Input, json.RawMessage(withCaller("")))
	requireJSON(t, "Rust handler metadata", seen.Metadata, json.RawMessage(metadata))

	void := result(t, caller, "void")
	if !void.OK || string(void.Result) != "null" {
		t.Fatalf("void: %+v", void)
	}
	worker.wait(ev("void", "function_id", "interop::void")).decode(t, &seen)
	requireJSON(t, "void handler input", seen.Input, json.RawMessage(withCaller(`,"void":true`)))
	requireJSON(t, "void handler metadata", seen.Metadata, json.RawMessage(metadata))

	// The Rust handler's Error::Remote code reaches Node unchanged (a Node
	// handler could not do that: it always answers invocation_failed).
	if fail := requireError(t, result(t, caller, "fail"), "E_RUST", "rust says no"); fail.Stacktrace != nil {
		t.Fatalf("E_RUST carries a stack %q", *fail.Stacktrace)
	}
	requireError(t, result(t, caller, "missing"), "function_not_found", "Function interop::missing not found")

	if queue != nil { // see hasQueue
		enq := result(t, caller, "enqueue")
		var receipt struct {
			MessageReceiptID string `json:"messageReceiptId"`
		}
		if !enq.OK || json.Unmarshal(enq.Result, &receipt) != nil {
			t.Fatalf("enqueue: %+v", enq)
		}
		if _, err := wire.ParseUUID(receipt.MessageReceiptID); err != nil {
			t.Fatalf("enqueue receipt %s: %v", enq.Result, err)
		}
		job := worker.waitN(ev("invoked", "function_id", "interop::echo"), 2)[1]
		job.decode(t, &seen)
		var input map[string]any
		if err := json.Unmarshal(seen.Input, &input); err != nil {
			t.Fatal(err)
		}
		delete(input, "_caller_worker_id")
		requireJSON(t, "queued job's payload", input, json.RawMessage(payload))
	}
	caller.wait(ev("done"))
	caller.waitExit()
	if code := worker.stop(); code != 0 {
		t.Fatalf("Rust worker exited with %d", code)
	}
}

func TestRustWorkerCallsNodeWorkerThroughTheDouble(t *testing.T) {
	eng := routingEngine(t, interopQueue())
	worker := startScript(t, eng.URL, "worker.mjs", "FUNCTIONS=interop::echo,interop::fail,interop::void", "FAIL_MESSAGE=boom from node")
	readyID(t, worker)
	payload := `{"hello":"world","n":42,"nested":{"list":[1,"two",null],"unicode":"ünï ✓"}}`
	metadata := `{"origin":"rust-caller","attempt":1}`
	queue := eng.queueEnv("interop-q")
	caller := startRust(t, eng.URL, "caller", append([]string{"PAYLOAD=" + payload, "METADATA=" + metadata}, queue...)...)
	callerID := eng.workerID(caller)
	withCaller := func(extra string) string {
		return strings.TrimSuffix(payload, "}") + extra + `,"_caller_worker_id":"` + callerID + `"}`
	}

	echo := rustCallResult(t, caller, "echo")
	if !echo.OK {
		t.Fatalf("echo: %s", jsonText(echo.Error))
	}
	requireJSON(t, "echo result", echo.Result, json.RawMessage(`{"input":`+withCaller("")+`,"metadata":`+metadata+`}`))

	void := rustCallResult(t, caller, "void")
	if !void.OK || string(void.Result) != "null" {
		t.Fatalf("void: %+v", void)
	}
	var seen invoked
	worker.wait(ev("void", "function_id", "interop::void")).decode(t, &seen)
	requireJSON(t, "void handler input", seen.Input, json.RawMessage(withCaller(`,"void":true`)))
	requireJSON(t, "void handler metadata", seen.Metadata, json.RawMessage(metadata))

	// A Node throw reaches Rust as Error::Remote invocation_failed with the
	// JavaScript stack.
	st := requireRustError(t, rustCallResult(t, caller, "fail"), "invocation_failed", "boom from node")
	if st == nil || !strings.HasPrefix(*st, "Error: boom from node\n") || !strings.Contains(*st, "worker.mjs") {
		t.Fatalf("fail stacktrace %v; want the Node handler's stack", st)
	}
	if st := requireRustError(t, rustCallResult(t, caller, "missing"), "function_not_found", "Function interop::missing not found"); st != nil {
		t.Fatalf("function_not_found carries a stack %q", *st)
	}
	if queue != nil { // see hasQueue
		enq := rustCallResult(t, caller, "enqueue")
		var receipt struct {
			MessageReceiptID string `json:"messageReceiptId"`
		}
		if !enq.OK || json.Unmarshal(enq.Result, &receipt) != nil {
			t.Fatalf("enqueue: %+v", enq)
		}
		worker.waitN(ev("invoked", "function_id", "interop::echo"), 2)
	}
	caller.wait(ev("done"))
	caller.waitExit()
	if code := worker.stop(); code != 0 {
		t.Fatalf("Node worker exited with %d", code)
	}
}
