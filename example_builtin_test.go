package iii_test

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/test/iiitest"
)

// A function bound to the engine's cron trigger with a typed CronConfig; it
// receives a CronEvent at each scheduled time. The test double has no cron
// worker of its own, so a second worker stands in for the engine's: it
// provides the "cron" trigger type and fires the binding once.
func ExampleCronConfig() {
	eng, _ := iiitest.Start("127.0.0.1:0")
	defer eng.Close()
	ctx := context.Background()

	cfg := iii.CronConfig{Expression: "0 */5 * * * *"}
	b, _ := json.Marshal(cfg)
	fmt.Println("config sent:", string(b))

	// The stand-in for the engine's cron worker.
	provider := iii.RegisterWorker(eng.URL, iii.InitOptions{})
	defer provider.Shutdown()
	bound := make(chan iii.TriggerBinding[iii.CronConfig], 1)
	cron, _ := iii.RegisterTriggerType[iii.CronConfig, iii.CronEvent](provider, iii.TriggerTypeCron, "Cron stand-in",
		iii.TriggerHandlerFuncs[iii.CronConfig]{
			Register: func(ctx context.Context, b iii.TriggerBinding[iii.CronConfig]) error {
				bound <- b
				return nil
			},
		})

	// The application.
	app := iii.RegisterWorker(eng.URL, iii.InitOptions{})
	defer app.Shutdown()
	ticks := make(chan iii.CronEvent, 1)
	iii.RegisterFunction(app, "reports::every-5-min", func(ctx context.Context, e iii.CronEvent) (any, error) {
		ticks <- e
		return nil, nil
	})
	app.RegisterTrigger(iii.TriggerInput{Type: iii.TriggerTypeCron, FunctionID: "reports::every-5-min", Config: cfg})

	binding := <-bound
	fmt.Println("provider sees:", binding.Config.Expression, "for", binding.FunctionID)
	at := time.Date(2026, 12, 3, 10, 5, 0, 0, time.UTC)
	cron.Fire(ctx, binding.ID, iii.CronEvent{Trigger: "cron", JobID: binding.ID, ScheduledTime: at, ActualTime: at})
	e := <-ticks
	fmt.Println("tick:", e.Trigger, e.ScheduledTime.Format(time.RFC3339), e.JobID == binding.ID)
	// Output:
	// config sent: {"expression":"0 */5 * * * *"}
	// provider sees: 0 */5 * * * * for reports::every-5-min
	// tick: cron 2026-12-03T10:05:00Z true
}
