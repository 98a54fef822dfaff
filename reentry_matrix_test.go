package iii_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/test/iiitest"
)

// reentryOp is one call of the public API made from inside a callback of
// the same worker. It may fail; it must return.
type reentryOp struct {
	name string
	do   func(ctx context.Context, e *reentryEnv) error
}

// reentryEnv is what the calls work on: the worker, its trigger type
// "reent::other" (with a binding made by another worker), and the type
// whose provider runs the calls, if they run in a provider.
type reentryEnv struct {
	w      *iii.III
	other  *iii.TriggerTypeRef[tickerConfig, tick]
	cbType *iii.TriggerTypeRef[tickerConfig, tick]
}

var reentrySeq atomic.Int64

// reentryOps are the calls a callback may make on its own worker. The
// worker has a function "reent::echo" and a trigger type "reent::other"
// of its own.
func reentryOps() []reentryOp {
	return []reentryOp{
		{"RegisterFunction and Unregister", func(ctx context.Context, e *reentryEnv) error {
			ref, err := iii.RegisterFunction(e.w, fmt.Sprintf("reent::fn%d", reentrySeq.Add(1)), func(context.Context, int) (int, error) { return 1, nil })
			if err != nil {
				return err
			}
			return ref.Unregister()
		}},
		{"RegisterTriggerType and Unregister", func(ctx context.Context, e *reentryEnv) error {
			id := fmt.Sprintf("reent::type%d", reentrySeq.Add(1))
			ref, err := iii.RegisterTriggerType[tickerConfig, tick](e.w, id, "", newRecordingProvider())
			if err != nil {
				return err
			}
			return ref.Unregister()
		}},
		{"RegisterTrigger on its own other type and Unregister", func(ctx context.Context, e *reentryEnv) error {
			return registerAndUnregister(e.w, "reent::other")
		}},
		{"RegisterTrigger on another worker's type and Unregister", func(ctx context.Context, e *reentryEnv) error {
			return registerAndUnregister(e.w, "reent::provided")
		}},
		{"RegisterTrigger on the calling provider's type and Unregister", func(ctx context.Context, e *reentryEnv) error {
			if e.cbType == nil {
				return nil
			}
			return registerAndUnregister(e.w, e.cbType.ID())
		}},
		{"Bindings and Fire on its own other type", func(ctx context.Context, e *reentryEnv) error {
			bs := e.other.Bindings()
			if len(bs) == 0 {
				return fmt.Errorf("no binding")
			}
			_, err := e.other.Fire(ctx, bs[0].ID, tick{N: 1})
			return err
		}},
		{"Bindings and Fire on the calling provider's type", func(ctx context.Context, e *reentryEnv) error {
			if e.cbType == nil {
				return nil
			}
			bs := e.cbType.Bindings()
			if len(bs) == 0 {
				return fmt.Errorf("no binding")
			}
			_, err := e.cbType.Fire(ctx, bs[0].ID, tick{N: 1})
			return err
		}},
		{"Trigger its own function", func(ctx context.Context, e *reentryEnv) error {
			_, err := e.w.Trigger(ctx, iii.TriggerRequest{FunctionID: "reent::echo", Payload: json.RawMessage(`1`)})
			return err
		}},
		{"Trigger another worker's function", func(ctx context.Context, e *reentryEnv) error {
			_, err := e.w.Trigger(ctx, iii.TriggerRequest{FunctionID: "reent::remote", Payload: json.RawMessage(`1`)})
			return err
		}},
		{"Trigger void", func(ctx context.Context, e *reentryEnv) error {
			_, err := e.w.Trigger(ctx, iii.TriggerRequest{FunctionID: "reent::echo", Payload: json.RawMessage(`1`), Action: iii.Void()})
			return err
		}},
		{"ListFunctions", func(ctx context.Context, e *reentryEnv) error {
			_, err := e.w.ListFunctions(ctx, iii.FunctionFilter{})
			return err
		}},
		{"ListTriggers", func(ctx context.Context, e *reentryEnv) error {
			_, err := e.w.ListTriggers(ctx, iii.TriggerFilter{})
			return err
		}},
		{"WaitConnected", func(ctx context.Context, e *reentryEnv) error { return e.w.WaitConnected(ctx) }},
		{"WaitForFunction", func(ctx context.Context, e *reentryEnv) error { return e.w.WaitForFunction(ctx, "reent::remote") }},
		{"FlushTelemetry", func(ctx context.Context, e *reentryEnv) error { return e.w.FlushTelemetry(ctx) }},
		{"Logger", func(ctx context.Context, e *reentryEnv) error { e.w.Logger().Debug(ctx, "from a callback"); return nil }},
		{"Stats and Err", func(ctx context.Context, e *reentryEnv) error { _ = e.w.Stats(); _ = e.w.State(); return e.w.Err() }},
		{"CreateChannel, write and read", func(ctx context.Context, e *reentryEnv) error {
			ch, err := e.w.CreateChannel(ctx, 4)
			if err != nil {
				return err
			}
			defer ch.Reader.Close()
			if _, err := ch.Writer.Write([]byte("x")); err != nil {
				return err
			}
			if err := ch.Writer.Close(); err != nil {
				return err
			}
			buf := make([]byte, 4)
			_, err = ch.Reader.Read(buf)
			return err
		}},
	}
}

