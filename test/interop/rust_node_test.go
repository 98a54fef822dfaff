package interop_test

import "testing"

// Two foreign SDKs through the double: what one sends, the other reads.

func TestNodeWorkerCallsRustWorkerThroughTheDouble(t *testing.T) {
	testWorkerCallsWorker(t, workerCalls{
		caller: nodeSDK, worker: rustSDK, queue: true,
		workerEnv: []string{"FUNCTIONS=interop::echo,interop::fail,interop::void", "FAIL_CODE=E_RUST", "FAIL_MESSAGE=rust says no"},
		payload:   `{"hello":"world","n":42,"nested":{"list":[1,"two",null],"unicode":"ünï ✓"}}`,
		metadata:  `{"origin":"node-caller","attempt":1}`,
		// The Rust handler's Error::Remote code reaches Node unchanged (a Node
		// handler could not do that: it always answers invocation_failed).
		fail: callError{"E_RUST", "rust says no", noStack},
	})
}

func TestRustWorkerCallsNodeWorkerThroughTheDouble(t *testing.T) {
	testWorkerCallsWorker(t, workerCalls{
		caller: rustSDK, worker: nodeSDK, queue: true,
		workerEnv: []string{"FUNCTIONS=interop::echo,interop::fail,interop::void", "FAIL_MESSAGE=boom from node"},
		payload:   `{"hello":"world","n":42,"nested":{"list":[1,"two",null],"unicode":"ünï ✓"}}`,
		metadata:  `{"origin":"rust-caller","attempt":1}`,
		// A Node throw reaches Rust as Error::Remote invocation_failed with the
		// JavaScript stack.
		fail: nodeThrow("boom from node"),
	})
}
