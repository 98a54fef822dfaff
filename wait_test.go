package iii_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/connection/wire"
	"github.com/iii-go/iii/test/iiitest"
)

// listCalls counts the engine::functions::list calls worker w made.
func listCalls(eng *iiitest.Engine, w *iii.III) int {
	n := 0
	for _, m := range eng.Journal(w.WorkerID()) {
		if inv, ok := m.(*wire.InvokeFunction); ok && inv.FunctionID == "engine::functions::list" {
			n++
		}
	}
	return n
}

// waitInBackground runs WaitForFunction(ctx, id) on w and returns its result channel.
func waitInBackground(ctx context.Context, w *iii.III, id string) <-chan error {
	done := make(chan error, 1)
	go func() { done <- w.WaitForFunction(ctx, id) }()
	return done
}

func TestWaitForFunctionReturnsAtOnceWhenRegisteredAlready(t *testing.T) {
	eng, handler, caller := twoWorkers(t)
	mustRegister(t, eng, handler, "ready::now", func(context.Context, any) (any, error) { return nil, nil })
	if err := caller.WaitForFunction(testCtx(t), "ready::now"); err != nil {
		t.Fatal(err)
	}
	// One look, and no subscription.
	if n := listCalls(eng, caller); n != 1 {
		t.Errorf("%d engine::functions::list calls, want 1", n)
	}
	bindings, err := caller.ListTriggers(testCtx(t), iii.TriggerFilter{TriggerType: iii.TriggerFunctionsAvailable, IncludeInternal: true})
	if err != nil || len(bindings) != 0 {
		t.Errorf("bindings %+v, %v; want none", bindings, err)
	}
}

func TestWaitForFunctionWakesOnTheFunctionsAvailableNotification(t *testing.T) {
	eng := iiitest.NewEngine(t, iiitest.WithFunctionsPollInterval(20*time.Millisecond))
	handler := newWorker(t, eng, fastOptions())
	caller := newWorker(t, eng, fastOptions())

	done := waitInBackground(testCtx(t), caller, "late::fn")
	// Two looks (before and after subscribing) and it waits.
	waitFor(t, "WaitForFunction to look twice", func() bool { return listCalls(eng, caller) == 2 })
	select {
	case err := <-done:
		t.Fatalf("returned before the function existed: %v", err)
	default:
	}
	mustRegister(t, eng, handler, "late::fn", func(context.Context, any) (string, error) { return "here", nil })
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got, err := iii.Call[string](testCtx(t), caller, "late::fn", nil); err != nil || got != "here" {
		t.Fatalf("call after the wait: %q, %v", got, err)
	}
	if n := listCalls(eng, caller); n != 2 {
		t.Errorf("%d engine::functions::list calls, want 2: the wait must not poll", n)
	}

	// A second wait shares the subscription, and the internal function is
	// hidden from listings.
	if err := caller.WaitForFunction(testCtx(t), "late::fn"); err != nil {
		t.Fatal(err)
	}
	fns, err := caller.ListFunctions(testCtx(t), iii.FunctionFilter{})
	if err != nil {
		t.Fatal(err)
	}
	// (The engine's own functions, state::* and stream::*, are listed too.)
	listed := false
	for _, f := range fns {
		if strings.HasPrefix(f.FunctionID, "iii-go::") {
			t.Errorf("listed %s", f.FunctionID)
		}
		listed = listed || f.FunctionID == "late::fn"
	}
	if !listed {
		t.Error("late::fn not listed")
	}
}

// The wait is driven by the notification alone: a functions-available
// event that lists the function ends it, even though no worker registered
// the function.
func TestWaitForFunctionEndsOnANotificationListingTheFunction(t *testing.T) {
	eng := iiitest.NewEngine(t) // polls every 5 s: no real notification in time
	caller := newWorker(t, eng, fastOptions())
	done := waitInBackground(testCtx(t), caller, "ghost::fn")
	waitFor(t, "WaitForFunction to look twice", func() bool { return listCalls(eng, caller) == 2 })
	var sub string
	for id := range eng.Functions() {
		if strings.HasPrefix(id, "iii-go::functions-available::") {
			sub = id
		}
	}
	if sub == "" {
		t.Fatalf("no subscription function among %v", eng.Functions())
	}
	event := json.RawMessage(`{"event":"functions_changed","functions":[{"function_id":"other::fn","worker_name":"x"}]}`)
	if _, errb, err := eng.Invoke(testCtx(t), sub, event); err != nil || errb != nil {
		t.Fatalf("fire: %v %v", errb, err)
	}
	select {
	case err := <-done:
		t.Fatalf("woken by an event that does not list the function: %v", err)
	default:
	}
	event = json.RawMessage(`{"event":"functions_changed","functions":[{"function_id":"other::fn","worker_name":"x"},{"function_id":"ghost::fn","worker_name":"y"}]}`)
	if _, errb, err := eng.Invoke(testCtx(t), sub, event); err != nil || errb != nil {
		t.Fatalf("fire: %v %v", errb, err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestWaitForFunctionEndsWithItsContextAndWithShutdown(t *testing.T) {
	eng := iiitest.NewEngine(t)
	w := newWorker(t, eng, fastOptions())
	ctx, cancel := context.WithCancel(testCtx(t))
	done := waitInBackground(ctx, w, "never::fn")
	waitFor(t, "WaitForFunction to look twice", func() bool { return listCalls(eng, w) == 2 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: got %v", err)
	}

	done = waitInBackground(testCtx(t), w, "never::fn")
	waitFor(t, "WaitForFunction to look again", func() bool { return listCalls(eng, w) == 4 })
	w.Shutdown()
	if err := <-done; !errors.Is(err, iii.ErrShutdown) {
		t.Fatalf("shut down: got %v", err)
	}
	if err := w.WaitForFunction(testCtx(t), "never::fn"); !errors.Is(err, iii.ErrShutdown) {
		t.Fatalf("after shutdown: got %v", err)
	}
}
