//! Interop worker for the iii-go tests: drives the official Rust SDK
//! (iii-sdk 0.22.1) and reports what happens as JSON lines on stdout, one
//! object per line with an "event" field, like the Node scripts in ../node.
//!
//! Usage: `iii-interop-rust <role>`, configured by environment variables
//! (see NOTES.md). Roles: worker, caller, trigger-provider, trigger-binder,
//! channel, logger, list, reconnect.
//!
//! Long-running roles stop on stdin EOF, SIGTERM or SIGINT, print
//! {"event":"stopping"}, shut the SDK down, print {"event":"shutdown"} and
//! exit 0. Exit 1 with "FAIL: <reason>" on stderr is a failure of the program
//! itself; exit 124 is its own deadline (TIMEOUT_MS).

use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use iii_helpers::observability::{Logger, OtelConfig};
use iii_sdk::channel::{ChannelReader, ChannelWriter, StreamChannelRef};
use iii_sdk::protocol::{RegisterTriggerInput, TriggerRequest};
use iii_sdk::runtime::{FunctionInfo, IIIConnectionState, WorkerInfo};
use iii_sdk::trigger::{TriggerConfig, TriggerHandler};
use iii_sdk::{Error, IIIClient, InitOptions, RegisterFunction, RegisterTriggerType, TriggerAction};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

// ---------------------------------------------------------------------------
// Output, environment, process control
// ---------------------------------------------------------------------------

/// Writes one JSON object as one line on stdout.
fn emit(v: Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

/// Prints the reason on stderr and exits at once.
fn die(msg: &str, code: i32) -> ! {
    eprintln!("FAIL: {msg}");
    std::process::exit(code)
}

fn env(name: &str, fallback: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => fallback.to_string(),
    }
}

fn env_opt(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn env_int(name: &str, fallback: i64) -> i64 {
    match env_opt(name) {
        None => fallback,
        Some(v) => v.parse().unwrap_or_else(|_| die(&format!("{name} must be an integer, got {v:?}"), 1)),
    }
}

fn env_json(name: &str, fallback: Value) -> Value {
    match env_opt(name) {
        None => fallback,
        Some(v) => serde_json::from_str(&v).unwrap_or_else(|e| die(&format!("{name} is not valid JSON: {e}"), 1)),
    }
}

fn env_list(name: &str, fallback: &[&str]) -> Vec<String> {
    match env_opt(name) {
        None => fallback.iter().map(|s| s.to_string()).collect(),
        Some(v) => v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect(),
    }
}

/// An optional function id: unset means the default, "-" means none.
fn env_fn(name: &str, fallback: &str) -> Option<String> {
    let v = env(name, fallback);
    if v == "-" { None } else { Some(v) }
}

/// A hard deadline for the whole program (TIMEOUT_MS overrides the default).
fn deadline(default_ms: i64) {
    let ms = env_int("TIMEOUT_MS", default_ms) as u64;
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(ms));
        die(&format!("overall timeout after {ms} ms"), 124);
    });
}

fn engine_url() -> String {
    env_opt("III_URL").unwrap_or_else(|| die("III_URL is not set", 1))
}

fn call_timeout_ms() -> u64 {
    env_int("CALL_TIMEOUT_MS", 5000) as u64
}

/// register_worker(III_URL) with OTel as OTEL_ENABLED says (the SDK reads
/// it), or forced on.
fn connect(otel_on: bool) -> IIIClient {
    let mut opts = InitOptions::default();
    if otel_on {
        opts.otel = Some(OtelConfig { enabled: Some(true), ..Default::default() });
    }
    iii_sdk::register_worker(&engine_url(), opts)
}

