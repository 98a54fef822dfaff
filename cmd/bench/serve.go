package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/iii-go/iii/test/iiitest"
)

// doubleOptions configures the engine double for the benchmark: the
// enqueue scenario needs the queue provider, which the engine has only with
// its queue worker (the double only WithQueue).
func doubleOptions() []iiitest.Option {
	return []iiitest.Option{iiitest.WithQueue(iiitest.QueueConfig{Queues: []string{queueName}})}
}

// serveOptions are the options of -serve: the benchmark's, and the HTTP
// port's address when -serve-http gives one.
func serveOptions(httpAddr string) []iiitest.Option {
	opts := doubleOptions()
	if httpAddr != "" {
		opts = append(opts, iiitest.WithHTTPAddr(httpAddr))
	}
	return opts
}

// runServe runs the engine double on addr until SIGINT or SIGTERM (or, in
// a child of the benchmark, until its stdin closes).
func runServe(addr string, opts ...iiitest.Option) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	eng, err := iiitest.Start(addr, opts...)
	if err != nil {
		return err
	}
	defer eng.Close()
	if isChild() {
		serveChild(eng.URL, stop)
	} else {
		slog.New(slog.NewTextHandler(os.Stderr, nil)).Info("engine double listening", "url", eng.URL, "http", eng.HTTPURL())
	}
	<-ctx.Done()
	return nil
}
