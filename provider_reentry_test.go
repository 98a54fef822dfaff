package iii_test

import (
	"context"
	"testing"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/test/iiitest"
)

// selfRetiringProvider withdraws its own trigger type from the first
// binding's RegisterTrigger.
type selfRetiringProvider struct {
	w       *iii.III
	retired chan error  // what UnregisterTriggerType returned
	ended   chan string // the bindings UnregisterTrigger got
}

func (p *selfRetiringProvider) RegisterTrigger(ctx context.Context, b iii.TriggerBinding[tickerConfig]) error {
	p.retired <- p.w.UnregisterTriggerType("retire::self")
	return nil
}

func (p *selfRetiringProvider) UnregisterTrigger(_ context.Context, b iii.TriggerBinding[tickerConfig]) error {
	p.ended <- b.ID
	return nil
}

// UnregisterTriggerType called from its own provider's callback returns
// (it waited for the provider's UnregisterTrigger calls, which could run
// only after that callback returned: for ever), and the binding still ends
// once the callback has returned.
func TestUnregisterTriggerTypeFromItsOwnProvider(t *testing.T) {
	eng := iiitest.NewEngine(t)
	p := newWorker(t, eng, fastOptions())
	b := newWorker(t, eng, fastOptions())
	sp := &selfRetiringProvider{w: p, retired: make(chan error, 1), ended: make(chan string, 1)}
	if _, err := iii.RegisterTriggerType[tickerConfig, tick](p, "retire::self", "", sp); err != nil {
		t.Fatal(err)
	}
	tr, err := b.RegisterTrigger(iii.TriggerInput{Type: "retire::self", FunctionID: "any::fn"})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-sp.retired:
		if err != nil {
			t.Fatalf("UnregisterTriggerType from its provider: %v", err)
		}
	case <-testCtx(t).Done():
		t.Fatal("UnregisterTriggerType called from its own provider did not return")
	}
	select {
	case id := <-sp.ended:
		if id != tr.ID() {
			t.Fatalf("UnregisterTrigger got binding %q, want %q", id, tr.ID())
		}
	case <-testCtx(t).Done():
		t.Fatal("the binding did not end after the type was withdrawn")
	}
	if err := p.UnregisterTriggerType("retire::self"); err == nil {
		t.Fatal("the type is still registered")
	}
}
