package interop_test

import (
	"strings"
	"testing"
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
		id: func(t testing.TB, _ *testEngine, p *proc) string {
			t.Helper()
			return readyID(t, p)
		},
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
		id: func(t testing.TB, _ *testEngine, p *proc) string {
			t.Helper()
			return readyID(t, p)
		},
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
	}
)
