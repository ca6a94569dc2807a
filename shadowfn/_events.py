"""structlog events, emitted from one background thread.

The caller's thread only appends to a bounded queue, so a slow, hanging or
raising structlog processor or sink can never delay or break a decorated call.
Each event runs in a copy of the context it was raised in, so processors such as
``structlog.contextvars.merge_contextvars`` see the caller's bound values.
"""

from __future__ import annotations

import collections
import contextvars
import os
import threading
import time
from typing import Any

import structlog

__all__ = ["emit", "flush", "RateLimiter"]

MAX_QUEUED = 10_000

_logger = structlog.get_logger("shadowfn")


class _Emitter:
    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._queue: collections.deque[tuple[contextvars.Context, str, str, dict[str, Any]]] = (
            collections.deque()
        )
        self._busy = False
        self._thread: threading.Thread | None = None
        self.dropped = 0
        self.failed = 0

    def emit(
        self, level: str, event: str, context: contextvars.Context | None, fields: dict[str, Any]
    ) -> None:
        with self._lock:
            if len(self._queue) >= MAX_QUEUED:
                self.dropped += 1
                return
            self._queue.append((context or contextvars.copy_context(), level, event, fields))
            if self._thread is None:
                # Set only once started, so a failed start is retried on the next call.
                thread = threading.Thread(target=self._run, name="shadowfn-events", daemon=True)
                thread.start()
                self._thread = thread
            self._ready.notify()

    def flush(self, timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._queue or self._busy:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._ready.wait(remaining if remaining is None else min(remaining, 0.05))
        return True

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._queue:
                    self._busy = False
                    self._ready.notify_all()
                    self._ready.wait()
                context, level, event, fields = self._queue.popleft()
                self._busy = True
            try:
                context.run(getattr(_logger, level), event, **fields)
            except BaseException:
                # A failing processor or sink, even one raising SystemExit, loses
                # this event only; count it.
                self.failed += 1


_EMITTER = _Emitter()


def emit(level: str, event: str, context: contextvars.Context | None = None, **fields: Any) -> None:
    """Queue one structlog event; never blocks on, or raises from, structlog."""
    try:
        _EMITTER.emit(level, event, context, fields)
    except Exception:
        _EMITTER.failed += 1


def flush(timeout: float | None = None) -> bool:
    """Wait until every queued event has been handed to structlog; False on timeout."""
    return _EMITTER.flush(timeout)


def emitter_counts() -> dict[str, int]:
    return {"dropped": _EMITTER.dropped, "failed": _EMITTER.failed}


class RateLimiter:
    """Allows one event per key per interval (seconds); thread-safe."""

    def __init__(self, interval: float = 10.0) -> None:
        self._interval = interval
        self._lock = threading.Lock()
        self._last: dict[object, float] = {}
        self._suppressed: dict[object, int] = {}

    def allow(self, key: object) -> int | None:
        """Return how many events were suppressed since the last allowed one, or None to suppress this one."""
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self._interval:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return None
            self._last[key] = now
            return self._suppressed.pop(key, 0)


if hasattr(os, "register_at_fork"):
    # A child must not inherit a queue whose thread did not survive the fork.
    os.register_at_fork(after_in_child=_EMITTER._reset)