/// Resolves when the program should stop: stdin EOF (the parent closed the
/// pipe or died), SIGTERM or SIGINT.
async fn until_stopped() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (tx, rx) = tokio::sync::oneshot::channel();
    if env("EXIT_ON_STDIN_EOF", "1") != "0" {
        std::thread::spawn(move || {
            let mut buf = [0u8; 256];
            let mut stdin = std::io::stdin();
            loop {
                match stdin.read(&mut buf) {
                    Ok(0) => break,
                    Ok(_) => continue,
                    Err(_) => break,
                }
            }
            let _ = tx.send(());
        });
    } else {
        std::mem::forget(tx);
    }
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = rx => "stdin closed",
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}

/// Shuts the SDK down (joining its connection thread) and exits.
async fn shutdown_and_exit(iii: IIIClient, code: i32) -> ! {
    let _ = tokio::task::spawn_blocking(move || iii.shutdown()).await;
    emit(json!({"event": "shutdown"}));
    std::process::exit(code)
}

/// Waits until the engine has processed everything this worker sent on
/// connect: one synchronous round trip after the registrations (the engine
/// reads a connection's frames in order, and the SDK sends queued frames in
/// order). Any answer counts, an error included.
async fn ready(iii: &IIIClient) {
    match iii.trigger(req("engine::functions::list", json!({}), None)).await {
        Ok(_) | Err(Error::Remote { .. }) => {}
        Err(e) => die(&format!("ready round trip: {e}"), 1),
    }
}

fn req(function_id: &str, payload: Value, action: Option<TriggerAction>) -> TriggerRequest {
    TriggerRequest {
        function_id: function_id.to_string(),
        payload,
        action,
        timeout_ms: Some(call_timeout_ms()),
    }
}

/// Plain JSON view of an error from trigger(): the variant, the wire code,
/// message and stack for remote errors, and the Display text.
fn error_json(e: &Error) -> Value {
    let kind = match e {
        Error::NotConnected => "not_connected",
        Error::Timeout => "timeout",
        Error::Runtime(_) => "runtime",
        Error::Remote { .. } => "remote",
        Error::Handler(_) => "handler",
        Error::Serde(_) => "serde",
        Error::WebSocket(_) => "websocket",
    };
    match e.invocation_error() {
        Some(ie) => json!({"kind": kind, "code": ie.code, "message": ie.message, "stacktrace": ie.stacktrace, "display": e.to_string()}),
        None => json!({"kind": kind, "code": null, "message": null, "stacktrace": null, "display": e.to_string()}),
    }
}

fn outcome(r: &Result<Value, Error>) -> Value {
    match r {
        Ok(v) => json!({"ok": true, "result": v}),
        Err(e) => json!({"ok": false, "error": error_json(e)}),
    }
}

fn merge(mut base: Value, extra: Value) -> Value {
    if let (Some(b), Some(x)) = (base.as_object_mut(), extra.as_object()) {
        for (k, v) in x {
            b.insert(k.clone(), v.clone());
        }
    }
    base
}

/// Routes the SDK's tracing events to stderr, and turns the one that reports
/// a refused binding into a JSON event (the SDK tells a binder about it in no
/// other way).
struct SdkLog;

#[derive(Default)]
struct Fields(Vec<(String, String)>);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push((field.name().to_string(), format!("{value:?}")));
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.push((field.name().to_string(), value.to_string()));
    }
}

