package interop_test

// Running the interop tests against a real engine: with III_ENGINE_URL set
// (e.g. ws://127.0.0.1:49134), the tests that need nothing of the double
// beyond routing connect their workers to that engine instead of starting a
// double, one at a time (they reuse function ids); the others skip. See
// ENGINE.md.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/test/iiitest"
)

// externalURL is III_ENGINE_URL: the engine the routing tests use instead of
// a double when set.
var externalURL = os.Getenv("III_ENGINE_URL")

// testEngine is the engine a test runs against: a fresh double (double set)
// or the external engine at III_ENGINE_URL (double nil).
type testEngine struct {
	t      *testing.T
	URL    string
	double *iiitest.Engine

	probeOnce sync.Once
	probe     *iii.III // a Go worker that calls the engine's builtins, made on first use
}

// routingEngine returns the engine for a test that needs only routing:
// III_ENGINE_URL when set (the test then runs alone, not in parallel: tests
// reuse function ids), else a new double made with opts (the test runs in
// parallel).
func routingEngine(t *testing.T, opts ...iiitest.Option) *testEngine {
	t.Helper()
	if externalURL != "" {
		return &testEngine{t: t, URL: externalURL}
	}
	t.Parallel()
	d := iiitest.NewEngine(t, opts...)
	return &testEngine{t: t, URL: d.URL, double: d}
}

// builtin calls an engine builtin with payload through a Go worker of this
// test and decodes the result into v.
func (e *testEngine) builtin(ctx context.Context, id string, payload, v any) error {
	e.probeOnce.Do(func() {
		e.probe = iii.RegisterWorker(e.URL, iii.InitOptions{Metadata: &iii.WorkerMetadata{Name: "interop-go-probe"}})
		e.t.Cleanup(e.probe.Shutdown)
	})
	raw, err := e.probe.Trigger(ctx, iii.TriggerRequest{FunctionID: id, Payload: payload})
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, v)
}

// hasFunction reports whether engine::functions::list lists id.
func (e *testEngine) hasFunction(ctx context.Context, id string) (bool, error) {
	var list struct {
		Functions []struct {
			FunctionID string `json:"function_id"`
		} `json:"functions"`
	}
	if err := e.builtin(ctx, "engine::functions::list", map[string]any{"include_internal": true}, &list); err != nil {
		return false, err
	}
	for _, f := range list.Functions {
		if f.FunctionID == id {
			return true, nil
		}
	}
	return false, nil
}

// interopQueue gives a double the queue provider with the queue the
// callers use (a double has none by default, like the engine).
func interopQueue() iiitest.Option {
	return iiitest.WithQueue(iiitest.QueueConfig{Queues: []string{"interop-q"}})
}

// hasQueue reports whether enqueued calls can work: TriggerAction::Enqueue
// goes to engine::queue::enqueue, which an engine v0.22.1 has only with its
// separately installed queue worker (without it the caller gets
// enqueue_error "No queue provider is installed. ...") and a double only
// with interopQueue. An external engine's queue worker must also accept the
// queue name interop-q.
func (e *testEngine) hasQueue() bool {
	e.t.Helper()
	ok, err := e.hasFunction(testCtx(e.t), "engine::queue::enqueue")
	if err != nil {
		e.t.Fatalf("engine::functions::list: %v", err)
	}
	if !ok {
		e.t.Log("no engine::queue::enqueue (no queue provider): enqueue calls are not tested")
	}
	return ok
}

// queueEnv returns the env that makes a caller program enqueue a job on
// queue, or nothing when the engine has no queue (see hasQueue).
func (e *testEngine) queueEnv(queue string) []string {
	e.t.Helper()
	if !e.hasQueue() {
		return nil
	}
	return []string{"ENQUEUE_QUEUE=" + queue}
}