// registerAndUnregister binds reent::echo to the trigger type typ, then
// removes the binding.
func registerAndUnregister(w *iii.III, typ string) error {
	tr, err := w.RegisterTrigger(iii.TriggerInput{Type: typ, FunctionID: "reent::echo", Config: tickerConfig{Every: "1s"}})
	if err != nil {
		return err
	}
	return tr.Unregister()
}

// reentryCallbacks are the callbacks of a worker that run its user code:
// each calls run from that callback once, on the worker of e (which start
// creates with opts, and may complete: e.cbType).
var reentryCallbacks = []struct {
	name  string
	start func(t *testing.T, eng *iiitest.Engine, e *reentryEnv, opts iii.InitOptions, other *iii.III, run func(ctx context.Context))
}{
	{"handler", func(t *testing.T, eng *iiitest.Engine, e *reentryEnv, opts iii.InitOptions, other *iii.III, run func(ctx context.Context)) {
		e.w = newWorker(t, eng, opts)
		if _, err := iii.RegisterFunction(e.w, "reent::cb", func(ctx context.Context, _ int) (int, error) { run(ctx); return 0, nil }); err != nil {
			t.Fatal(err)
		}
		reentrySetUp(t, eng, e, other)
		go other.Trigger(context.Background(), iii.TriggerRequest{FunctionID: "reent::cb", Payload: json.RawMessage(`1`), Action: iii.Void()})
	}},
	{"trigger provider's RegisterTrigger", func(t *testing.T, eng *iiitest.Engine, e *reentryEnv, opts iii.InitOptions, other *iii.III, run func(ctx context.Context)) {
		e.w = newWorker(t, eng, opts)
		p := &callbackProvider{}
		reentryCallbackType(t, e, p)
		reentrySetUp(t, eng, e, other)
		p.register.Store(&run)
		if _, err := other.RegisterTrigger(iii.TriggerInput{Type: "reent::cbtype", FunctionID: "reent::remote", Config: tickerConfig{Every: "2s"}}); err != nil {
			t.Fatal(err)
		}
	}},
	{"trigger provider's UnregisterTrigger", func(t *testing.T, eng *iiitest.Engine, e *reentryEnv, opts iii.InitOptions, other *iii.III, run func(ctx context.Context)) {
		e.w = newWorker(t, eng, opts)
		p := &callbackProvider{}
		reentryCallbackType(t, e, p)
		reentrySetUp(t, eng, e, other)
		tr, err := other.RegisterTrigger(iii.TriggerInput{Type: "reent::cbtype", FunctionID: "reent::remote", Config: tickerConfig{Every: "1s"}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := other.RegisterTrigger(iii.TriggerInput{Type: "reent::cbtype", FunctionID: "reent::remote", Config: tickerConfig{Every: "2s"}}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the bindings", func() bool { return len(e.cbType.Bindings()) == 2 })
		p.unregister.Store(&run)
		if err := tr.Unregister(); err != nil {
			t.Fatal(err)
		}
	}},
	{"OnStateChange", func(t *testing.T, eng *iiitest.Engine, e *reentryEnv, opts iii.InitOptions, other *iii.III, run func(ctx context.Context)) {
		var armed atomic.Bool
		var once sync.Once
		opts.OnStateChange = func(s iii.ConnectionState) {
			if s == iii.Connected && armed.Load() {
				once.Do(func() { run(context.Background()) })
			}
		}
		e.w = newWorker(t, eng, opts)
		reentrySetUp(t, eng, e, other)
		armed.Store(true)
		if !eng.DropWorker(e.w.WorkerID()) {
			t.Fatal("DropWorker found no such worker")
		}
	}},
}

// reentryCallbackType registers the trigger type "reent::cbtype" of p.
func reentryCallbackType(t *testing.T, e *reentryEnv, p *callbackProvider) {
	ref, err := iii.RegisterTriggerType[tickerConfig, tick](e.w, "reent::cbtype", "", p)
	if err != nil {
		t.Fatal(err)
	}
	e.cbType = ref
}

// reentrySetUp gives e.w and other what the calls use.
func reentrySetUp(t *testing.T, eng *iiitest.Engine, e *reentryEnv, other *iii.III) {
	t.Helper()
	if _, err := iii.RegisterFunction(e.w, "reent::echo", func(_ context.Context, n int) (int, error) { return n, nil }); err != nil {
		t.Fatal(err)
	}
	ref, err := iii.RegisterTriggerType[tickerConfig, tick](e.w, "reent::other", "", newRecordingProvider())
	if err != nil {
		t.Fatal(err)
	}
	e.other = ref
	if _, err := iii.RegisterTriggerType[tickerConfig, tick](other, "reent::provided", "", newRecordingProvider()); err != nil {
		t.Fatal(err)
	}
	if _, err := iii.RegisterFunction(other, "reent::remote", func(_ context.Context, in json.RawMessage) (json.RawMessage, error) { return in, nil }); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"reent::echo", "reent::remote"} {
		if err := eng.WaitFunction(testCtx(t), id); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := other.RegisterTrigger(iii.TriggerInput{Type: "reent::other", FunctionID: "reent::remote", Config: tickerConfig{Every: "1s"}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the binding of reent::other", func() bool { return len(e.other.Bindings()) == 1 })
}

// callbackProvider runs register from its first RegisterTrigger once set,
// and unregister from its first UnregisterTrigger once set.
type callbackProvider struct {
	register, unregister atomic.Pointer[func(ctx context.Context)]
	once, unonce         sync.Once
}

func (p *callbackProvider) RegisterTrigger(ctx context.Context, _ iii.TriggerBinding[tickerConfig]) error {
	if f := p.register.Load(); f != nil {
		p.once.Do(func() { (*f)(ctx) })
	}
	return nil
}

func (p *callbackProvider) UnregisterTrigger(ctx context.Context, _ iii.TriggerBinding[tickerConfig]) error {
	if f := p.unregister.Load(); f != nil {
		p.unonce.Do(func() { (*f)(ctx) })
	}
	return nil
}

// Every call of the public API returns when made from the worker's own
// handlers, trigger providers and OnStateChange callback (it may fail; it
// may not wait for ever), and so do Shutdown and Drain after them, with a
// ShutdownTimeout of an hour.
func TestEveryCallReturnsFromEveryCallback(t *testing.T) {
	for _, cb := range reentryCallbacks {
		for _, last := range []string{"Shutdown", "Drain"} {
			t.Run(cb.name+"/"+last, func(t *testing.T) {
				eng := iiitest.NewEngine(t)
				other := newWorker(t, eng, fastOptions())
				e := &reentryEnv{}
				progress := make(chan string, 64)
				done := make(chan struct{})
				var failed []string
				cb.start(t, eng, e, fastOptions(), other, func(ctx context.Context) {
					defer close(done)
					iii.SetShutdownTimeout(e.w, time.Hour)
					for _, op := range reentryOps() {
						progress <- op.name
						octx, cancel := context.WithTimeout(ctx, 5*time.Second)
						if err := op.do(octx, e); err != nil {
							failed = append(failed, fmt.Sprintf("%s: %v", op.name, err))
						}
						cancel()
					}
					progress <- last
					if last == "Drain" {
						dctx, cancel := context.WithTimeout(context.Background(), time.Hour)
						defer cancel()
						_ = e.w.Drain(dctx)
					} else {
						e.w.Shutdown()
					}
				})
				current := "(the callback did not start)"
				deadline := time.After(60 * time.Second)
			wait:
				for {
					select {
					case current = <-progress:
					case <-done:
						break wait
					case <-deadline:
						t.Fatalf("%s did not return when called from %s", current, cb.name)
					}
				}
				// The calls do not only return: they work, but for the
				// binding being registered, not listed before its
				// RegisterTrigger returns.
				for _, f := range failed {
					if cb.name == "trigger provider's RegisterTrigger" && f == "Bindings and Fire on the calling provider's type: no binding" {
						continue
					}
					t.Errorf("from %s: %s", cb.name, f)
				}
			})
		}
	}
}