impl tracing::Subscriber for SdkLog {
    fn enabled(&self, m: &tracing::Metadata<'_>) -> bool {
        *m.level() <= tracing::Level::INFO
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut f = Fields::default();
        event.record(&mut f);
        let get = |k: &str| f.0.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let message = get("message").unwrap_or_default();
        eprintln!("[{} {}] {:?}", event.metadata().level(), event.metadata().target(), f.0);
        if message.starts_with("[iii] Trigger registration failed") {
            // "[iii] Trigger registration failed for \"<id>\": <message>"
            let text = message.split_once(": ").map(|(_, m)| m.to_string()).unwrap_or_default();
            emit(json!({
                "event": "trigger_registration_failed",
                "id": get("trigger_id"),
                "trigger_type": get("trigger_type"),
                "code": get("code"),
                "message": text,
            }));
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

// ---------------------------------------------------------------------------
// Roles
// ---------------------------------------------------------------------------

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let _ = tracing::subscriber::set_global_default(SdkLog);
    let role = std::env::args().nth(1).unwrap_or_default();
    match role.as_str() {
        "worker" => worker().await,
        "caller" => caller().await,
        "trigger-provider" => trigger_provider().await,
        "trigger-binder" => trigger_binder().await,
        "channel" => channel().await,
        "logger" => logger().await,
        "list" => list().await,
        "reconnect" => reconnect().await,
        _ => die(
            &format!("unknown role {role:?} (want worker|caller|trigger-provider|trigger-binder|channel|logger|list|reconnect)"),
            2,
        ),
    }
}

/// A generic worker. Registers the functions named in FUNCTIONS; what each
/// does is chosen by the last "::" segment of its id:
///   echo  -> returns {input, metadata}
///   fail  -> Err(Error::Remote{code: FAIL_CODE, message: FAIL_MESSAGE, stacktrace: None})
///   error -> Err(Error::Handler(FAIL_MESSAGE)) (an untyped error)
///   panic -> panics with FAIL_MESSAGE
///   void  -> prints a "void" event and returns {recorded: true}
///   sleep -> waits SLEEP_MS, then returns {slept}
/// out: ready{functions}, invoked{function_id,kind,input,metadata}, void{...}, stopping, shutdown
async fn worker() {
    deadline(60000);
    let ids = env_list("FUNCTIONS", &["interop::echo", "interop::fail", "interop::void"]);
    let fail_code = env("FAIL_CODE", "E_INTEROP");
    let fail_message = env("FAIL_MESSAGE", "boom");
    let sleep_ms = env_int("SLEEP_MS", 60000) as u64;
    let iii = connect(false);
    for id in &ids {
        let kind = id.rsplit("::").next().unwrap_or_default().to_string();
        if !["echo", "fail", "error", "panic", "void", "sleep"].contains(&kind.as_str()) {
            die(&format!("function {id}: unknown kind {kind}"), 1);
        }
        let (id2, code, message) = (id.clone(), fail_code.clone(), fail_message.clone());
        iii.register_function(
            id.clone(),
            RegisterFunction::new_async(move |input: Value, metadata: Option<Value>| {
                let (id, kind, code, message) = (id2.clone(), kind.clone(), code.clone(), message.clone());
                async move {
                    let name = if kind == "void" { "void" } else { "invoked" };
                    emit(json!({"event": name, "function_id": id, "kind": kind, "input": input, "metadata": metadata}));
                    match kind.as_str() {
                        "echo" => Ok(json!({"input": input, "metadata": metadata})),
                        "fail" => Err(Error::Remote { code, message, stacktrace: None }),
                        "error" => Err(Error::Handler(message)),
                        "panic" => panic!("{}", message),
                        "void" => Ok(json!({"recorded": true})),
                        _ => {
                            tokio::time::sleep(Duration::from_millis(sleep_ms)).await;
                            Ok(json!({"slept": sleep_ms}))
                        }
                    }
                }
            }),
        );
    }
    ready(&iii).await;
    emit(json!({"event": "ready", "functions": ids, "pid": std::process::id()}));
    emit(json!({"event": "stopping", "reason": until_stopped().await}));
    shutdown_and_exit(iii, 0).await
}

/// Calls functions of another worker through the engine, one line per call,
/// in this order: echo (retried while function_not_found, up to WAIT_MS),
/// void, fail, panic (only with PANIC_FN), missing, enqueue (only with
/// ENQUEUE_QUEUE).
/// env: ECHO_FN, VOID_FN, FAIL_FN, PANIC_FN, MISSING_FN ("-" skips), PAYLOAD, METADATA,
///      ENQUEUE_QUEUE, ENQUEUE_FN, WAIT_MS
/// out: ready, result{call,function_id,ok,result|error}, done, shutdown
async fn caller() {
    deadline(30000);
    let payload = env_json("PAYLOAD", json!({"hello": "world", "n": 42}));
    let metadata = env_json("METADATA", json!({"origin": "rust-caller"}));
    let iii = connect(false);
    ready(&iii).await;
    emit(json!({"event": "ready", "pid": std::process::id()}));

    let report = |label: &str, function_id: &str, r: &Result<Value, Error>| {
        emit(merge(json!({"event": "result", "call": label, "function_id": function_id}), outcome(r)));
    };
    let echo = env_fn("ECHO_FN", "interop::echo");
    if let Some(f) = &echo {
        let until = std::time::Instant::now() + Duration::from_millis(env_int("WAIT_MS", 10000) as u64);
        let r = loop {
            let r = iii.trigger(req(f, payload.clone(), None).metadata(metadata.clone())).await;
            match &r {
                Err(Error::Remote { code, .. }) if code == "function_not_found" && std::time::Instant::now() < until => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                _ => break r,
            }
        };
        report("echo", f, &r);
    }
    if let Some(f) = env_fn("VOID_FN", "interop::void") {
        let p = merge(payload.clone(), json!({"void": true}));
        let r = iii.trigger(req(&f, p, Some(TriggerAction::Void)).metadata(metadata.clone())).await;
        report("void", &f, &r);
    }
    if let Some(f) = env_fn("FAIL_FN", "interop::fail") {
        report("fail", &f, &iii.trigger(req(&f, payload.clone(), None)).await);
    }
    if let Some(f) = env_fn("PANIC_FN", "-") {
        report("panic", &f, &iii.trigger(req(&f, payload.clone(), None)).await);
    }
    if let Some(f) = env_fn("MISSING_FN", "interop::missing") {
        report("missing", &f, &iii.trigger(req(&f, payload.clone(), None)).await);
    }
    if let Some(queue) = env_opt("ENQUEUE_QUEUE") {
        let f = env("ENQUEUE_FN", echo.as_deref().unwrap_or("interop::echo"));
        let r = iii.trigger(req(&f, payload.clone(), Some(TriggerAction::Enqueue { queue }))).await;
        report("enqueue", &f, &r);
    }
    emit(json!({"event": "done"}));
    shutdown_and_exit(iii, 0).await
}

/// The provider side of a trigger type: reports each binding, refuses those
/// whose config has "reject": true, and fires each accepted binding
/// FIRE_COUNT times with {tick, trigger_id, config} and the binding's metadata.
struct Provider {
    iii: IIIClient,
    fire_count: i64,
}

#[async_trait::async_trait]
impl TriggerHandler for Provider {
    async fn register_trigger(&self, b: TriggerConfig) -> Result<(), Error> {
        emit(json!({"event": "registertrigger", "id": b.id, "function_id": b.function_id, "config": b.config, "metadata": b.metadata}));
        if b.config.get("reject") == Some(&Value::Bool(true)) {
            return Err(Error::Handler(format!("binding {} rejected by interop provider", b.id)));
        }
        if self.fire_count > 0 {
            // Runs after the SDK has sent the registration result.
            let (iii, n) = (self.iii.clone(), self.fire_count);
            tokio::spawn(async move {
                for tick in 1..=n {
                    let payload = json!({"tick": tick, "trigger_id": b.id, "config": b.config});
                    let r = req(&b.function_id, payload, None);
                    let out = match &b.metadata {
                        Some(m) => iii.trigger(r.metadata(m.clone())).await,
                        None => iii.trigger(r).await,
                    };
                    emit(merge(json!({"event": "fired", "id": b.id, "function_id": b.function_id, "tick": tick}), outcome(&out)));
                }
            });
        }
        Ok(())
    }

    async fn unregister_trigger(&self, b: TriggerConfig) -> Result<(), Error> {
        emit(json!({"event": "unregistertrigger", "id": b.id, "function_id": b.function_id, "config": b.config, "metadata": b.metadata}));
        Ok(())
    }
}

/// env: TRIGGER_TYPE, DESCRIPTION, FIRE_COUNT
/// out: ready{trigger_type}, registertrigger, unregistertrigger, fired, stopping, shutdown
async fn trigger_provider() {
    deadline(60000);
    let ty = env("TRIGGER_TYPE", "interop::ticker");
    let iii = connect(false);
    let provider = Provider { iii: iii.clone(), fire_count: env_int("FIRE_COUNT", 0) };
    iii.register_trigger_type(RegisterTriggerType::new(
        ty.clone(),
        env("DESCRIPTION", "interop test trigger type provided by a Rust worker"),
        provider,
    ));
    ready(&iii).await;
    emit(json!({"event": "ready", "trigger_type": ty, "pid": std::process::id()}));
    emit(json!({"event": "stopping", "reason": until_stopped().await}));
    shutdown_and_exit(iii, 0).await
}

/// Registers FUNCTION_ID and binds a trigger of TRIGGER_TYPE to it. The SDK
/// does not expose the binding's id; the Go side reads it from the engine.
/// env: TRIGGER_TYPE, FUNCTION_ID, CONFIG, METADATA ("null" for none), UNREGISTER_AFTER_MS
/// out: ready, bound{trigger_type,function_id,config,metadata}, invoked{function_id,input,metadata},
///      trigger_registration_failed{id,trigger_type,code,message}, unbound, stopping, shutdown
async fn trigger_binder() {
    deadline(60000);
    let ty = env("TRIGGER_TYPE", "interop::ticker");
    let function_id = env("FUNCTION_ID", "interop::ticked");
    let config = env_json("CONFIG", json!({"interval_ms": 100}));
    let metadata = env_json("METADATA", json!({"binder": "rust"}));
    let iii = connect(false);
    let fid = function_id.clone();
    iii.register_function(
        function_id.clone(),
        RegisterFunction::new_async(move |input: Value, meta: Option<Value>| {
            let fid = fid.clone();
            async move {
                emit(json!({"event": "invoked", "function_id": fid, "input": input, "metadata": meta}));
                Ok(json!({"ok": true, "tick": input.get("tick").cloned().unwrap_or(Value::Null)}))
            }
        }),
    );
    let trigger = iii
        .register_trigger(RegisterTriggerInput {
            trigger_type: ty.clone(),
            function_id: function_id.clone(),
            config: config.clone(),
            metadata: if metadata.is_null() { None } else { Some(metadata.clone()) },
        })
        .unwrap_or_else(|e| die(&format!("register_trigger: {e}"), 1));
    ready(&iii).await;
    emit(json!({"event": "ready", "pid": std::process::id()}));
    emit(json!({"event": "bound", "trigger_type": ty, "function_id": function_id, "config": config, "metadata": metadata}));
    let after = env_int("UNREGISTER_AFTER_MS", -1);
    let stopped = until_stopped();
    tokio::pin!(stopped);
    if after >= 0 {
        tokio::select! {
            reason = &mut stopped => {
                emit(json!({"event": "stopping", "reason": reason}));
                shutdown_and_exit(iii, 0).await
            }
            _ = tokio::time::sleep(Duration::from_millis(after as u64)) => {
                trigger.unregister();
                emit(json!({"event": "unbound"}));
            }
        }
    }
    emit(json!({"event": "stopping", "reason": stopped.await}));
    shutdown_and_exit(iii, 0).await
}

// Channels: the data layout of ../node/channel.mjs (see ../node/NOTES.md,
// "Channel data layout").

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i.wrapping_mul(31).wrapping_add(7)) as u8).collect()
}

