package iii_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/connection/wire"
	"github.com/iii-go/iii/test/iiitest"
)

// nsWorker connects a worker named name in namespace ns ("" for none) to eng
// and waits until the engine applied its engine::workers::register (which
// holds its name in the namespace).
func nsWorker(t testing.TB, eng *iiitest.Engine, name, ns string) *iii.III {
	t.Helper()
	opts := fastOptions()
	opts.Metadata = &iii.WorkerMetadata{Name: name}
	opts.Namespace = ns
	w := newWorker(t, eng, opts)
	waitFor(t, name+"'s engine::workers::register", func() bool {
		for _, wi := range eng.Workers() {
			if wi.ID == w.WorkerID() && wi.Name == name {
				return true
			}
		}
		return false
	})
	return w
}

// workersRegister returns the data of the last engine::workers::register
// worker w sent.
func workersRegister(t testing.TB, eng *iiitest.Engine, w *iii.III) map[string]any {
	t.Helper()
	var data json.RawMessage
	waitFor(t, "engine::workers::register", func() bool {
		for _, m := range eng.Journal(w.WorkerID()) {
			if inv, ok := m.(*wire.InvokeFunction); ok && inv.FunctionID == "engine::workers::register" {
				data = inv.Data
			}
		}
		return data != nil
	})
	var out map[string]any
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestDefaultEngineURLIsIPv4Loopback(t *testing.T) {
	if iii.DefaultEngineURL != "ws://127.0.0.1:49134" {
		t.Fatalf("DefaultEngineURL = %q", iii.DefaultEngineURL)
	}
}

func TestNamespaceSentInWorkersRegister(t *testing.T) {
	eng := iiitest.NewEngine(t)
	w := nsWorker(t, eng, "a", "orders")
	if got := workersRegister(t, eng, w)["namespace"]; got != "orders" {
		t.Fatalf("namespace = %v", got)
	}
	if w.Namespace() != "orders" {
		t.Fatalf("Namespace() = %q", w.Namespace())
	}
}

func TestNamespaceFromEnv(t *testing.T) {
	t.Setenv(iii.NamespaceEnv, "billing")
	eng := iiitest.NewEngine(t)
	w := nsWorker(t, eng, "a", "")
	if got := workersRegister(t, eng, w)["namespace"]; got != "billing" {
		t.Fatalf("namespace = %v", got)
	}
	// The option wins over the environment.
	w2 := nsWorker(t, eng, "b", "orders")
	if got := workersRegister(t, eng, w2)["namespace"]; got != "orders" {
		t.Fatalf("namespace = %v", got)
	}
}

// A worker without a namespace sends nothing new: no namespace field in any
// frame, so an engine v0.22.1 sees what it saw before.
func TestNoNamespaceNothingNewOnTheWire(t *testing.T) {
	t.Setenv(iii.NamespaceEnv, "  ") // blank: ignored
	eng := iiitest.NewEngine(t)
	w := nsWorker(t, eng, "a", iii.DefaultNamespace) // "default" is no namespace on the wire
	if _, ok := workersRegister(t, eng, w)["namespace"]; ok {
		t.Fatal("namespace sent in engine::workers::register")
	}
	if _, err := w.RegisterFunctionRaw("echo", func(ctx context.Context, in json.RawMessage) (any, error) { return in, nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := w.RegisterTrigger(iii.TriggerInput{Type: "cron", FunctionID: "echo", Config: map[string]string{"expression": "* * * * * *"}}); err != nil {
		t.Fatal(err)
	}
	if err := eng.WaitFunction(testCtx(t), "echo"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Trigger(testCtx(t), iii.TriggerRequest{FunctionID: "echo", Payload: 1, Namespace: iii.DefaultNamespace}); err != nil {
		t.Fatal(err)
	}
	for _, m := range eng.Journal(w.WorkerID()) {
		if s := string(wire.Encode(m)); strings.Contains(s, `"namespace"`) || strings.Contains(s, `"trigger_namespace"`) {
			t.Fatalf("namespace on the wire: %s", s)
		}
	}
}

func TestBlankNamespacesRefused(t *testing.T) {
	w := iii.RegisterWorker("ws://127.0.0.1:1", iii.InitOptions{Namespace: " "})
	defer w.Shutdown()
	if err := w.Err(); !errors.Is(err, iii.ErrInvalidNamespace) {
		t.Fatalf("Err() = %v", err)
	}

	eng := iiitest.NewEngine(t)
	w = nsWorker(t, eng, "a", "")
	if _, err := w.Trigger(testCtx(t), iii.TriggerRequest{FunctionID: "f", Namespace: "\t"}); !errors.Is(err, iii.ErrInvalidNamespace) {
		t.Fatalf("Trigger: %v", err)
	}
	for _, in := range []iii.TriggerInput{
		{Type: "cron", FunctionID: "f", Namespace: " "},
		{Type: "cron", FunctionID: "f", TriggerNamespace: " "},
	} {
		if _, err := w.RegisterTrigger(in); !errors.Is(err, iii.ErrInvalidNamespace) {
			t.Fatalf("RegisterTrigger(%+v): %v", in, err)
		}
	}
}

// registerAnswer registers function id answering answer.
func registerAnswer(t testing.TB, w *iii.III, id, answer string) *iii.FunctionRef {
	t.Helper()
	ref, err := w.RegisterFunctionRaw(id, func(context.Context, json.RawMessage) (any, error) { return answer, nil })
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

func TestNamespaceRoutesCalls(t *testing.T) {
	eng := iiitest.NewEngine(t, iiitest.WithNamespaces())
	registerAnswer(t, nsWorker(t, eng, "orders-greeter", "orders"), "greet", "orders")
	registerAnswer(t, nsWorker(t, eng, "default-greeter", ""), "greet", "default")
	if err := eng.WaitFunctionIn(testCtx(t), "orders", "greet"); err != nil {
		t.Fatal(err)
	}
	if err := eng.WaitFunction(testCtx(t), "greet"); err != nil {
		t.Fatal(err)
	}
	inOrders := nsWorker(t, eng, "orders-caller", "orders")
	inDefault := nsWorker(t, eng, "default-caller", "")
	ctx := testCtx(t)
	for _, c := range []struct {
		w    *iii.III
		opts []iii.CallOption
		want string
	}{
		{inOrders, nil, "orders"}, // inherits the worker's namespace
		{inOrders, []iii.CallOption{iii.WithCallNamespace(iii.DefaultNamespace)}, "default"},
		{inDefault, nil, "default"},
		{inDefault, []iii.CallOption{iii.WithCallNamespace("orders")}, "orders"},
	} {
		got, err := iii.Call[string](ctx, c.w, "greet", nil, c.opts...)
		if err != nil || got != c.want {
			t.Fatalf("%s: Call = %q, %v; want %q", c.w.Namespace(), got, err, c.want)
		}
	}
	// The engine's own functions stay in the default namespace.
	if _, err := inOrders.ListFunctions(ctx, iii.FunctionFilter{}); err != nil {
		t.Fatalf("engine:: call from a namespaced worker: %v", err)
	}
	_, err := iii.Call[string](ctx, inOrders, "greet", nil, iii.WithCallNamespace("nowhere"))
	if iii.ErrorCode(err) != iii.CodeFunctionNotFound || !strings.Contains(err.Error(), "namespace nowhere") {
		t.Fatalf("call in nowhere: %v", err)
	}
}

// nsProvider is a trigger provider recording its bindings.
type nsProvider struct {
	mu       sync.Mutex
	bindings map[string]iii.TriggerBinding[json.RawMessage]
}

func (p *nsProvider) RegisterTrigger(_ context.Context, b iii.TriggerBinding[json.RawMessage]) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.bindings[b.ID] = b
	return nil
}

func (p *nsProvider) UnregisterTrigger(context.Context, iii.TriggerBinding[json.RawMessage]) error {
	return nil
}

func (p *nsProvider) get(id string) (iii.TriggerBinding[json.RawMessage], bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	b, ok := p.bindings[id]
	return b, ok
}

func TestNamespaceBindingsFireInTheirNamespace(t *testing.T) {
	eng := iiitest.NewEngine(t, iiitest.WithNamespaces())
	tools := nsWorker(t, eng, "tools", "tools")
	def := &nsProvider{bindings: map[string]iii.TriggerBinding[json.RawMessage]{}}
	inTools := &nsProvider{bindings: map[string]iii.TriggerBinding[json.RawMessage]{}}
	defRef, err := iii.RegisterTriggerType[json.RawMessage, string](nsWorker(t, eng, "provider", ""), "tick", "", def)
	if err != nil {
		t.Fatal(err)
	}
	toolsRef, err := iii.RegisterTriggerType[json.RawMessage, string](tools, "tick", "", inTools)
	if err != nil {
		t.Fatal(err)
	}

	orders := nsWorker(t, eng, "orders", "orders")
	registerAnswer(t, orders, "onTick", "orders")
	registerAnswer(t, nsWorker(t, eng, "default-handler", ""), "onTick", "default")
	// Inherits the worker's namespace as target; provider resolved by the engine.
	if _, err := orders.RegisterTrigger(iii.TriggerInput{ID: "t1", Type: "tick", FunctionID: "onTick"}); err != nil {
		t.Fatal(err)
	}
	// The tools provider, targeting the default namespace.
	if _, err := orders.RegisterTrigger(iii.TriggerInput{ID: "t2", Type: "tick", FunctionID: "onTick",
		Namespace: iii.DefaultNamespace, TriggerNamespace: "tools"}); err != nil {
		t.Fatal(err)
	}
	var b1, b2 iii.TriggerBinding[json.RawMessage]
	waitFor(t, "the bindings", func() bool {
		var ok1, ok2 bool
		b1, ok1 = def.get("t1")
		b2, ok2 = inTools.get("t2")
		return ok1 && ok2
	})
	if b1.Namespace != "orders" || b1.TriggerNamespace != iii.DefaultNamespace {
		t.Fatalf("t1 = %+v", b1)
	}
	if b2.Namespace != iii.DefaultNamespace || b2.TriggerNamespace != "tools" {
		t.Fatalf("t2 = %+v", b2)
	}
	ctx := testCtx(t)
	// Fire calls the target in the binding's namespace, whatever the
	// provider's own namespace.
	if res, err := defRef.Fire(ctx, "t1", "tick"); err != nil || string(res) != `"orders"` {
		t.Fatalf("Fire t1 = %s, %v", res, err)
	}
	if res, err := toolsRef.Fire(ctx, "t2", "tick"); err != nil || string(res) != `"default"` {
		t.Fatalf("Fire t2 = %s, %v", res, err)
	}
}

func TestWorkerNamespaceConflictFailsTheWorker(t *testing.T) {
	eng := iiitest.NewEngine(t, iiitest.WithNamespaces())
	first := nsWorker(t, eng, "same", "orders")
	opts := fastOptions()
	opts.Metadata = &iii.WorkerMetadata{Name: "same"}
	opts.Namespace = "orders"
	second := iii.RegisterWorker(eng.URL, opts)
	defer second.Shutdown()
	waitFor(t, "state Failed", func() bool { return second.State() == iii.Failed })

	err := second.Err()
	var rej *iii.RegistrationRejectedError
	if !errors.Is(err, iii.ErrRegistrationRejected) || !errors.Is(err, iii.ErrConnectionFailed) || !errors.As(err, &rej) {
		t.Fatalf("Err() = %v", err)
	}
	want := iii.RegistrationRejectedError{Code: iii.CodeWorkerNamespaceConflict, Namespace: "orders", WorkerName: "same", OwnerWorkerID: first.WorkerID()}
	if *rej != want {
		t.Fatalf("rejection = %+v, want %+v", *rej, want)
	}
	var refused *iii.RefusedError
	if !errors.As(err, &refused) || refused.Code != iii.CodeWorkerNamespaceConflict {
		t.Fatalf("not a *RefusedError: %v", err)
	}
	if _, err := second.Trigger(testCtx(t), iii.TriggerRequest{FunctionID: "engine::functions::list"}); !errors.Is(err, iii.ErrRegistrationRejected) {
		t.Fatalf("call after the rejection: %v", err)
	}
	if first.Err() != nil || first.State() != iii.Connected {
		t.Fatalf("the first worker: %v %v", first.State(), first.Err())
	}
}

func TestFunctionNamespaceConflictOnFunctionRef(t *testing.T) {
	eng := iiitest.NewEngine(t, iiitest.WithNamespaces())
	owner := nsWorker(t, eng, "owner", "orders")
	registerAnswer(t, owner, "greet", "owner")
	if err := eng.WaitFunctionIn(testCtx(t), "orders", "greet"); err != nil {
		t.Fatal(err)
	}
	w := nsWorker(t, eng, "late", "orders")
	ref := registerAnswer(t, w, "greet", "late")
	other := registerAnswer(t, w, "other", "late")
	waitFor(t, "the rejection", func() bool { return ref.Err() != nil })
	var rej *iii.RegistrationRejectedError
	if err := ref.Err(); !errors.Is(err, iii.ErrRegistrationRejected) || !errors.As(err, &rej) ||
		rej.Code != iii.CodeFunctionNamespaceConflict || rej.FunctionID != "greet" || rej.OwnerWorkerID != owner.WorkerID() || rej.Namespace != "orders" {
		t.Fatalf("ref.Err() = %v", err)
	}
	if err := eng.WaitFunctionIn(testCtx(t), "orders", "other"); err != nil {
		t.Fatal(err)
	}
	if other.Err() != nil || w.Err() != nil || w.State() != iii.Connected {
		t.Fatalf("the worker: %v %v %v", other.Err(), w.Err(), w.State())
	}
}

// A namespaced worker whose connection went half-open reconnects into its
// own name and functions: its reattach retires the old connection before
// the new one claims the name, so there is no conflict with itself.
func TestNamespacedWorkerReconnectsIntoItsOwnName(t *testing.T) {
	eng := iiitest.NewEngine(t, iiitest.WithNamespaces())
	opts := fastOptions()
	opts.PingInterval = 20 * time.Millisecond
	opts.IdleTimeout = 150 * time.Millisecond
	opts.Metadata = &iii.WorkerMetadata{Name: "sticky"}
	opts.Namespace = "orders"
	w := newWorker(t, eng, opts)
	registerAnswer(t, w, "greet", "sticky")
	if err := eng.WaitFunctionIn(testCtx(t), "orders", "greet"); err != nil {
		t.Fatal(err)
	}
	first := w.WorkerID()
	if !eng.StallWorker(first) { // the engine still thinks it is live
		t.Fatal("not connected")
	}
	waitFor(t, "the reconnect", func() bool {
		return w.State() == iii.Connected && w.WorkerID() != first && w.WorkerID() != "" &&
			eng.FunctionsIn("orders")["greet"] == w.WorkerID()
	})
	caller := nsWorker(t, eng, "caller", "orders")
	if got, err := iii.Call[string](testCtx(t), caller, "greet", nil); err != nil || got != "sticky" || w.Err() != nil {
		t.Fatalf("Call = %q, %v; worker Err %v", got, err, w.Err())
	}
}

// An enqueued call runs in the namespace it names (here the worker's).
func TestNamespaceEnqueueRunsInTheNamespace(t *testing.T) {
	eng := iiitest.NewEngine(t, iiitest.WithNamespaces(), iiitest.WithQueue(iiitest.QueueConfig{}))
	got := make(chan string, 2)
	for _, ns := range []string{"orders", ""} {
		w := nsWorker(t, eng, "handler-"+ns, ns)
		ns := ns
		if _, err := w.RegisterFunctionRaw("job", func(context.Context, json.RawMessage) (any, error) {
			got <- ns
			return nil, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := eng.WaitFunctionIn(testCtx(t), "orders", "job"); err != nil {
		t.Fatal(err)
	}
	if err := eng.WaitFunction(testCtx(t), "job"); err != nil {
		t.Fatal(err)
	}
	caller := nsWorker(t, eng, "caller", "orders")
	if _, err := caller.Enqueue(testCtx(t), iiitest.DefaultQueueName, "job", 1); err != nil {
		t.Fatal(err)
	}
	select {
	case ns := <-got:
		if ns != "orders" {
			t.Fatalf("the job ran in %q", ns)
		}
	case <-testCtx(t).Done():
		t.Fatal("the job never ran")
	}
}

// Introspection reports namespaces, and a namespaced worker's functions.
func TestNamespaceIntrospection(t *testing.T) {
	eng := iiitest.NewEngine(t, iiitest.WithNamespaces())
	w := nsWorker(t, eng, "lister", "orders")
	registerAnswer(t, w, "greet", "x")
	if err := eng.WaitFunctionIn(testCtx(t), "orders", "greet"); err != nil {
		t.Fatal(err)
	}
	fns, err := w.ListFunctions(testCtx(t), iii.FunctionFilter{})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range fns {
		if f.FunctionID == "greet" {
			found = f.Namespace == "orders"
		}
	}
	if !found {
		t.Fatalf("greet in orders not listed: %+v", fns)
	}
	d, err := w.WorkerInfo(testCtx(t), "lister")
	if err != nil {
		t.Fatal(err)
	}
	if d.Worker.Namespace != "orders" || len(d.Functions) != 1 || d.Functions[0].FunctionID != "greet" || d.Functions[0].Namespace != "orders" {
		t.Fatalf("WorkerInfo = %+v", d)
	}
}

// WaitForFunction waits for the function in the namespace the worker's
// calls resolve it in, not for the id anywhere.
func TestWaitForFunctionInTheWorkersNamespace(t *testing.T) {
	eng := iiitest.NewEngine(t, iiitest.WithNamespaces(), iiitest.WithFunctionsPollInterval(20*time.Millisecond))
	registerAnswer(t, nsWorker(t, eng, "default-greeter", ""), "greet", "default")
	if err := eng.WaitFunction(testCtx(t), "greet"); err != nil {
		t.Fatal(err)
	}
	w := nsWorker(t, eng, "waiter", "orders")
	short, cancel := context.WithTimeout(testCtx(t), 200*time.Millisecond)
	defer cancel()
	if err := w.WaitForFunction(short, "greet"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitForFunction with greet in default only: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- w.WaitForFunction(testCtx(t), "greet") }()
	registerAnswer(t, nsWorker(t, eng, "orders-greeter", "orders"), "greet", "orders")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got, err := iii.Call[string](testCtx(t), w, "greet", nil); err != nil || got != "orders" {
		t.Fatalf("Call = %q, %v", got, err)
	}
	// engine:: functions are looked for in the default namespace.
	if err := w.WaitForFunction(testCtx(t), "engine::functions::list"); err != nil {
		t.Fatal(err)
	}
}