// WaitFunction waits until function id is registered: at the double, or as
// engine::functions::list reports it.
func (e *testEngine) WaitFunction(ctx context.Context, id string) error {
	if e.double != nil {
		return e.double.WaitFunction(ctx, id)
	}
	for {
		if ok, err := e.hasFunction(ctx, id); err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("function %s not registered: %w", id, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// workerID waits for a foreign program's "ready" event and returns the id
// the engine gave its connection, other than the ids in not (after an
// engine restart, the id of its new connection), for SDKs that keep it
// private (Rust): the double knows the connection by the process id the SDK
// reports; the external engine lists no pid, so it is found by the worker
// name, which startInterop makes unique against an external engine.
func (e *testEngine) workerID(p *proc, not ...string) string {
	t := e.t
	t.Helper()
	if e.double != nil {
		return rustWorkerID(t, e.double, p, not...)
	}
	p.wait(ev("ready"))
	var id string
	poll(t, p.name+"'s entry in engine::workers::list", func() bool {
		var list struct {
			Workers []struct {
				ID   string  `json:"id"`
				Name *string `json:"name"`
			} `json:"workers"`
		}
		if err := e.builtin(testCtx(t), "engine::workers::list", map[string]any{}, &list); err != nil {
			if len(not) > 0 {
				return false // the engine has just restarted: the probe may be reconnecting
			}
			t.Fatalf("engine::workers::list: %v", err)
		}
		for _, w := range list.Workers {
			if w.Name != nil && *w.Name == p.workerName && !slices.Contains(not, w.ID) {
				id = w.ID
				return true
			}
		}
		return false
	})
	return id
}

// restartEnv names a shell command that restarts the external engine
// (stops it, starts it again in the background and returns), for the
// tests that restart the engine.
const restartEnv = "III_ENGINE_RESTART"

// restartingEngine returns the engine for a test that restarts it: the
// external engine at III_ENGINE_URL when III_ENGINE_RESTART says how to
// restart it (the test runs alone), else a new double (the test runs in
// parallel). Against an external engine without III_ENGINE_RESTART it
// skips the test.
func restartingEngine(t *testing.T) *testEngine {
	t.Helper()
	if externalURL != "" && os.Getenv(restartEnv) == "" {
		t.Skipf("restarts the engine; III_ENGINE_URL is set and %s is not", restartEnv)
	}
	return routingEngine(t)
}

// restart restarts the engine: the double in place, the external engine
// with the III_ENGINE_RESTART command.
func (e *testEngine) restart() {
	t := e.t
	t.Helper()
	if e.double != nil {
		if err := e.double.Restart(); err != nil {
			t.Fatalf("Restart: %v", err)
		}
		return
	}
	ctx, cancel := context.WithTimeout(testCtx(t), time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "sh", "-c", os.Getenv(restartEnv)).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", restartEnv, err, out)
	}
}

// workerSeq numbers the worker names given against an external engine.
var workerSeq atomic.Int64

// uniqueWorkerName returns name, made unique per test binary run and process
// against an external engine (which may hold workers of other runs).
func uniqueWorkerName(name string) string {
	if externalURL == "" {
		return name
	}
	return fmt.Sprintf("%s-%d-%d", name, os.Getpid(), workerSeq.Add(1))
}

// doubleEngine returns a new double for a test that uses its inspection
// hooks (journal, drops, restarts, received frames, telemetry); it skips
// the test when III_ENGINE_URL is set. The test runs in parallel.
func doubleEngine(t *testing.T) *iiitest.Engine {
	t.Helper()
	if externalURL != "" {
		t.Skip("needs the engine double's inspection hooks (journal, drops, restarts, received frames or telemetry); III_ENGINE_URL is set")
	}
	t.Parallel()
	return iiitest.NewEngine(t)
}

// functionWaiter is an engine that can wait for a function's registration:
// a double or a testEngine.
type functionWaiter interface {
	WaitFunction(ctx context.Context, id string) error
}

// ownFunctions keeps the interop::* entries of an engine::functions::list
// result: the in-process workers register functions too (configuration::*
// on an engine, state::* and stream::* on both an engine and the double).
func (e *testEngine) ownFunctions(t *testing.T, result json.RawMessage) json.RawMessage {
	t.Helper()
	var list struct {
		Functions []json.RawMessage `json:"functions"`
	}
	if err := json.Unmarshal(result, &list); err != nil {
		t.Fatalf("engine::functions::list result %s: %v", result, err)
	}
	list.Functions = slices.DeleteFunc(list.Functions, func(f json.RawMessage) bool {
		var id struct {
			FunctionID string `json:"function_id"`
		}
		return json.Unmarshal(f, &id) != nil || !strings.HasPrefix(id.FunctionID, "interop::")
	})
	out, err := json.Marshal(list)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// ownWorkers keeps, against an external engine, the engine's own
// iii-engine-functions and the workers with the given ids of an
// engine::workers::list (an engine lists every in-process module, and maybe
// other connections); the double's list is kept whole.
func ownWorkers[S any](e *testEngine, workers []S, id func(S) (id, name string), ids ...string) []S {
	if e.double != nil {
		return workers
	}
	return slices.DeleteFunc(workers, func(w S) bool {
		i, n := id(w)
		return n != "iii-engine-functions" && !slices.Contains(ids, i)
	})
}
