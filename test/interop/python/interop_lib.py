"""Shared plumbing for the Python interop scripts.

Same conventions as ../node/lib.mjs: stdout carries only JSON lines written by
emit(), one object per line with an "event" field; the SDK's own chatter goes
through the logging module to stderr. Long-running scripts stop when stdin
reaches EOF (the Go test closes the pipe), on SIGTERM or on SIGINT.

Exit codes: 0 success; 1 failure with "FAIL: <reason>" on stderr; 124 the
script's own deadline (TIMEOUT_MS) fired.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
import traceback
from typing import Any, Callable

from iii import InitOptions, InvocationError, register_worker
from iii.iii import III

_emit_lock = threading.Lock()

# Text on stdout/stderr is UTF-8 whatever the locale says.
sys.stdout.reconfigure(encoding="utf-8")  # type: ignore[union-attr]
sys.stderr.reconfigure(encoding="utf-8")  # type: ignore[union-attr]

logging.basicConfig(
    stream=sys.stderr,
    level=os.environ.get("LOG_LEVEL", "WARNING").upper(),
    format="%(asctime)s %(levelname)s %(name)s: %(message)s",
)


def emit(obj: dict[str, Any]) -> None:
    """Writes one JSON object as one line on stdout (from any thread)."""
    line = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    with _emit_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def die(msg: str, code: int = 1) -> None:
    """Prints the reason on stderr and exits at once, whatever threads run."""
    try:
        sys.stderr.write(f"FAIL: {msg}\n")
        sys.stderr.flush()
        sys.stdout.flush()
    finally:
        os._exit(code)


def env(name: str, default: str | None = None) -> str | None:
    v = os.environ.get(name)
    return default if v is None or v == "" else v


def env_int(name: str, default: int | None) -> int | None:
    v = env(name)
    if v is None:
        return default
    try:
        return int(v)
    except ValueError:
        die(f"{name} must be an integer, got {v!r}")
    return None


def env_json(name: str, default: Any = None) -> Any:
    v = env(name)
    if v is None:
        return default
    try:
        return json.loads(v)
    except ValueError as e:
        die(f"{name} is not valid JSON: {e}")


def env_list(name: str, default: list[str]) -> list[str]:
    """Comma-separated list, blanks dropped; "-" means none."""
    v = env(name)
    if v is None:
        return default
    if v == "-":
        return []
    return [s.strip() for s in v.split(",") if s.strip()]


def deadline(default_ms: int) -> None:
    """Hard deadline for the whole script (TIMEOUT_MS overrides the default)."""
    ms = env_int("TIMEOUT_MS", default_ms)
    t = threading.Timer(ms / 1000.0, lambda: die(f"overall timeout after {ms} ms", 124))
    t.daemon = True
    t.start()


def engine_url() -> str:
    """The engine URL. The SDK takes it as an argument; only its OTel part reads III_URL."""
    url = env("III_URL")
    if not url:
        die("III_URL is not set")
    return url  # type: ignore[return-value]


def connect(**options: Any) -> III:
    """register_worker(III_URL, InitOptions(...)): blocks until the socket is open.

    The SDK itself honours OTEL_ENABLED and III_WORKER_NAME.
    """
    options.setdefault("invocation_timeout_ms", env_int("CALL_TIMEOUT_MS", 5000))
    return register_worker(engine_url(), InitOptions(**options))


def ready(iii: III) -> str:
    """Waits until the engine has processed everything this worker sent so far.

    worker_id is set by the first workerregistered, which the SDK reads only
    after it has written the replay and the metadata call; one synchronous
    round trip on the same socket then proves the engine has read every
    frame before it. Any answer counts, an error included.
    """
    while not iii.worker_id:
        if stopped():  # e.g. never registered: stop instead of waiting for the deadline
            emit({"event": "stopping", "reason": until_stopped()})
            shutdown_and_exit(iii)
        time.sleep(0.01)
    try:
        iii.trigger({"function_id": "engine::functions::list", "payload": {}})
    except InvocationError as e:
        if e.code == "TIMEOUT":
            raise
    return iii.worker_id  # type: ignore[return-value]


def error_json(e: BaseException) -> dict[str, Any]:
    """Plain JSON view of an exception from iii.trigger()."""
    return {
        "name": type(e).__name__,
        "code": getattr(e, "code", None),
        "message": getattr(e, "message", None) if isinstance(e, InvocationError) else str(e),
        "error_message": str(e),
        "function_id": getattr(e, "function_id", None),
        "stacktrace": getattr(e, "stacktrace", None),
    }


_stopped = threading.Event()
_stop_reason: list[str] = []


def _stop(reason: str) -> None:
    if not _stopped.is_set():
        _stop_reason.append(reason)
        _stopped.set()


def _watch_stdin() -> None:
    try:
        while sys.stdin.buffer.read(4096):
            pass
        _stop("stdin closed")
    except Exception:
        _stop("stdin error")


def watch_stop() -> None:
    """Starts watching for stdin EOF, SIGTERM and SIGINT (call from the main thread)."""
    signal.signal(signal.SIGTERM, lambda *_: _stop("SIGTERM"))
    signal.signal(signal.SIGINT, lambda *_: _stop("SIGINT"))
    if env("EXIT_ON_STDIN_EOF", "1") != "0":
        threading.Thread(target=_watch_stdin, daemon=True).start()


def stopped() -> bool:
    return _stopped.is_set()


def until_stopped(timeout: float | None = None) -> str | None:
    """Blocks until asked to stop and returns why; None if timeout passed first."""
    end = None if timeout is None else time.monotonic() + timeout
    while not _stopped.is_set():
        left = 0.2 if end is None else min(0.2, end - time.monotonic())
        if left <= 0:
            return None
        _stopped.wait(left)  # short waits so signal handlers run promptly
    return _stop_reason[0]


def shutdown_and_exit(iii: III | None, code: int = 0) -> None:
    """iii.shutdown() (rejects pending calls, closes the socket, stops the SDK's
    loop thread), then exits without waiting for other threads."""
    if iii is not None:
        iii.shutdown()
    emit({"event": "shutdown"})
    sys.stdout.flush()
    os._exit(code)


def run(main: Callable[[], None]) -> None:
    """Runs main(), turning any exception into exit 1 with the traceback on stderr."""
    watch_stop()
    try:
        main()
    except SystemExit:
        raise
    except BaseException:
        die(traceback.format_exc())
