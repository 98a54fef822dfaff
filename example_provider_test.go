package iii_test

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/test/iiitest"
)

// EveryConfig configures a "timer::every" binding.
type EveryConfig struct {
	IntervalMS int `json:"interval_ms"`
}

// Tick is what a "timer::every" fire delivers.
type Tick struct {
	N int `json:"n"`
}

// everyProvider runs one timer per binding of "timer::every".
type everyProvider struct {
	ready chan struct{} // closed once ref is set
	ref   *iii.TriggerTypeRef[EveryConfig, Tick]

	mu      sync.Mutex
	running map[string]*timerRun // by binding id
	stopped chan string          // the function of each binding whose timer stopped
}

type timerRun struct {
	stop context.CancelFunc
	done chan struct{}
}

// RegisterTrigger checks the config, starts the binding's timer on a
// goroutine of its own and returns at once.
func (p *everyProvider) RegisterTrigger(ctx context.Context, b iii.TriggerBinding[EveryConfig]) error {
	if b.Config.IntervalMS <= 0 {
		return iii.NewInvocationError(iii.CodeTriggerRegistrationFailed, "interval_ms must be positive")
	}
	// ctx is the worker's: the timer stops at UnregisterTrigger or at
	// Shutdown, whichever comes first.
	ctx, stop := context.WithCancel(ctx)
	run := &timerRun{stop: stop, done: make(chan struct{})}
	p.mu.Lock()
	p.running[b.ID] = run
	p.mu.Unlock()
	go func() {
		defer close(run.done)
		select { // the ref, once RegisterTriggerType has returned it
		case <-p.ready:
		case <-ctx.Done():
			return
		}
		t := time.NewTicker(time.Duration(b.Config.IntervalMS) * time.Millisecond)
		defer t.Stop()
		for n := 1; ; n++ {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			p.ref.Fire(ctx, b.ID, Tick{N: n}) // fails once the binding is gone
		}
	}()
	return nil
}

// UnregisterTrigger stops the binding's timer.
func (p *everyProvider) UnregisterTrigger(ctx context.Context, b iii.TriggerBinding[EveryConfig]) error {
	p.mu.Lock()
	run := p.running[b.ID]
	delete(p.running, b.ID)
	p.mu.Unlock()
	if run != nil {
		run.stop()
		<-run.done // quick: the goroutine only waits on ctx
		p.stopped <- b.FunctionID
	}
	return nil
}

// A trigger type provider that runs a real timer per binding and stops it
// when the binding is unregistered.
func ExampleRegisterTriggerType_timer() {
	eng, _ := iiitest.Start("127.0.0.1:0")
	defer eng.Close()

	provider := iii.RegisterWorker(eng.URL, iii.InitOptions{})
	defer provider.Close()
	p := &everyProvider{ready: make(chan struct{}), running: map[string]*timerRun{}, stopped: make(chan string, 1)}
	ref, err := iii.RegisterTriggerType[EveryConfig, Tick](provider, "timer::every", "Fires every interval_ms milliseconds", p)
	if err != nil {
		fmt.Println(err)
		return
	}
	p.ref = ref
	close(p.ready)

	app := iii.RegisterWorker(eng.URL, iii.InitOptions{})
	defer app.Close()
	ticks := make(chan Tick, 100)
	iii.RegisterFunction(app, "report::tick", func(ctx context.Context, t Tick) (any, error) {
		ticks <- t
		return nil, nil
	})
	trigger, _ := app.RegisterTrigger(iii.TriggerInput{Type: "timer::every", FunctionID: "report::tick",
		Config: EveryConfig{IntervalMS: 10}})

	for range 3 {
		fmt.Println("tick", (<-ticks).N)
	}
	trigger.Unregister() // the engine tells the provider, which stops the timer
	fmt.Println("timer stopped for", <-p.stopped)
	// Output:
	// tick 1
	// tick 2
	// tick 3
	// timer stopped for report::tick
}
