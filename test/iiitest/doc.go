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
// an optional authentication gate; the "http" trigger type on an HTTP port
// and HTTP-invoked functions (below). WithNamespaces switches to the
// namespaces of engine v0.23 (first live owner wins, per namespace;
// registrationrejected); without it, namespace fields are ignored, as
// v0.22.1 does.
//
// It also runs some of the engine's in-engine workers:
//
//   - cron (the "cron" trigger type): the engine's expression dialect (six
//     or seven fields, seconds first, UTC, day of week 1-7 from Sunday,
//     day of month AND day of week) with its error messages; each binding
//     is armed for its next time, fires a CronEvent with the binding's
//     metadata (after the condition function, if any), and is re-armed
//     only when the run's result came back, from the time then: runs
//     never overlap and times missed meanwhile are skipped. WithClock
//     and FakeClock make the schedules fire when a test says.
//   - the queue worker's topics, WithQueue: the "durable:subscriber"
//     trigger type and iii::durable::publish. A message is queued once for
//     each function subscribed to its topic (nothing keeps it if none is);
//     the subscriptions of one function compete for its copy; delivery
//     passes the data as published, without metadata; a failed delivery
//     (or condition function) is retried after the backoff, doubling, up
//     to the attempts (queue_config maxRetries + 1, backoffDelayMs,
//     concurrency and type "fifo" are honoured), then becomes a
//     DeadLetter with its Topic.
//   - the observability worker's "log" trigger type: the records of the
//     engine::log::* functions and of the workers' OTLP LOGS frames, in
//     the shape the engine stores them, go to every binding whose level is
//     "all" or the record's severity, with the binding's metadata.
//
// Known differences from the engine in these: no traceparent on their
// calls; the engine also delivers its own log lines (and an echo of each
// engine::log::* record, scope "tracing") to log triggers; the engine's
// queue keeps a message published to a topic with no subscriber (in a
// queue nothing consumes), and honours a FIFO subscription's message
// groups and concurrency, its visibility timeout, delays and the
// persistence of its adapters; a cron job's lock (one engine instance
// fires it) has no counterpart.
//
// For tests it adds inspection (Workers, Functions, Received, Journal,
// FrameCount, Spans, Logs, Metrics and Wait* helpers) and fault injection
// (DropWorker, StallWorker, Stop, Resume, Restart). Proxy breaks the
// network itself, between a worker and the double or a real engine: it
// stalls (half-open), black-holes one direction, or resets connections.
//
// HTTP: like the engine's iii-http worker, the double serves the functions
// bound with "http" triggers on an HTTP port of its own, at
// [Engine.HTTPURL] (a free loopback port, or WithHTTPAddr; it keeps its
// address across Restart). A request is routed as the engine's router does
// (method and api_path with ":name" segments, a literal segment beating a
// parameter, 404 with the engine's {"error":{...}} envelope, 405 with
// Allow, HEAD reaching the GET route and then 404, every OPTIONS answered
// by the permissive CORS layer) and handed to the function as the engine's
// request envelope: query_params, path_params, headers (lower-case, last
// value), path (the api_path as bound), method, body (parsed only for a
// JSON Content-Type, else null), trigger, and two channel refs,
// request_body (the raw request bytes, to read) and response (to write);
// the call carries the binding's metadata, the request's baggage and a
// traceparent in the request's trace (a new trace without one).
// The function answers either with a result envelope (status_code,
// headers as an object or "Name: value" lines, body; JSON bodies are
// re-encoded as the engine does, with sorted keys) or, returning null, by
// writing to the response channel: text frames {"type":"set_status",...}
// and {"type":"set_headers",...}, then binary frames streamed as the body,
// flushed as they come, until the channel closes. A binary frame before the
// result starts the stream and the result is then ignored. A handler error
// answers 500 with the error's code and message and an error_id; no
// response within WithHTTPTimeout (30 s) answers 504 with no body. The
// condition_function_id (422 CONDITION_NOT_MET) and the per-route
// middleware_function_ids (continue/respond) run as on the engine. A
// binding without api_path, or with a route that differs from a bound one
// only in its parameter names, is refused with trigger_registration_failed.
// At most 1024 requests are served at once (WithHTTPConcurrencyLimit);
// more wait. WaitHTTPRoute waits for a route.
//
// HTTP-invoked functions: a registerfunction with an invocation makes the
// double call that URL whenever the function is invoked, as the engine's
// iii-http-functions worker does: the payload as the JSON body (with
// _caller_worker_id for a worker's call), x-iii-Function-Path,
// x-iii-Invocation-ID, x-iii-Timestamp and the registration's headers,
// hmac (x-iii-Signature), bearer or api_key auth with the secret read from
// the environment at registration, timeout_ms (default 30 s). A 2xx JSON
// body is the result (empty: null), a 4xx/5xx answer an error
// ({"error":{"code","message"}} or http_error "HTTP <status>"). Unlike the
// engine, whose default policy wants https and refuses private addresses,
// the double calls loopback http(s) URLs only.
//
// What it leaves out: RBAC sessions beyond the auth gate (function
// prefixes, FORBIDDEN answers, middleware, registration hooks), and the
// in-engine modules not listed above (pubsub and its "subscribe" type, the
// stream WebSocket server): bindings of their trigger types are parked like
// bindings of any unknown type, where the engine with that module validates
// them. The trigger types configuration and trace are listed, but never
// fire.
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