fn channel_message(k: usize) -> String {
    json!({"seq": k, "text": format!("message {k} ✓")}).to_string()
}

async fn write_all(w: &ChannelWriter, total: usize, count: usize) -> Result<Value, Error> {
    let data = pattern(total);
    let (mut messages, mut offsets) = (vec![], vec![]);
    for k in 0..=count {
        let part = &data[k * total / (count + 1)..(k + 1) * total / (count + 1)];
        if !part.is_empty() {
            w.write(part).await?;
        }
        if k < count {
            offsets.push((k + 1) * total / (count + 1));
            messages.push(channel_message(k));
            w.send_message(&channel_message(k)).await?;
        }
    }
    w.close().await?;
    Ok(json!({"bytes": total, "sha256": hex::encode(Sha256::digest(&data)), "messages": messages, "offsets": offsets}))
}

async fn read_all(r: &ChannelReader) -> Result<Value, Error> {
    let received = Arc::new(AtomicUsize::new(0));
    let seen: Arc<Mutex<(Vec<String>, Vec<usize>)>> = Arc::default();
    let (rc, sc) = (received.clone(), seen.clone());
    r.on_message(move |m| {
        let mut s = sc.lock().unwrap();
        s.0.push(m);
        s.1.push(rc.load(Ordering::SeqCst));
    })
    .await;
    let mut h = Sha256::new();
    while let Some(chunk) = r.next_binary().await? {
        h.update(&chunk);
        received.fetch_add(chunk.len(), Ordering::SeqCst);
    }
    r.close().await?;
    let s = seen.lock().unwrap();
    Ok(json!({"bytes": received.load(Ordering::SeqCst), "sha256": hex::encode(h.finalize()), "messages": s.0, "offsets": s.1}))
}

