"""The Python peer of cmd/bench, on the official Python SDK (iii-sdk).

    python peer.py handler   serves <BENCH_PREFIX>echo (returns its input) and
                             <BENCH_PREFIX>sink (returns nothing) until stdin closes
    python peer.py caller    drives CONC calls of FN in flight (one thread each):
                             WARMUP_MS, then DURATION_MS measured; MODE=void sends
                             64 void calls then one awaited call of ECHO_FN per loop

stdout carries only JSON lines: {"event":"ready"} (handler), {"event":"measuring"}
then {"event":"result",ok,errors,seconds,lat_us,first_error,unfinished} (caller;
unfinished: loops whose call had not returned 10 s after the window). See
cmd/bench/peer.go for the protocol.
"""

import json
import os
import sys
import threading
import time

from iii import InitOptions, TriggerAction, register_worker


def env(name, fallback):
    return os.environ.get(name) or fallback


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def wait_callable(w, fn):
    until = time.monotonic() + 30
    while True:
        try:
            return w.trigger({"function_id": fn, "payload": {}})
        except Exception:
            if time.monotonic() > until:
                raise
            time.sleep(0.02)


def handler(w):
    prefix = env("BENCH_PREFIX", "bench::peer.python::")

    async def echo(data):
        return data

    async def sink(data):
        return None

    w.register_function(prefix + "echo", echo)
    w.register_function(prefix + "sink", sink)
    wait_callable(w, prefix + "echo")
    emit({"event": "ready", "pid": os.getpid()})
    sys.stdin.read()  # until the parent closes stdin


def caller(w):
    fn = env("FN", "")
    echo = env("ECHO_FN", "")
    is_void = env("MODE", "call") == "void"
    conc = int(env("CONC", "1"))
    warmup = int(env("WARMUP_MS", "300")) / 1000
    duration = int(env("DURATION_MS", "1200")) / 1000
    with open(env("PAYLOAD_FILE", ""), encoding="utf-8") as f:
        payload = json.load(f)
    wait_callable(w, echo)

    state = {"measuring": False, "stop": False, "ok": 0, "errors": 0, "first_error": None}
    lock = threading.Lock()
    lat = []

    def loop():
        while not state["stop"]:
            t0 = time.perf_counter_ns()
            try:
                if is_void:
                    for _ in range(64):
                        w.trigger({"function_id": fn, "payload": payload, "action": TriggerAction.Void()})
                    w.trigger({"function_id": echo, "payload": {}})
                else:
                    w.trigger({"function_id": fn, "payload": payload})
                if state["measuring"]:
                    with lock:
                        state["ok"] += 64 if is_void else 1
                        if not is_void:
                            lat.append((time.perf_counter_ns() - t0) // 1000)
            except Exception as e:  # noqa: BLE001 - counted and reported
                with lock:
                    state["errors"] += 1
                    if state["first_error"] is None:
                        state["first_error"] = str(e)
                time.sleep(0.001)

    threads = [threading.Thread(target=loop, daemon=True) for _ in range(conc)]
    for t in threads:
        t.start()
    time.sleep(warmup)
    emit({"event": "measuring"})
    state["measuring"] = True
    t0 = time.perf_counter()
    time.sleep(duration)
    state["measuring"] = False
    seconds = time.perf_counter() - t0
    with lock:
        ok = state["ok"]
        measured = list(lat)
    state["stop"] = True
    until = time.monotonic() + 10
    for t in threads:
        t.join(timeout=max(0, until - time.monotonic()))
    unfinished = sum(1 for t in threads if t.is_alive())
    emit({"event": "result", "ok": ok, "errors": state["errors"], "seconds": seconds,
          "lat_us": measured, "first_error": state["first_error"], "unfinished": unfinished})


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    if mode not in ("handler", "caller"):
        sys.stderr.write("usage: peer.py handler|caller\n")
        sys.exit(2)
    w = register_worker(env("III_URL", "ws://127.0.0.1:49134"), InitOptions(invocation_timeout_ms=30000))
    try:
        handler(w) if mode == "handler" else caller(w)
    finally:
        w.shutdown()


if __name__ == "__main__":
    main()
