package iii_test

import (
	"context"
	"fmt"
	"time"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/test/iiitest"
)

// A function bound to the engine's cron trigger with a typed CronConfig: it
// receives a CronEvent at each scheduled time. The engine double runs the
// schedule as the engine does; with a FakeClock the test decides when time
// passes, so the ticks are deterministic.
func ExampleCronConfig() {
	clock := iiitest.NewFakeClock(time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC))
	eng, _ := iiitest.Start("127.0.0.1:0", iiitest.WithClock(clock))
	defer eng.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	w := iii.RegisterWorker(eng.URL, iii.InitOptions{})
	defer w.Shutdown()
	ticks := make(chan iii.CronEvent, 1)
	iii.RegisterFunction(w, "reports::every-5-min", func(ctx context.Context, e iii.CronEvent) (any, error) {
		ticks <- e
		return nil, nil
	})
	// Six fields, seconds first, in UTC: second 0 of every fifth minute.
	w.RegisterTrigger(iii.TriggerInput{Type: iii.TriggerTypeCron, FunctionID: "reports::every-5-min",
		Config: iii.CronConfig{Expression: "0 */5 * * * *"}})

	for range 2 {
		// Wait until the job is armed (bound, or re-armed once the last
		// run returned), then move the clock to its next time.
		if err := clock.WaitTimers(ctx, 1); err != nil {
			fmt.Println(err)
			return
		}
		next, _ := clock.NextTimer()
		clock.Advance(next.Sub(clock.Now()))
		e := <-ticks
		fmt.Println("tick:", e.Trigger, e.ScheduledTime.Format(time.RFC3339), e.ActualTime.Equal(e.ScheduledTime))
	}
	// Output:
	// tick: cron 2026-12-03T10:05:00Z true
	// tick: cron 2026-12-03T10:10:00Z true
}
