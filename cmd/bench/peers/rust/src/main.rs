//! The Rust peer of cmd/bench: `iii-bench-peer handler` serves
//! <BENCH_PREFIX>echo and <BENCH_PREFIX>sink with the official iii-sdk
//! crate until stdin closes; `iii-bench-peer caller` drives CONC calls in
//! flight for DURATION_MS after WARMUP_MS and prints its counts and
//! latencies as one JSON line. See cmd/bench/peer.go for the protocol.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use iii_sdk::protocol::TriggerRequest;
use iii_sdk::{register_worker, IIIClient, InitOptions, RegisterFunction, TriggerAction};
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;

fn env(name: &str, fallback: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| fallback.to_string())
}

fn env_u64(name: &str, fallback: u64) -> u64 {
    env(name, &fallback.to_string()).parse().expect(name)
}

fn request(function_id: &str, payload: Value, action: Option<TriggerAction>) -> TriggerRequest {
    TriggerRequest { function_id: function_id.to_string(), payload, action, timeout_ms: Some(30_000) }
}

/// Calls fn until it answers (its worker may not have registered yet).
async fn wait_callable(w: &IIIClient, function_id: &str) {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        match w.trigger(request(function_id, json!({}), None)).await {
            Ok(_) => return,
            Err(e) if Instant::now() > until => panic!("{function_id} not callable: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

async fn handler(w: IIIClient, prefix: String) {
    w.register_function(
        format!("{prefix}echo"),
        RegisterFunction::new_async(|input: Value| async move { Ok::<Value, iii_sdk::Error>(input) }),
    );
    w.register_function(
        format!("{prefix}sink"),
        RegisterFunction::new_async(|_input: Value| async move { Ok::<Value, iii_sdk::Error>(Value::Null) }),
    );
    wait_callable(&w, &format!("{prefix}echo")).await;
    println!("{}", json!({"event": "ready", "pid": std::process::id()}));
    let mut buf = [0u8; 256];
    let mut stdin = tokio::io::stdin();
    while let Ok(n) = stdin.read(&mut buf).await {
        if n == 0 {
            break;
        }
    }
}

async fn caller(w: IIIClient) {
    let function_id = env("FN", "");
    let echo = env("ECHO_FN", "");
    let void = env("MODE", "call") == "void";
    let conc = env_u64("CONC", 1);
    let warmup = Duration::from_millis(env_u64("WARMUP_MS", 300));
    let duration = Duration::from_millis(env_u64("DURATION_MS", 1200));
    let payload: Value = serde_json::from_slice(&std::fs::read(env("PAYLOAD_FILE", "")).expect("PAYLOAD_FILE")).expect("payload");
    wait_callable(&w, &echo).await;

    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(Mutex::new(None::<String>));
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let (w, function_id, echo, payload) = (w.clone(), function_id.clone(), echo.clone(), payload.clone());
        let (measuring, stop, ok, errors, first_error) =
            (measuring.clone(), stop.clone(), ok.clone(), errors.clone(), first_error.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat: Vec<u64> = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let t0 = Instant::now();
                let (res, n) = if void {
                    let mut r = Ok(Value::Null);
                    for _ in 0..64 {
                        r = w.trigger(request(&function_id, payload.clone(), Some(TriggerAction::Void))).await;
                        if r.is_err() {
                            break;
                        }
                    }
                    if r.is_ok() {
                        r = w.trigger(request(&echo, json!({}), None)).await;
                    }
                    (r, 64)
                } else {
                    (w.trigger(request(&function_id, payload.clone(), None)).await, 1)
                };
                match res {
                    Ok(_) => {
                        if measuring.load(Ordering::Relaxed) {
                            ok.fetch_add(n, Ordering::Relaxed);
                            if !void {
                                lat.push(t0.elapsed().as_micros() as u64);
                            }
                        }
                    }
                    Err(e) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        first_error.lock().unwrap().get_or_insert(e.to_string());
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
            }
            lat
        }));
    }
    tokio::time::sleep(warmup).await;
    println!("{}", json!({"event": "measuring"}));
    measuring.store(true, Ordering::Relaxed);
    let t0 = Instant::now();
    tokio::time::sleep(duration).await;
    measuring.store(false, Ordering::Relaxed);
    let seconds = t0.elapsed().as_secs_f64();
    let ok_n = ok.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    // Bound the wind-down: a call that never returns must not hold the result.
    let until = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut lat = Vec::new();
    let mut unfinished = 0;
    for t in tasks {
        match tokio::time::timeout_at(until, t).await {
            Ok(v) => lat.extend(v.unwrap_or_default()),
            Err(_) => unfinished += 1,
        }
    }
    let first = first_error.lock().unwrap().clone();
    println!(
        "{}",
        json!({"event": "result", "ok": ok_n, "errors": errors.load(Ordering::Relaxed), "seconds": seconds,
               "lat_us": lat, "first_error": first, "unfinished": unfinished})
    );
}

#[tokio::main]
async fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    let w = register_worker(&env("III_URL", "ws://127.0.0.1:49134"), InitOptions::default());
    match mode.as_str() {
        "handler" => handler(w.clone(), env("BENCH_PREFIX", "bench::peer.rust::")).await,
        "caller" => caller(w.clone()).await,
        _ => {
            eprintln!("usage: iii-bench-peer handler|caller");
            std::process::exit(2);
        }
    }
    w.shutdown_async().await;
}
