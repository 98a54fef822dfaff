package iii_test

import (
	"context"
	"fmt"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/test/iiitest"
)

// WatchConfig is the configuration of a "files::watch" binding.
type WatchConfig struct {
	Path string `json:"path"`
}

// FileEvent is what a "files::watch" fire delivers.
type FileEvent struct {
	Path string `json:"path"`
	Op   string `json:"op"`
}

// A worker provides a custom trigger type; another worker binds a function
// to it; the provider fires the binding.
func ExampleRegisterTriggerType() {
	eng, _ := iiitest.Start("127.0.0.1:0")
	defer eng.Close()
	ctx := context.Background()

	provider := iii.RegisterWorker(eng.URL, iii.InitOptions{})
	defer provider.Shutdown()
	registered := make(chan iii.TriggerBinding[WatchConfig], 1)
	watch, _ := iii.RegisterTriggerType[WatchConfig, FileEvent](provider, "files::watch", "Fires when a file changes",
		iii.TriggerHandlerFuncs[WatchConfig]{
			Register: func(ctx context.Context, b iii.TriggerBinding[WatchConfig]) error {
				registered <- b // a real provider would start watching b.Config.Path
				return nil
			},
		})

	app := iii.RegisterWorker(eng.URL, iii.InitOptions{})
	defer app.Shutdown()
	changed := make(chan FileEvent, 1)
	iii.RegisterFunction(app, "ingest::on-change", func(ctx context.Context, e FileEvent) (any, error) {
		changed <- e
		return nil, nil
	})
	app.RegisterTrigger(iii.TriggerInput{Type: "files::watch", FunctionID: "ingest::on-change", Config: WatchConfig{Path: "/data/in"}})

	b := <-registered
	fmt.Println("watching", b.Config.Path, "for", b.FunctionID)
	watch.Fire(ctx, b.ID, FileEvent{Path: "/data/in/a.csv", Op: "create"})
	fmt.Println(<-changed)
	// Output:
	// watching /data/in for ingest::on-change
	// {/data/in/a.csv create}
}

// The trigger type's own worker registers a function of its call payload
// type (checked by the compiler) and binds it with a typed config.
func ExampleRegisterTriggerFunction() {
	eng, _ := iiitest.Start("127.0.0.1:0")
	defer eng.Close()
	ctx := context.Background()

	w := iii.RegisterWorker(eng.URL, iii.InitOptions{})
	defer w.Shutdown()
	registered := make(chan iii.TriggerBinding[WatchConfig], 1)
	watch, _ := iii.RegisterTriggerType[WatchConfig, FileEvent](w, "files::watch", "Fires when a file changes",
		iii.TriggerHandlerFuncs[WatchConfig]{
			Register: func(ctx context.Context, b iii.TriggerBinding[WatchConfig]) error {
				registered <- b
				return nil
			},
		})
	changed := make(chan FileEvent, 1)
	iii.RegisterTriggerFunction(watch, "ingest::on-change", func(ctx context.Context, e FileEvent) (any, error) {
		changed <- e
		return nil, nil
	})
	watch.RegisterTrigger("ingest::on-change", WatchConfig{Path: "/data/in"}, nil)

	b := <-registered
	watch.Fire(ctx, b.ID, FileEvent{Path: "/data/in/b.csv", Op: "write"})
	fmt.Println(<-changed)
	// Output:
	// {/data/in/b.csv write}
}

// Introspection: what the engine knows about functions, trigger types,
// bindings and workers.
func ExampleIII_ListFunctions() {
	eng, _ := iiitest.Start("127.0.0.1:0")
	defer eng.Close()
	ctx := context.Background()
	w := iii.RegisterWorker(eng.URL, iii.InitOptions{Metadata: &iii.WorkerMetadata{Name: "billing"}})
	defer w.Shutdown()
	iii.RegisterFunction(w, "billing::charge", func(ctx context.Context, cents int) (string, error) { return "ok", nil },
		iii.WithDescription("Charge a card"))
	w.WaitConnected(ctx)

	fns, _ := w.ListFunctions(ctx, iii.FunctionFilter{Prefix: "billing::"})
	for _, f := range fns {
		fmt.Println(f.FunctionID, "-", f.Description, "on", f.WorkerName)
	}
	info, _ := w.FunctionInfo(ctx, "billing::charge")
	fmt.Println(string(info.RequestSchema))
	workers, _ := w.ListWorkers(ctx, iii.WorkerFilter{Runtime: "go"})
	fmt.Println(workers[0].Name, workers[0].Runtime)
	// Output:
	// billing::charge - Charge a card on billing
	// {"$schema":"https://json-schema.org/draft/2020-12/schema","type":"integer"}
	// billing go
}
