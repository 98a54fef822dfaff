package interop_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/iii-go/iii/connection/wire"
	"github.com/iii-go/iii/test/iiitest"
)

// foreignSDK is one of the foreign SDKs whose programs the tests run, for a
// scenario that is the same whichever SDK plays it: the per-SDK tests call
// one body with nodeSDK, pythonSDK or rustSDK.
type foreignSDK struct {
	// name is the SDK as the tests' messages name it: "Node", "Python", "Rust".
	name string
	// label is the lower-case name: the runtime the SDK reports, and what
	// the tests put into metadata: "node", "python", "rust".
	label string
	// version is the SDK's version, as it reports it.
	version string
	// start runs the SDK's program of role ("worker", "caller",
	// "trigger-provider", "trigger-binder", "channel", ...) with III_URL=url
	// and env, as startScript, startPy and startRust do.
	start func(t testing.TB, url, role string, env ...string) *proc
	// id waits for the program's "ready" event and returns the worker id the
	// engine gave its connection.
	id func(t testing.TB, eng *testEngine, p *proc) string
	// requireError fails unless the call label of the caller program p
	// failed with a remote error with code and message, and returns the
	// error's stack (nil when it had none): requireError or
	// requireRustError.
	requireError func(t testing.TB, p *proc, label, code, message string) *string
}

// callOutcome is the "result" event of a call of a caller program, in the
// fields every SDK's program prints alike (the error's fields are the SDK's:
// see callResult and rustResult).
type callOutcome struct {
	Call       string          `json:"call"`
	FunctionID string          `json:"function_id"`
	OK         bool            `json:"ok"`
	Result     json.RawMessage `json:"result"`
	raw        json.RawMessage // the whole event
}

// outcome waits for the "result" event of call label of the caller program
// p, of any SDK.
func outcome(t testing.TB, p *proc, label string) callOutcome {
	t.Helper()
	e := p.wait(ev("result", "call", label))
	var o callOutcome
	e.decode(t, &o)
	o.raw = e.Raw
	return o
}

var (
	// nodeSDK runs the scripts in ./node: role.mjs.
	nodeSDK = foreignSDK{
		name:    "Node",
		label:   "node",
		version: "0.22.1",
		start: func(t testing.TB, url, role string, env ...string) *proc {
			t.Helper()
			return startScript(t, url, role+".mjs", env...)
		},
		id:           readyWorkerID,
		requireError: requireErrorStack,
	}
	// pythonSDK runs the scripts in ./python: role.py, with '_' for '-'.
	pythonSDK = foreignSDK{
		name:    "Python",
		label:   "python",
		version: pythonSDKVersion,
		start: func(t testing.TB, url, role string, env ...string) *proc {
			t.Helper()
			return startPy(t, url, strings.ReplaceAll(role, "-", "_")+".py", env...)
		},
		id:           readyWorkerID,
		requireError: requireErrorStack,
	}
	// rustSDK runs the Rust program with the role as its argument; the Rust
	// SDK keeps its worker id private (see testEngine.workerID).
	rustSDK = foreignSDK{
		name:    "Rust",
		label:   "rust",
		version: "0.22.1",
		start: func(t testing.TB, url, role string, env ...string) *proc {
			t.Helper()
			return startRust(t, url, role, env...)
		},
		id: func(t testing.TB, eng *testEngine, p *proc) string {
			t.Helper()
			return eng.workerID(p)
		},
		requireError: func(t testing.TB, p *proc, label, code, message string) *string {
			t.Helper()
			return requireRustError(t, rustCallResult(t, p, label), code, message)
		},
	}
)

// readyWorkerID is foreignSDK.id for the SDKs whose programs print their
// worker id in their "ready" event (Node, Python).
func readyWorkerID(t testing.TB, _ *testEngine, p *proc) string {
	t.Helper()
	return readyID(t, p)
}

