package iii_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/test/iiitest"
)

// The engine's builtin trigger types, as the engine double runs them,
// driven through the SDK's typed configurations.

func doubleCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestCronConfigOnTheDouble(t *testing.T) {
	clock := iiitest.NewFakeClock(time.Date(2026, 12, 3, 10, 0, 30, 0, time.UTC))
	eng := iiitest.NewEngine(t, iiitest.WithClock(clock))
	ctx := doubleCtx(t)
	w := iii.RegisterWorker(eng.URL, iii.InitOptions{})
	t.Cleanup(w.Shutdown)
	ticks := make(chan iii.CronEvent, 4)
	iii.RegisterFunction(w, "jobs::minutely", func(ctx context.Context, e iii.CronEvent) (any, error) {
		ticks <- e
		return nil, nil
	})
	tr, err := w.RegisterTrigger(iii.TriggerInput{Type: iii.TriggerTypeCron, FunctionID: "jobs::minutely", Config: iii.CronConfig{Expression: "0 * * * * *"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := clock.WaitTimers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	clock.Advance(30 * time.Second)
	e := <-ticks
	if e.Trigger != "cron" || e.JobID != tr.ID() || !e.ScheduledTime.Equal(time.Date(2026, 12, 3, 10, 1, 0, 0, time.UTC)) || !e.ActualTime.Equal(e.ScheduledTime) {
		t.Fatalf("event = %+v", e)
	}

	// A five-field expression is refused, as the engine refuses it.
	bad, err := w.RegisterTrigger(iii.TriggerInput{Type: iii.TriggerTypeCron, FunctionID: "jobs::minutely", Config: iii.CronConfig{Expression: "* * * * *"}})
	if err != nil {
		t.Fatal(err)
	}
	var te *iii.TriggerError
	if err := bad.WaitError(ctx); !errors.As(err, &te) || te.Code != "trigger_registration_failed" ||
		!strings.HasPrefix(te.Message, "Invalid cron expression '* * * * *'") {
		t.Fatalf("refusal = %v", err)
	}
}

func TestQueueConfigOnTheDouble(t *testing.T) {
	eng := iiitest.NewEngine(t, iiitest.WithQueue(iiitest.QueueConfig{}))
	ctx := doubleCtx(t)
	w := iii.RegisterWorker(eng.URL, iii.InitOptions{})
	t.Cleanup(w.Shutdown)
	type msg struct {
		N int `json:"n"`
	}
	var mu sync.Mutex
	got := map[string][]int{}
	done := make(chan struct{}, 8)
	for _, fn := range []string{"a::consume", "b::consume"} {
		iii.RegisterFunction(w, fn, func(ctx context.Context, m msg) (any, error) {
			mu.Lock()
			got[fn] = append(got[fn], m.N)
			mu.Unlock()
			done <- struct{}{}
			return nil, nil
		})
		// Two subscriptions of the same function share its copy.
		for range 2 {
			tr, err := w.RegisterTrigger(iii.TriggerInput{Type: iii.TriggerTypeQueue, FunctionID: fn, Config: iii.QueueConfig{Topic: "events"}})
			if err != nil {
				t.Fatal(err)
			}
			if err := eng.WaitTrigger(ctx, tr.ID()); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := 1; i <= 3; i++ {
		if _, err := iii.Call[any](ctx, w, "iii::durable::publish", map[string]any{"topic": "events", "data": msg{i}}); err != nil {
			t.Fatal(err)
		}
	}
	for range 6 {
		select {
		case <-done:
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, fn := range []string{"a::consume", "b::consume"} {
		slices.Sort(got[fn])
		if !slices.Equal(got[fn], []int{1, 2, 3}) {
			t.Fatalf("%s got %v, want each message once", fn, got[fn])
		}
	}
}

func TestLogConfigOnTheDouble(t *testing.T) {
	eng := iiitest.NewEngine(t)
	ctx := doubleCtx(t)
	w := iii.RegisterWorker(eng.URL, iii.InitOptions{})
	t.Cleanup(w.Shutdown)
	recs := make(chan iii.LogRecord, 4)
	iii.RegisterFunction(w, "alerts::on-warn", func(ctx context.Context, r iii.LogRecord) (any, error) {
		recs <- r
		return nil, nil
	})
	tr, err := w.RegisterTrigger(iii.TriggerInput{Type: iii.TriggerTypeLog, FunctionID: "alerts::on-warn", Config: iii.LogConfig{Level: iii.LogLevelWarn}})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.WaitTrigger(ctx, tr.ID()); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ fn, msg string }{{"engine::log::info", "ignored"}, {"engine::log::warn", "disk low"}} {
		if _, err := iii.Call[any](ctx, w, c.fn, map[string]any{"message": c.msg, "data": map[string]any{"free_gb": 3}, "service_name": "storage"}); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case r := <-recs:
		if r.Body != "disk low" || r.SeverityText != "WARN" || r.SeverityNumber != 13 || r.ServiceName != "storage" || string(r.Attributes["free_gb"]) != "3" {
			t.Fatalf("record = %+v", r)
		}
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	select {
	case r := <-recs:
		t.Fatalf("a second record: %+v", r)
	default:
	}
}