fn channel_ref(v: Option<&Value>, want: &str) -> Result<StreamChannelRef, Error> {
    let v = v.ok_or_else(|| Error::Handler(format!("input has no {want} ref")))?;
    serde_json::from_value(v.clone()).map_err(|e| Error::Handler(format!("input.{want} is not a channel ref: {e}")))
}

/// MODE=create-and-write: create (BUFFER_SIZE), print refs, write, close.
///   out: channel{reader,writer}, written{bytes,sha256,messages,offsets}
/// MODE=read (READER_REF): out read{...}.  MODE=write (WRITER_REF): out written{...}.
/// MODE=serve: functions CHANNEL_READ_FN ({"reader": ref} -> read summary)
///   and CHANNEL_WRITE_FN ({"writer": ref, "bytes"?, "messages"?} -> written summary);
///   out ready, served{function_id,summary}, stopping, shutdown.
/// env: BYTES (200000), MESSAGES (3)
async fn channel() {
    let mode = env("MODE", "create-and-write");
    deadline(if mode == "serve" { 60000 } else { 30000 });
    let total = env_int("BYTES", 200000) as usize;
    let count = env_int("MESSAGES", 3) as usize;
    let url = engine_url();
    let check = |r: Result<Value, Error>, what: &str| r.unwrap_or_else(|e| die(&format!("{what}: {e}"), 1));
    match mode.as_str() {
        "create-and-write" => {
            let iii = connect(false);
            let size = env_opt("BUFFER_SIZE").map(|_| env_int("BUFFER_SIZE", 0) as usize);
            let ch = iii_sdk::helpers::create_channel(&iii, size)
                .await
                .unwrap_or_else(|e| die(&format!("create_channel: {e}"), 1));
            emit(json!({"event": "channel", "reader": ch.reader_ref, "writer": ch.writer_ref}));
            let s = check(write_all(&ch.writer, total, count).await, "write");
            emit(merge(json!({"event": "written"}), s));
            shutdown_and_exit(iii, 0).await
        }
        "read" => {
            let r = channel_ref(Some(&env_json("READER_REF", Value::Null)), "reader").unwrap_or_else(|e| die(&e.to_string(), 1));
            let s = check(read_all(&ChannelReader::new(&url, &r)).await, "read");
            emit(merge(json!({"event": "read"}), s));
            std::process::exit(0)
        }
        "write" => {
            let w = channel_ref(Some(&env_json("WRITER_REF", Value::Null)), "writer").unwrap_or_else(|e| die(&e.to_string(), 1));
            let s = check(write_all(&ChannelWriter::new(&url, &w), total, count).await, "write");
            emit(merge(json!({"event": "written"}), s));
            std::process::exit(0)
        }
        "serve" => {
            let iii = connect(false);
            let read_fn = env("CHANNEL_READ_FN", "interop::channel-read");
            let write_fn = env("CHANNEL_WRITE_FN", "interop::channel-write");
            let (u, f) = (url.clone(), read_fn.clone());
            iii.register_function(
                read_fn.clone(),
                RegisterFunction::new_async(move |input: Value| {
                    let (u, f) = (u.clone(), f.clone());
                    async move {
                        let r = channel_ref(input.get("reader"), "reader")?;
                        let s = read_all(&ChannelReader::new(&u, &r)).await?;
                        emit(json!({"event": "served", "function_id": f, "summary": s}));
                        Ok(s)
                    }
                }),
            );
            let (u, f) = (url.clone(), write_fn.clone());
            iii.register_function(
                write_fn.clone(),
                RegisterFunction::new_async(move |input: Value| {
                    let (u, f) = (u.clone(), f.clone());
                    async move {
                        let w = channel_ref(input.get("writer"), "writer")?;
                        let n = input.get("bytes").and_then(Value::as_u64).map_or(total, |v| v as usize);
                        let m = input.get("messages").and_then(Value::as_u64).map_or(count, |v| v as usize);
                        let s = write_all(&ChannelWriter::new(&u, &w), n, m).await?;
                        emit(json!({"event": "served", "function_id": f, "summary": s}));
                        Ok(s)
                    }
                }),
            );
            ready(&iii).await;
            emit(json!({"event": "ready", "pid": std::process::id()}));
            emit(json!({"event": "stopping", "reason": until_stopped().await}));
            shutdown_and_exit(iii, 0).await
        }
        _ => die(&format!("unknown MODE {mode} (want create-and-write|read|write|serve)"), 1),
    }
}