// requireErrorStack is requireError for the call label of a Node or Python
// caller program, returning the error's stack.
func requireErrorStack(t testing.TB, p *proc, label, code, message string) *string {
	t.Helper()
	return requireError(t, result(t, p, label), code, message).Stacktrace
}

// workerCalls is a caller program calling, through the engine, the
// functions of a worker program: interop::echo (awaited, with metadata),
// interop::void, interop::fail, a "coded" call where the caller is given
// CODED_FN, interop::missing, which nobody registered, and, with queue, an
// enqueued call of interop::echo. See testWorkerCallsWorker.
type workerCalls struct {
	caller, worker foreignSDK
	// workerEnv configures the worker (FUNCTIONS, FAIL_MESSAGE, FAIL_CODE);
	// callerEnv the caller, beside PAYLOAD, METADATA and ENQUEUE_QUEUE.
	workerEnv, callerEnv []string
	payload, metadata    string
	// queue gives a double the interop-q queue, and has the caller enqueue
	// on it if the engine has a queue (see hasQueue).
	queue bool
	// fail is the error the "fail" call gets; coded, if set, the error the
	// "coded" call gets.
	fail  callError
	coded *callError
}

// callError is the error a caller program gets for a call: code and
// message, and a stack that stack checks.
type callError struct {
	code, message string
	stack         func(t testing.TB, what string, stack *string)
}

// nodeThrow is the error of a Node handler that threw an Error with
// message: invocation_failed with the message and the handler's stack.
func nodeThrow(message string) callError {
	return callError{"invocation_failed", message, func(t testing.TB, what string, stack *string) {
		t.Helper()
		if stack == nil || !strings.HasPrefix(*stack, "Error: "+message+"\n") || !strings.Contains(*stack, "worker.mjs") {
			t.Fatalf("%s stacktrace %v; want the Node handler's stack", what, stack)
		}
	}}
}

// pythonRaise is the error of a Python handler of worker.py that raised
// exception ("<type>: <str>"): invocation_failed with message and the
// Python traceback.
func pythonRaise(message, exception string) callError {
	return callError{"invocation_failed", message, func(t testing.TB, what string, stack *string) {
		t.Helper()
		requirePyStack(t, what, stack, "worker.py", exception)
	}}
}

// noStack checks that an error carries no stack.
func noStack(t testing.TB, what string, stack *string) {
	t.Helper()
	if stack != nil {
		t.Fatalf("%s carries a stack %q", what, *stack)
	}
}

// someStack checks that an error carries a stack.
func someStack(t testing.TB, what string, stack *string) {
	t.Helper()
	if stack == nil || *stack == "" {
		t.Fatalf("%s without a stack", what)
	}
}

