package iii_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/test/iiitest"
)

type tickerConfig struct {
	Every  string `json:"every"`
	Reject bool   `json:"reject,omitempty"`
}

type tick struct {
	N int `json:"n"`
}

// recordingProvider records the provider callbacks it gets.
type recordingProvider struct {
	mu           sync.Mutex
	registered   []string
	unregistered []string
	changed      chan struct{}
}

func newRecordingProvider() *recordingProvider {
	return &recordingProvider{changed: make(chan struct{}, 100)}
}

func (p *recordingProvider) RegisterTrigger(ctx context.Context, b iii.TriggerBinding[tickerConfig]) error {
	if b.Config.Reject {
		return errors.New("tickers that reject are refused")
	}
	p.mu.Lock()
	p.registered = append(p.registered, b.ID+" "+b.FunctionID+" "+b.Config.Every)
	p.mu.Unlock()
	p.changed <- struct{}{}
	return nil
}

func (p *recordingProvider) UnregisterTrigger(ctx context.Context, b iii.TriggerBinding[tickerConfig]) error {
	p.mu.Lock()
	p.unregistered = append(p.unregistered, b.ID)
	p.mu.Unlock()
	p.changed <- struct{}{}
	return nil
}

func (p *recordingProvider) counts() (int, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.registered), len(p.unregistered)
}

func (p *recordingProvider) waitCounts(t *testing.T, reg, unreg int) {
	t.Helper()
	waitFor(t, "provider callbacks", func() bool {
		r, u := p.counts()
		return r == reg && u == unreg
	})
}

// providerAndBinder: worker P provides "test::ticker"; worker B has a
// function the tickers call, recording what it receives.
func providerAndBinder(t *testing.T, popts iii.InitOptions) (eng *iiitest.Engine, p, b *iii.III, rec *recordingProvider, ref *iii.TriggerTypeRef[tickerConfig, tick], got chan string) {
	t.Helper()
	eng = iiitest.NewEngine(t)
	p = newWorker(t, eng, popts)
	b = newWorker(t, eng, fastOptions())
	rec = newRecordingProvider()
	var err error
	if ref, err = iii.RegisterTriggerType[tickerConfig, tick](p, "test::ticker", "ticks", rec); err != nil {
		t.Fatal(err)
	}
	got = make(chan string, 100)
	mustRegister(t, eng, b, "app::on-tick", func(ctx context.Context, tk tick) (any, error) {
		got <- strings.TrimSpace(string(iii.MetadataFromContext(ctx))) + " " + string(rune('0'+tk.N))
		return nil, nil
	})
	return
}

func TestTriggerFiresTheBoundFunctionWithTheBindingsMetadata(t *testing.T) {
	_, _, b, rec, ref, got := providerAndBinder(t, fastOptions())
	trig, err := b.RegisterTrigger(iii.TriggerInput{Type: "test::ticker", FunctionID: "app::on-tick",
		Config: tickerConfig{Every: "1s"}, Metadata: map[string]string{"job": "nightly"}})
	if err != nil {
		t.Fatal(err)
	}
	rec.waitCounts(t, 1, 0)
	if rec.registered[0] != trig.ID()+" app::on-tick 1s" {
		t.Fatalf("provider got %q", rec.registered[0])
	}
	bs := ref.Bindings()
	if len(bs) != 1 || bs[0].ID != trig.ID() || bs[0].Config.Every != "1s" {
		t.Fatalf("bindings %+v", bs)
	}
	if _, err := ref.Fire(testCtx(t), trig.ID(), tick{N: 7}); err != nil {
		t.Fatal(err)
	}
	if s := <-got; s != `{"job":"nightly"} 7` {
		t.Fatalf("bound function got %q", s)
	}
	if err := trig.Unregister(); err != nil {
		t.Fatal(err)
	}
	rec.waitCounts(t, 1, 1)
	if len(ref.Bindings()) != 0 {
		t.Fatal("binding still live after unregister")
	}
	if _, err := ref.Fire(testCtx(t), trig.ID(), tick{}); !errors.Is(err, iii.ErrNotRegistered) {
		t.Fatalf("fire after unregister: %v", err)
	}
}

