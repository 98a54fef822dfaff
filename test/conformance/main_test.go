package conformance

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/connection/wire"
	"github.com/iii-go/iii/test/iiitest"
)

// EngineURLEnv names the environment variable that points the checks at an
// external engine.
const EngineURLEnv = "III_ENGINE_URL"

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// target is the engine a check runs against.
type target struct {
	url string
	eng *iiitest.Engine // nil for an external engine
	ns  string          // the check's id prefix
}

// newTarget returns the engine to check: the one at III_ENGINE_URL, or a
// fresh engine double.
func newTarget(t *testing.T, opts ...iiitest.Option) *target {
	t.Helper()
	ns := "conformance::" + wire.NewUUID().String()[:8] + "::"
	if u := os.Getenv(EngineURLEnv); u != "" {
		return &target{url: strings.TrimRight(u, "/"), ns: ns}
	}
	eng := iiitest.NewEngine(t, append([]iiitest.Option{iiitest.WithUnorderedDispatch()}, opts...)...)
	return &target{url: eng.URL, eng: eng, ns: ns}
}

// external reports whether the checks run against an external engine.
func (tg *target) external() bool { return tg.eng == nil }

// EngineRestartEnv names the environment variable holding a shell command
// that restarts the external engine at III_ENGINE_URL (stops it, starts it
// again in the background and returns), for the restart checks.
const EngineRestartEnv = "III_ENGINE_RESTART"

// needRestart skips a check that must restart the engine when the engine
// is external and EngineRestartEnv does not say how.
func (tg *target) needRestart(t *testing.T) {
	t.Helper()
	if tg.external() && os.Getenv(EngineRestartEnv) == "" {
		t.Skipf("needs to restart the engine; %s points at an external engine and %s is not set", EngineURLEnv, EngineRestartEnv)
	}
}

// restart restarts the engine: the double in place, an external engine
// with the command in EngineRestartEnv (which needRestart checked).
func (tg *target) restart(t *testing.T) {
	t.Helper()
	if !tg.external() {
		if err := tg.eng.Restart(); err != nil {
			t.Fatal(err)
		}
		return
	}
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(c, "sh", "-c", os.Getenv(EngineRestartEnv)).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", EngineRestartEnv, err, out)
	}
}

// id returns a function or trigger id in the check's namespace.
func (tg *target) id(name string) string { return tg.ns + name }

func options() iii.InitOptions {
	return iii.InitOptions{
		Reconnect: &iii.ReconnectConfig{InitialDelay: 20 * time.Millisecond, MaxDelay: 200 * time.Millisecond},
	}
}

// worker connects a worker and shuts it down at the end of the check.
func (tg *target) worker(t *testing.T) *iii.III {
	t.Helper()
	w := iii.RegisterWorker(tg.url, options())
	t.Cleanup(w.Shutdown)
	if err := w.WaitConnected(ctx(t)); err != nil {
		t.Fatalf("WaitConnected(%s): %v", tg.url, err)
	}
	return w
}

// ctx is bounded so that a broken check fails instead of hanging.
func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

// eventually polls cond until it holds (an engine gives no completion
// signal for registrations), failing the check after 15 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// recv waits for a value on ch.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(15 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}

// functionListed reports whether w sees function id in engine::functions::list.
func functionListed(t *testing.T, w *iii.III, id string) bool {
	fns, err := w.ListFunctions(ctx(t), iii.FunctionFilter{Prefix: id})
	if err != nil {
		t.Fatalf("ListFunctions: %v", err)
	}
	return listed(fns, id)
}

// listedAgain is functionListed for a worker that may be between two
// connections: a failed list means not listed yet.
func listedAgain(t *testing.T, w *iii.III, id string) bool {
	fns, err := w.ListFunctions(ctx(t), iii.FunctionFilter{Prefix: id})
	return err == nil && listed(fns, id)
}

// listed reports whether fns holds function id.
func listed(fns []iii.FunctionInfo, id string) bool {
	for _, f := range fns {
		if f.FunctionID == id {
			return true
		}
	}
	return false
}