// testWorkerCallsWorker runs the calls of c and checks what each side saw:
// the worker got every payload (plus the caller's _caller_worker_id) and the
// metadata; the caller got the results, the errors, the receipt, in order;
// the worker ran once per call that reached it.
func testWorkerCallsWorker(t *testing.T, c workerCalls) {
	var opts []iiitest.Option
	if c.queue {
		opts = append(opts, interopQueue())
	}
	eng := routingEngine(t, opts...)
	worker := c.worker.start(t, eng.URL, "worker", c.workerEnv...)
	c.worker.id(t, eng, worker)
	var queue []string
	if c.queue {
		queue = eng.queueEnv("interop-q")
	}
	callerEnv := append([]string{"PAYLOAD=" + c.payload, "METADATA=" + c.metadata}, c.callerEnv...)
	caller := c.caller.start(t, eng.URL, "caller", append(callerEnv, queue...)...)
	callerID := c.caller.id(t, eng, caller)
	withCaller := func(extra string) string { // payload as the handler sees it
		return strings.TrimSuffix(c.payload, "}") + extra + `,"_caller_worker_id":"` + callerID + `"}`
	}

	// Awaited call: the handler gets the payload plus _caller_worker_id, and
	// the metadata beside it; its result comes back unchanged (nulls and
	// non-ASCII text included).
	echo := outcome(t, caller, "echo")
	if !echo.OK || echo.FunctionID != "interop::echo" {
		t.Fatalf("echo: %s", echo.raw)
	}
	requireJSON(t, c.worker.name+" echo as "+c.caller.name+" sees it", echo.Result,
		json.RawMessage(`{"input":`+withCaller("")+`,"metadata":`+c.metadata+`}`))
	var seen invoked
	worker.wait(ev("invoked", "function_id", "interop::echo")).decode(t, &seen)
	requireJSON(t, c.worker.name+" handler input", seen.Input, json.RawMessage(withCaller("")))
	requireJSON(t, c.worker.name+" handler metadata", seen.Metadata, json.RawMessage(c.metadata))

	// Void call: resolves at once with nothing, and the handler still runs
	// with the same payload and metadata.
	if void := outcome(t, caller, "void"); !void.OK || string(void.Result) != "null" {
		t.Fatalf("void: %s", void.raw)
	}
	worker.wait(ev("void", "function_id", "interop::void")).decode(t, &seen)
	requireJSON(t, c.worker.name+" void input", seen.Input, json.RawMessage(withCaller(`,"void":true`)))
	requireJSON(t, c.worker.name+" void metadata", seen.Metadata, json.RawMessage(c.metadata))

	c.fail.stack(t, "fail", c.caller.requireError(t, caller, "fail", c.fail.code, c.fail.message))
	if c.coded != nil {
		c.coded.stack(t, "coded", c.caller.requireError(t, caller, "coded", c.coded.code, c.coded.message))
	}
	// Nobody registered it: the engine answers function_not_found.
	noStack(t, "missing", c.caller.requireError(t, caller, "missing", "function_not_found", "Function interop::missing not found"))

	if queue != nil { // see hasQueue
		// Enqueued: the receipt at once, and the job runs the handler later with
		// the payload. (Whether a queued job carries _caller_worker_id and the
		// metadata is up to the queue worker, which the specification leaves
		// open.)
		enq := outcome(t, caller, "enqueue")
		var receipt struct {
			MessageReceiptID string `json:"messageReceiptId"`
		}
		if !enq.OK || json.Unmarshal(enq.Result, &receipt) != nil {
			t.Fatalf("enqueue: %s", enq.raw)
		}
		if _, err := wire.ParseUUID(receipt.MessageReceiptID); err != nil {
			t.Fatalf("enqueue receipt %s: %v", enq.Result, err)
		}
		job := worker.waitN(ev("invoked", "function_id", "interop::echo"), 2)[1]
		var input map[string]any
		job.decode(t, &seen)
		if err := json.Unmarshal(seen.Input, &input); err != nil {
			t.Fatal(err)
		}
		delete(input, "_caller_worker_id")
		requireJSON(t, "queued job's payload", input, json.RawMessage(c.payload))
	}

	caller.wait(ev("done"))
	caller.waitExit()
	var order []string
	for _, e := range caller.all(ev("result")) {
		var r callOutcome
		e.decode(t, &r)
		order = append(order, r.Call)
	}
	wantOrder, last := []string{"echo", "void", "fail"}, "fail"
	if c.coded != nil {
		wantOrder, last = append(wantOrder, "coded"), "coded"
	}
	wantOrder = append(wantOrder, "missing")
	if queue != nil {
		wantOrder = append(wantOrder, "enqueue")
	}
	if !slices.Equal(order, wantOrder) {
		t.Fatalf("results in order %v", order)
	}
	// Each call but the missing one reached the worker exactly once.
	worker.wait(ev("invoked", "function_id", outcome(t, caller, last).FunctionID))
	if n, want := len(worker.all(ev("invoked")))+len(worker.all(ev("void"))), len(wantOrder)-1; n != want {
		t.Fatalf("worker saw %d invocations, want %d", n, want)
	}
	if code := worker.stop(); code != 0 {
		t.Fatalf("%s worker exited with %d", c.worker.name, code)
	}
}