func TestProviderReconnectRebindsWithoutRegisteringTwice(t *testing.T) {
	eng, p, b, rec, ref, got := providerAndBinder(t, fastOptions())
	trig, err := b.RegisterTrigger(iii.TriggerInput{Type: "test::ticker", FunctionID: "app::on-tick", Config: tickerConfig{Every: "5s"}})
	if err != nil {
		t.Fatal(err)
	}
	rec.waitCounts(t, 1, 0)
	old := p.WorkerID()
	eng.DropWorker(old)
	// The engine parks the binding when its provider goes, and re-delivers
	// it when the provider's replay registers the type again.
	waitFor(t, "the provider to be back", func() bool {
		ts, err := b.ListTriggers(testCtx(t), iii.TriggerFilter{TriggerType: "test::ticker"})
		return err == nil && p.WorkerID() != old && len(ts) == 1 && ts[0].ID == trig.ID() && p.State() == iii.Connected
	})
	if _, err := ref.Fire(testCtx(t), trig.ID(), tick{N: 3}); err != nil {
		t.Fatal(err)
	}
	if s := <-got; s != " 3" {
		t.Fatalf("bound function got %q", s)
	}
	if r, u := rec.counts(); r != 1 || u != 0 {
		t.Fatalf("provider callbacks after the re-delivery: %d registered, %d unregistered; want 1, 0", r, u)
	}
}

func TestBinderDisconnectUnregistersAtTheProvider(t *testing.T) {
	_, _, b, rec, ref, _ := providerAndBinder(t, fastOptions())
	if _, err := b.RegisterTrigger(iii.TriggerInput{Type: "test::ticker", FunctionID: "app::on-tick", Config: tickerConfig{Every: "1m"}}); err != nil {
		t.Fatal(err)
	}
	rec.waitCounts(t, 1, 0)
	b.Shutdown()
	rec.waitCounts(t, 1, 1)
	if len(ref.Bindings()) != 0 {
		t.Fatal("binding still live after its binder left")
	}
}

func TestBindingMadeBeforeItsTypeExistsActivatesLater(t *testing.T) {
	eng := iiitest.NewEngine(t)
	b := newWorker(t, eng, fastOptions())
	got := make(chan tick, 1)
	mustRegister(t, eng, b, "app::on-tick", func(ctx context.Context, tk tick) (any, error) { got <- tk; return nil, nil })
	trig, err := b.RegisterTrigger(iii.TriggerInput{Type: "later::ticker", FunctionID: "app::on-tick", Config: tickerConfig{Every: "1s"}})
	if err != nil {
		t.Fatal(err)
	}
	p := newWorker(t, eng, fastOptions())
	rec := newRecordingProvider()
	ref, err := iii.RegisterTriggerType[tickerConfig, tick](p, "later::ticker", "arrives late", rec)
	if err != nil {
		t.Fatal(err)
	}
	rec.waitCounts(t, 1, 0)
	if _, err := ref.Fire(testCtx(t), trig.ID(), tick{N: 1}); err != nil {
		t.Fatal(err)
	}
	if tk := <-got; tk.N != 1 {
		t.Fatalf("got %+v", tk)
	}
	if trig.Err() != nil {
		t.Fatalf("a parked binding is not an error: %v", trig.Err())
	}
}

func TestProviderRefusalsReachTheBindersHandle(t *testing.T) {
	_, _, b, _, _, _ := providerAndBinder(t, fastOptions())
	cases := []struct {
		config any
		code   string
		msg    string
	}{
		{tickerConfig{Reject: true}, iii.CodeTriggerRegistrationFailed, "tickers that reject are refused"},
		{map[string]any{"every": 42}, iii.CodeTriggerRegistrationFailed, "does not decode"},
	}
	for _, c := range cases {
		onError := make(chan *iii.TriggerError, 1)
		trig, err := b.RegisterTrigger(iii.TriggerInput{Type: "test::ticker", FunctionID: "app::on-tick", Config: c.config,
			OnError: func(_ *iii.Trigger, err *iii.TriggerError) { onError <- err }})
		if err != nil {
			t.Fatal(err)
		}
		err = trig.WaitError(testCtx(t))
		var te *iii.TriggerError
		if !errors.As(err, &te) || te.Code != c.code || !strings.Contains(te.Message, c.msg) || te.TriggerID != trig.ID() {
			t.Fatalf("config %v: refusal %v", c.config, err)
		}
		if cb := <-onError; cb.Code != c.code {
			t.Fatalf("OnError got %+v", cb)
		}
		if trig.Err() == nil {
			t.Fatal("Err() lost the refusal")
		}
	}
}