/// Emits four records through the SDK's Logger (OTel forced on); they leave
/// as LOGS frames on <III_URL>/otel. Runs until stopped, so that the exporter
/// has time to send them (flush_otel flushes spans and metrics, not logs).
/// env: LOG_MARK
/// out: ready, logged{records}, flushed, stopping, shutdown
async fn logger() {
    deadline(60000);
    let mark = env("LOG_MARK", "interop-log");
    let iii = connect(true);
    ready(&iii).await;
    emit(json!({"event": "ready", "pid": std::process::id()}));
    let logger = Logger::new();
    let mut records = vec![];
    for (seq, level) in ["info", "warn", "error", "debug"].iter().enumerate() {
        let message = format!("{mark} {level} #{seq}");
        let data = json!({"seq": seq, "level": level, "mark": mark});
        match *level {
            "info" => logger.info(&message, Some(data.clone())),
            "warn" => logger.warn(&message, Some(data.clone())),
            "error" => logger.error(&message, Some(data.clone())),
            _ => logger.debug(&message, Some(data.clone())),
        }
        records.push(json!({"level": level, "message": message, "data": data}));
    }
    emit(json!({"event": "logged", "records": records}));
    iii_helpers::observability::flush_otel().await;
    emit(json!({"event": "flushed"}));
    emit(json!({"event": "stopping", "reason": until_stopped().await}));
    shutdown_and_exit(iii, 0).await
}

