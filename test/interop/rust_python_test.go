package interop_test

import "testing"

// Rust and Python, the third pair of foreign SDKs: calls both ways through
// the engine (the double, or the engine at III_ENGINE_URL).

func TestRustWorkerCallsPythonWorker(t *testing.T) {
	testWorkerCallsWorker(t, workerCalls{
		caller: rustSDK, worker: pythonSDK, queue: true,
		workerEnv: []string{"FUNCTIONS=interop::echo,interop::fail,interop::void", "FAIL_MESSAGE=python says no"},
		payload:   `{"hello":"python","n":42,"nested":{"list":[1,"two",null],"unicode":"ünï ✓"}}`,
		metadata:  `{"origin":"rust-caller","attempt":1}`,
		// A Python raise reaches Rust as Error::Remote invocation_failed with
		// str(exc) and the Python traceback.
		fail: pythonRaise("python says no", "RuntimeError: python says no"),
	})
}

func TestPythonWorkerCallsRustWorker(t *testing.T) {
	testWorkerCallsWorker(t, workerCalls{
		caller: pythonSDK, worker: rustSDK, queue: true,
		workerEnv: []string{"FUNCTIONS=interop::echo,interop::fail,interop::error,interop::void",
			"FAIL_CODE=E_RUST", "FAIL_MESSAGE=rust says no"},
		callerEnv: []string{"CODED_FN=interop::error"},
		payload:   `{"hello":"rust","n":42,"nested":{"list":[1,"two",null],"unicode":"ünï ✓"}}`,
		metadata:  `{"origin":"python-caller","attempt":1}`,
		// The Rust handler's Error::Remote code reaches Python unchanged (a
		// Python handler cannot send its own code), without a stack.
		fail: callError{"E_RUST", "rust says no", noStack},
		// Any other Rust error is invocation_failed with its Display text and
		// the backtrace the SDK captured.
		coded: &callError{"invocation_failed", "handler error: rust says no", someStack},
	})
}