func TestBindingForATypeNoLongerProvidedGetsTriggerTypeNotFound(t *testing.T) {
	_, p, b, rec, _, _ := providerAndBinder(t, fastOptions())
	if err := p.UnregisterTriggerType("test::ticker"); err != nil {
		t.Fatal(err)
	}
	// The engine still routes bindings of the type to this worker (it has
	// no message to withdraw a type); the worker refuses them.
	trig, err := b.RegisterTrigger(iii.TriggerInput{Type: "test::ticker", FunctionID: "app::on-tick", Config: tickerConfig{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := trig.WaitError(testCtx(t)); iii.ErrorCode(err) != iii.CodeTriggerTypeNotFound {
		t.Fatalf("got %v, want trigger_type_not_found", err)
	}
	if r, _ := rec.counts(); r != 0 {
		t.Fatal("a withdrawn type's handler was called")
	}
}

func TestUnregisteringATriggerTypeEndsItsBindingsLocally(t *testing.T) {
	_, p, b, rec, ref, _ := providerAndBinder(t, fastOptions())
	if _, err := b.RegisterTrigger(iii.TriggerInput{Type: "test::ticker", FunctionID: "app::on-tick", Config: tickerConfig{}}); err != nil {
		t.Fatal(err)
	}
	rec.waitCounts(t, 1, 0)
	if err := ref.Unregister(); err != nil {
		t.Fatal(err)
	}
	rec.waitCounts(t, 1, 1)
	if _, err := iii.RegisterTriggerType[tickerConfig, tick](p, "test::ticker", "again", newRecordingProvider()); err != nil {
		t.Fatalf("re-registering the type: %v", err)
	}
}

func TestBindingRemovedWhileTheProviderWasAwayEndsAfterItsReconnect(t *testing.T) {
	slow := iii.InitOptions{Reconnect: &iii.ReconnectConfig{InitialDelay: 300 * time.Millisecond, Jitter: -1}}
	eng, p, b, rec, ref, _ := providerAndBinder(t, slow)
	trig, err := b.RegisterTrigger(iii.TriggerInput{Type: "test::ticker", FunctionID: "app::on-tick", Config: tickerConfig{Every: "1h"}})
	if err != nil {
		t.Fatal(err)
	}
	rec.waitCounts(t, 1, 0)
	old := p.WorkerID()
	eng.DropWorker(old)
	waitFor(t, "the provider to notice", func() bool { return p.State() != iii.Connected })
	// While the provider is away the binding goes; nobody can tell it.
	if err := trig.Unregister(); err != nil {
		t.Fatal(err)
	}
	rec.waitCounts(t, 1, 1) // after the reconnect, the engine did not re-deliver it
	if len(ref.Bindings()) != 0 || p.WorkerID() == old {
		t.Fatalf("stale binding kept: %+v", ref.Bindings())
	}
}

func TestThreeWorkersProviderBinderAndTarget(t *testing.T) {
	eng := iiitest.NewEngine(t)
	p, b, target := newWorker(t, eng, fastOptions()), newWorker(t, eng, fastOptions()), newWorker(t, eng, fastOptions())
	rec := newRecordingProvider()
	ref, err := iii.RegisterTriggerType[tickerConfig, tick](p, "test::ticker", "ticks", rec)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan int, 1)
	mustRegister(t, eng, target, "target::fn", func(ctx context.Context, tk tick) (any, error) { got <- tk.N; return nil, nil })
	trig, err := b.RegisterTrigger(iii.TriggerInput{Type: "test::ticker", FunctionID: "target::fn", Config: tickerConfig{}})
	if err != nil {
		t.Fatal(err)
	}
	rec.waitCounts(t, 1, 0)
	if err := ref.FireVoid(testCtx(t), trig.ID(), tick{N: 9}); err != nil {
		t.Fatal(err)
	}
	if n := <-got; n != 9 {
		t.Fatalf("target got %d", n)
	}
}

func TestIntrospectionReportsFunctionsTypesBindingsAndWorkers(t *testing.T) {
	t.Setenv("III_WORKER_NAME", "introspected")
	_, p, b, rec, _, _ := providerAndBinder(t, fastOptions())
	trig, err := b.RegisterTrigger(iii.TriggerInput{Type: "test::ticker", FunctionID: "app::on-tick", Config: tickerConfig{Every: "2s"}})
	if err != nil {
		t.Fatal(err)
	}
	rec.waitCounts(t, 1, 0)
	ctx := testCtx(t)

	fns, err := p.ListFunctions(ctx, iii.FunctionFilter{Prefix: "app::"})
	if err != nil || len(fns) != 1 || fns[0].FunctionID != "app::on-tick" || fns[0].WorkerName != "introspected" {
		t.Fatalf("ListFunctions: %+v %v", fns, err)
	}
	fi, err := p.FunctionInfo(ctx, "app::on-tick")
	if err != nil || !strings.Contains(string(fi.RequestSchema), `"n"`) || len(fi.RegisteredTriggers) != 1 || fi.RegisteredTriggers[0].ID != trig.ID() {
		t.Fatalf("FunctionInfo: %+v %v", fi, err)
	}
	if _, err := p.FunctionInfo(ctx, "app::missing"); iii.ErrorCode(err) != iii.CodeNotFound {
		t.Fatalf("FunctionInfo of a missing function: %v", err)
	}

	types, err := p.ListTriggerTypes(ctx, iii.TriggerTypeFilter{Prefix: "test::"})
	if err != nil || len(types) != 1 || types[0].ID != "test::ticker" || types[0].Description != "ticks" {
		t.Fatalf("ListTriggerTypes: %+v %v", types, err)
	}
	ti, err := p.TriggerTypeInfo(ctx, "test::ticker")
	if err != nil || !strings.Contains(string(ti.ConfigurationSchema), `"every"`) || !strings.Contains(string(ti.RequestSchema), `"n"`) || ti.InstanceCount != 1 {
		t.Fatalf("TriggerTypeInfo: %+v %v", ti, err)
	}

	bs, err := p.ListTriggers(ctx, iii.TriggerFilter{TriggerType: "test::ticker"})
	if err != nil || len(bs) != 1 || bs[0].ID != trig.ID() || bs[0].FunctionID != "app::on-tick" {
		t.Fatalf("ListTriggers: %+v %v", bs, err)
	}
	bi, err := p.TriggerInfo(ctx, trig.ID())
	if err != nil || bi.Trigger == nil || bi.Trigger.ID != "test::ticker" || bi.Function == nil || bi.Function.FunctionID != "app::on-tick" {
		t.Fatalf("TriggerInfo: %+v %v", bi, err)
	}
	var cfg tickerConfig
	if json.Unmarshal(bi.Config, &cfg) != nil || cfg.Every != "2s" {
		t.Fatalf("binding config %s", bi.Config)
	}

	ws, err := p.ListWorkers(ctx, iii.WorkerFilter{Runtime: "go"})
	if err != nil || len(ws) != 2 || ws[0].Runtime != "go" || ws[0].Name != "introspected" || ws[0].Version != iii.Version {
		t.Fatalf("ListWorkers: %+v %v", ws, err)
	}
	wd, err := p.WorkerInfo(ctx, "introspected")
	if err != nil || wd.Worker.PID == 0 || wd.Worker.Runtime != "go" {
		t.Fatalf("WorkerInfo: %+v %v", wd, err)
	}
}

func TestWorkersAvailableSubscriptionSeesAWorkerConnect(t *testing.T) {
	eng := iiitest.NewEngine(t)
	w := newWorker(t, eng, fastOptions())
	events := make(chan iii.WorkersAvailableEvent, 10)
	sub, err := w.OnWorkersAvailable("watch::workers", func(ctx context.Context, e iii.WorkersAvailableEvent) error {
		events <- e
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the binding", func() bool {
		ts, _ := w.ListTriggers(testCtx(t), iii.TriggerFilter{TriggerType: iii.TriggerWorkersAvailable, IncludeInternal: true})
		return len(ts) == 1
	})
	other := newWorker(t, eng, fastOptions())
	var seen []string
	for !slices.Contains(seen, "worker_connected "+other.WorkerID()) {
		select {
		case e := <-events:
			seen = append(seen, e.Event+" "+e.WorkerID)
		case <-testCtx(t).Done():
			t.Fatalf("events %v lack the connect of %s", seen, other.WorkerID())
		}
	}
	if err := sub.Unregister(); err != nil {
		t.Fatal(err)
	}
}

func TestProviderCanFireABindingFromInsideItsRegisterCallback(t *testing.T) {
	eng := iiitest.NewEngine(t)
	p, b := newWorker(t, eng, fastOptions()), newWorker(t, eng, fastOptions())
	got := make(chan int, 1)
	mustRegister(t, eng, b, "app::on-tick", func(ctx context.Context, tk tick) (any, error) { got <- tk.N; return nil, nil })
	var ref atomic.Pointer[iii.TriggerTypeRef[tickerConfig, tick]]
	fired := make(chan error, 1)
	r, err := iii.RegisterTriggerType[tickerConfig, tick](p, "test::at-once", "fires as soon as it is bound",
		iii.TriggerHandlerFuncs[tickerConfig]{Register: func(ctx context.Context, bd iii.TriggerBinding[tickerConfig]) error {
			_, err := ref.Load().Fire(ctx, bd.ID, tick{N: 5})
			fired <- err
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	ref.Store(r)
	if _, err := b.RegisterTrigger(iii.TriggerInput{Type: "test::at-once", FunctionID: "app::on-tick", Config: tickerConfig{}}); err != nil {
		t.Fatal(err)
	}
	if err := <-fired; err != nil {
		t.Fatalf("firing from inside RegisterTrigger: %v", err)
	}
	if n := <-got; n != 5 {
		t.Fatalf("got %d", n)
	}
}