/// Calls the engine's introspection builtins.
/// env: REGISTER (interop::listed; "-" for none; each with description "interop <id>"),
///      LIST (engine::functions::list,engine::workers::list), LIST_PAYLOAD ({})
/// out: ready{registered}, result{function_id,ok,result|error},
///      decoded{function_id,ok,count|error} (the answers of the two list builtins
///      decoded into the SDK's FunctionInfo / WorkerInfo), shutdown
async fn list() {
    deadline(30000);
    let register = if env("REGISTER", "") == "-" { vec![] } else { env_list("REGISTER", &["interop::listed"]) };
    let builtins = env_list("LIST", &["engine::functions::list", "engine::workers::list"]);
    let payload = env_json("LIST_PAYLOAD", json!({}));
    let iii = connect(false);
    for id in &register {
        iii.register_function(
            id.clone(),
            RegisterFunction::new_async(|_: Value| async move { Ok(json!({"ok": true})) }).description(format!("interop {id}")),
        );
    }
    ready(&iii).await;
    emit(json!({"event": "ready", "registered": register, "pid": std::process::id()}));
    for f in &builtins {
        let r = iii.trigger(req(f, payload.clone(), None)).await;
        emit(merge(json!({"event": "result", "function_id": f}), outcome(&r)));
        // Whether the SDK's own types for these answers decode them.
        let decoded = match (f.as_str(), &r) {
            ("engine::functions::list", Ok(v)) => Some(decode::<FunctionInfo>(v.get("functions"))),
            ("engine::workers::list", Ok(v)) => Some(decode::<WorkerInfo>(v.get("workers"))),
            _ => None,
        };
        if let Some(d) = decoded {
            emit(merge(json!({"event": "decoded", "function_id": f}), d));
        }
    }
    shutdown_and_exit(iii, 0).await
}

