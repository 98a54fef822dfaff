// Package iiitest provides an in-process double of the iii engine (v0.22.1)
// for tests, like net/http/httptest provides a server. It is a test tool,
// not an engine to deploy: it trusts every worker, keeps everything in
// memory, and its auth gate is only what WithAuth checks. It listens on
// loopback only and accepts WebSocket handshakes without an Origin header
// or from loopback pages only (a page on another site cannot reach it
// through a browser). It serves the worker
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
// register_trigger/unregister_trigger, channels::create, log, and, only
// WithQueue, an in-memory engine::queue::enqueue provider with retries and
// dead letters); the state and stream workers in memory (state::*,
// stream::*, the "state", "stream", "stream:join" and "stream:leave"
// trigger types, custom streams served by a worker; StreamJoin and
// StreamLeave stand in for stream WebSocket clients); the engine::workers-available
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
// http_functions module), and the in-engine modules not listed above
// (http, cron, pubsub): bindings of their trigger types are parked like
// bindings of any unknown type, where the engine with that module
// validates them (an http binding without api_path gets a
// trigger_registration_failed triggerregistrationresult). The trigger
// types of the engine's mandatory workers (configuration, log, trace) are
// listed, but never fire.
//
// Concurrency: every Engine method is safe for concurrent use. Each
// connection has one reader and one writer goroutine; the reader processes
// frames in order, as the engine does, and frames routed to another
// connection are queued to its writer (see WithOutboundLimits).
//
// Ordering: by default the double delivers calls, results and trigger
// fires in FIFO order. The engine promises no order between them (each is
// its own task); WithUnorderedDispatch, or IIITEST_UNORDERED=1 in the
// environment, makes the double as unordered, to shake out tests and code
// that rely on an order.
//
// Like the engine, the double drops a connection without a Close frame on
// a frame over 16 MiB, a message over 64 MiB, or a text message that is
// not valid UTF-8, and when the worker sends its Close; it never reads a
// channel reader's socket (no pongs, no Close reply).
//
// It is released with the SDK and follows its version (iii.Version).
package iiitest
