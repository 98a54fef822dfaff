package iii_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/test/iiitest"
)

// A Logger inside a handler: each record reaches the engine as an
// OpenTelemetry log record, in the trace of the invocation it belongs to.
func ExampleLogger() {
	eng, err := iiitest.Start("127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer eng.Close()
	// Telemetry is on by default, unless OTEL_ENABLED=false; Enabled makes
	// it on whatever the environment says.
	w := iii.RegisterWorker(eng.URL, iii.InitOptions{Telemetry: &iii.TelemetryOptions{Enabled: new(true)}})
	defer w.Shutdown()

	log := w.Logger().With("component", "orders")
	type order struct {
		SKU string `json:"sku"`
		Qty int    `json:"qty"`
	}
	iii.RegisterFunction(w, "orders::create", func(ctx context.Context, o order) (string, error) {
		log.Info(ctx, "order accepted", "sku", o.SKU, "qty", o.Qty)
		return "ok", nil
	})

	ctx := context.Background()
	if err := eng.WaitFunction(ctx, "orders::create"); err != nil {
		panic(err)
	}
	if _, _, err := eng.Invoke(ctx, "orders::create", []byte(`{"sku":"A-1","qty":2}`)); err != nil {
		panic(err)
	}

	// What the engine received.
	logs, _ := eng.WaitLogs(ctx, 1)
	spans, _ := eng.WaitSpans(ctx, 1)
	r := logs[0]
	component, _ := r.Attributes.Get("component")
	sku, _ := r.Attributes.Get("sku")
	qty, _ := r.Attributes.Get("qty")
	fmt.Println(r.SeverityText, r.Body.String(), component, sku, qty)
	fmt.Println("span:", spans[0].Name)
	fmt.Println("same trace and span:", r.TraceID == spans[0].TraceID && r.SpanID == spans[0].SpanID)
	// Output:
	// INFO order accepted orders A-1 2
	// span: execute orders::create
	// same trace and span: true
}

// The zero Logger works without any worker: its records then go to
// slog.Default() (here a text handler on stdout, without the time).
func ExampleLogger_withoutWorker() {
	defer slog.SetDefault(slog.Default())
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	})))

	var log iii.Logger
	log.Warn(context.Background(), "disk almost full", "free_mb", 42)
	// Output:
	// level=WARN msg="disk almost full" free_mb=42
}

// Code that logs through log/slog reaches the engine too.
func ExampleNewSlogHandler() {
	eng, err := iiitest.Start("127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer eng.Close()
	w := iii.RegisterWorker(eng.URL, iii.InitOptions{Telemetry: &iii.TelemetryOptions{Enabled: new(true)}})
	defer w.Shutdown()

	logger := slog.New(iii.NewSlogHandler(w.Logger(), slog.LevelDebug))
	logger.WithGroup("req").Debug("cache miss", "key", "user:42")

	ctx := context.Background()
	if err := w.FlushTelemetry(ctx); err != nil {
		panic(err)
	}
	logs, _ := eng.WaitLogs(ctx, 1)
	key, _ := logs[0].Attributes.Get("req.key")
	fmt.Println(logs[0].SeverityText, logs[0].Body.String(), key)
	// Output:
	// DEBUG cache miss user:42
}
