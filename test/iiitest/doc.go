// Package iiitest provides an in-process double of the iii engine (v0.22.1)
// for tests, like net/http/httptest provides a server: it serves the worker
// protocol on a loopback port, so that a worker under test (the Go SDK, the
// official Node SDK, a raw WebSocket client) can connect to it unchanged.
//
//	eng := iiitest.NewEngine(t)
//	w := iii.RegisterWorker(eng.URL, iii.InitOptions{})
//	...
//	if err := eng.WaitFunction(ctx, "orders::create"); err != nil { ... }
//	res, errBody, err := eng.Invoke(ctx, "orders::create", json.RawMessage(`{"sku":"A-1"}`))
//
// What it implements (the engine-double checklist of the protocol
// specification, §13): workerregistered and reattach; the global function
// table with last-writer-wins ownership; synchronous, void, id-less and
// enqueued invocations with _caller_worker_id injection, relayed results,
// function_not_found and invocation_stopped; trigger types and bindings
// with provider replacement, replay, parking and error forwarding; the
// engine::* builtins (workers, functions, triggers, registered triggers,
// register_trigger/unregister_trigger, channels::create, log, and an
// in-memory engine::queue::enqueue provider); the engine::workers-available
// and engine::functions-available trigger types; data channels on
// /ws/channels/{id}; telemetry frames (OTLP/LOGS/MTRC) on "/" and "/otel";
// an optional authentication gate.
//
// For tests it adds inspection (Workers, Functions, Received, Journal,
// FrameCount, Spans, Logs, Metrics and Wait* helpers) and fault injection
// (DropWorker, StallWorker, Stop, Resume, Restart). Proxy breaks the
// network itself, between a worker and the double or a real engine: it
// stalls (half-open), black-holes one direction, or resets connections.
//
// What it leaves out: RBAC sessions beyond the auth gate (function
// prefixes, FORBIDDEN answers, middleware, registration hooks),
// HTTP-invoked functions (dropped, as by an engine without its
// http_functions module), and every in-engine module (http, cron, state,
// streams, pubsub): bindings of their trigger types are parked like
// bindings of any unknown type.
//
// Concurrency: every Engine method is safe for concurrent use. Each
// connection has one reader and one writer goroutine; the reader processes
// frames in order, as the engine does, and frames routed to another
// connection are queued to its writer (see WithOutboundLimits).
package iiitest