/// Decodes a list into Vec<T>: {"ok":true,"count"} or {"ok":false,"error"}.
fn decode<T: serde::de::DeserializeOwned>(v: Option<&Value>) -> Value {
    match serde_json::from_value::<Vec<T>>(v.cloned().unwrap_or(Value::Null)) {
        Ok(list) => json!({"ok": true, "count": list.len()}),
        Err(e) => json!({"ok": false, "error": e.to_string()}),
    }
}

/// One of each registration kind, for the reconnect test: the worker is its
/// own provider, and its function answers {pid, n} (n counts its calls).
/// env: TRIGGER_TYPE (interop::reconnect-type), FUNCTION_ID (interop::reconnect-fn)
/// out: state{state} (each change of the SDK's connection state, polled every 10 ms),
///      ready, registertrigger/unregistertrigger, invoked, stopping, shutdown
async fn reconnect() {
    deadline(60000);
    let ty = env("TRIGGER_TYPE", "interop::reconnect-type");
    let function_id = env("FUNCTION_ID", "interop::reconnect-fn");
    let iii = connect(false);
    let watch = iii.clone();
    tokio::spawn(async move {
        let mut last: Option<IIIConnectionState> = None;
        loop {
            let s = watch.get_connection_state();
            if last != Some(s) {
                last = Some(s);
                emit(json!({"event": "state", "state": format!("{s:?}").to_lowercase()}));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    iii.register_trigger_type(RegisterTriggerType::new(
        ty.clone(),
        "interop reconnect trigger type",
        Provider { iii: iii.clone(), fire_count: 0 },
    ));
    let fid = function_id.clone();
    let calls = Arc::new(AtomicUsize::new(0));
    iii.register_function(
        function_id.clone(),
        RegisterFunction::new_async(move |input: Value, metadata: Option<Value>| {
            let (fid, calls) = (fid.clone(), calls.clone());
            async move {
                emit(json!({"event": "invoked", "function_id": fid, "input": input, "metadata": metadata}));
                Ok(json!({"pid": std::process::id(), "n": calls.fetch_add(1, Ordering::SeqCst) + 1}))
            }
        }),
    );
    let _trigger = iii
        .register_trigger(RegisterTriggerInput {
            trigger_type: ty,
            function_id,
            config: json!({"reconnect": true}),
            metadata: None,
        })
        .unwrap_or_else(|e| die(&format!("register_trigger: {e}"), 1));
    ready(&iii).await;
    emit(json!({"event": "ready", "pid": std::process::id()}));
    emit(json!({"event": "stopping", "reason": until_stopped().await}));
    shutdown_and_exit(iii, 0).await
}
