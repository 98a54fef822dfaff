package iii

import (
	"context"
	"fmt"
	"sync"

	"github.com/iii-go/iii/connection/wire"
)

// WaitForFunction waits until function id is registered with the engine,
// by any worker, so that a call to it no longer fails with
// function_not_found: with engine v0.23, in the namespace this worker's
// calls resolve it in (its own; DefaultNamespace for engine:: ids). It returns nil at once if the function is registered
// already; otherwise it waits for the engine's engine::functions-available
// notification that lists it (it does not poll). It returns ctx's error
// when ctx ends first, and ErrShutdown (or why the worker failed) when the
// worker stops. The look itself is a call of engine::functions::list: while
// the worker is not connected it waits for the connection like any call
// (InitOptions.InvocationTimeout), and its errors are returned.
//
// The engine checks its function table for changes every 5 s, so the wait
// may last up to that long after the function was registered.
//
// The first wait that has to wait registers, once for the worker's
// lifetime, a function marked internal (hidden from function listings)
// bound to engine::functions-available; every later wait shares it.
func (w *III) WaitForFunction(ctx context.Context, id string) error {
	if err := w.err(); err != nil {
		return err
	}
	if id == "" {
		return fmt.Errorf("%w: empty function id", ErrInvalidID)
	}
	if ok, err := w.functionListed(ctx, id); ok || err != nil {
		return err
	}
	key := waitKey(w.waitNamespace(id), id)
	ch, err := w.avail.wait(w, key)
	if err != nil {
		return err
	}
	defer w.avail.forget(key, ch)
	// Look again: the function may have come between the first look and
	// the subscription. From here on the notification cannot be missed:
	// the binding reached the engine before this look did.
	if ok, err := w.functionListed(ctx, id); ok || err != nil {
		return err
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-w.ctx.Done():
		if err := w.err(); err != nil {
			return err
		}
		return context.Cause(w.ctx)
	}
}

// functionListed reports whether the engine lists function id.
func (w *III) functionListed(ctx context.Context, id string) (bool, error) {
	fns, err := w.ListFunctions(ctx, FunctionFilter{Prefix: id, IncludeInternal: true})
	if err != nil {
		return false, err
	}
	ns := w.waitNamespace(id)
	for _, f := range fns {
		// An engine v0.22.1 reports no namespaces: any entry will do.
		if f.FunctionID == id && (f.Namespace == "" || f.Namespace == ns) {
			return true, nil
		}
	}
	return false, nil
}

// availability is the WaitForFunction state of a worker: the callers
// waiting for each function id, and the subscription to
// engine::functions-available that wakes them.
type availability struct {
	mu      sync.Mutex
	sub     *Subscription // nil until a wait first needs it
	waiting map[string]map[chan struct{}]struct{}
}

// wait returns a channel closed once a notification lists id, subscribing
// first if no wait has yet.
func (a *availability) wait(w *III, id string) (chan struct{}, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.sub == nil {
		sub, err := a.subscribe(w)
		if err != nil {
			return nil, err
		}
		a.sub = sub
	}
	if a.waiting == nil {
		a.waiting = make(map[string]map[chan struct{}]struct{})
	}
	if a.waiting[id] == nil {
		a.waiting[id] = make(map[chan struct{}]struct{})
	}
	ch := make(chan struct{})
	a.waiting[id][ch] = struct{}{}
	return ch, nil
}

// forget drops the waiter ch of id (woken or not).
func (a *availability) forget(id string, ch chan struct{}) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.waiting[id], ch)
	if len(a.waiting[id]) == 0 {
		delete(a.waiting, id)
	}
}

// subscribe registers the worker's internal functions-available function
// and its binding.
func (a *availability) subscribe(w *III) (*Subscription, error) {
	fn := "iii-go::functions-available::" + wire.NewUUID().String()
	f, err := RegisterFunction(w, fn, func(ctx context.Context, e FunctionsAvailableEvent) (any, error) {
		a.notify(e.Functions)
		return nil, nil
	}, WithDescription("Wakes this worker's WaitForFunction callers"),
		WithFunctionMetadata(map[string]bool{"internal": true}))
	if err != nil {
		return nil, err
	}
	t, err := w.RegisterTrigger(TriggerInput{Type: TriggerFunctionsAvailable, FunctionID: fn, Config: struct{}{}})
	if err != nil {
		_ = f.Unregister()
		return nil, err
	}
	return &Subscription{Function: f, Trigger: t}, nil
}

// notify wakes the waiters of every function listed: those of its
// namespace, or of any when the engine reports none (v0.22.1).
func (a *availability) notify(fns []FunctionInfo) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, f := range fns {
		for key, chs := range a.waiting {
			if ns, id := splitWaitKey(key); id != f.FunctionID || (f.Namespace != "" && f.Namespace != ns) {
				continue
			}
			for ch := range chs {
				close(ch)
			}
			delete(a.waiting, key)
		}
	}
}
