// Package iii is the Go SDK for the iii engine: it makes a Go process an
// iii worker. A worker opens one WebSocket to the engine, registers
// functions, trigger types and triggers, answers the invocations the engine
// sends it, and invokes other workers' functions (awaited, fire-and-forget,
// or through a queue).
//
//	w := iii.RegisterWorker("ws://127.0.0.1:49134", iii.InitOptions{})
//	defer w.Close()
//	iii.RegisterFunction(w, "greet::hello", func(ctx context.Context, name string) (string, error) {
//		return "hello, " + name, nil
//	})
//	msg, err := iii.Call[string](ctx, w, "greet::hello", "world")
//
// Inside, a worker is a small actor system (protoactor-go): a connection
// actor (dial, reconnect with backoff, keepalive, reattach), a registry
// actor (registrations, replayed exactly once per connection in protocol
// order), and a pool of invocation actors, each owning one inbound
// invocation from dispatch to reply, all under one supervisor. The facade
// in this package turns calls into messages to them and waits on replies
// together with the caller's context.
//
// Beyond functions and calls: trigger types and bindings
// (RegisterTriggerType, RegisterTrigger), routes of the engine's HTTP port
// served by any net/http handler (HandleHTTP), functions the engine serves
// by calling an HTTP endpoint (RegisterHTTPFunction), introspection of the
// engine (ListFunctions, ListWorkers, ...), data channels that stream bytes and
// messages between workers (CreateChannel, ChannelReader, ChannelWriter),
// and OpenTelemetry traces, logs (Logger) and metrics sent to the engine,
// or to the application's own providers (TelemetryOptions.TracerProvider,
// MeterProvider, LoggerProvider). The packages state and stream (with
// update) wrap the engine's state and stream functions and triggers with Go
// types, on top of this facade.
//
// Namespaces (engine v0.23): InitOptions.Namespace (or $III_NAMESPACE)
// places a worker's name, functions and trigger types in a namespace; its
// calls and bindings resolve there unless they name another
// (TriggerRequest.Namespace, TriggerInput.Namespace), and a provider's Fire
// calls each binding in the binding's namespace. An engine v0.22.1 ignores
// all of it, and a worker without a namespace sends nothing new.
//
// Errors: every error works with errors.Is and errors.As (see the Err*
// sentinels, RemoteError, InvocationError, TriggerError, ChannelError,
// RefusedError, RegistrationRejectedError, InternalError); (*III).Err says why a worker is unusable.
// Without InitOptions.Logger, the SDK's own warnings and errors go to
// slog.Default() at Warn and above.
//
// Package test/iiitest provides an in-process engine double for tests, the
// way net/http/httptest provides a server.
package iii
