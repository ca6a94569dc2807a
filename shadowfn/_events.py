"""structlog events, emitted from one background thread.

The caller's thread only appends to a bounded queue, so a slow, hanging or
raising structlog processor or sink can never delay or break a decorated call.
Each event runs in a copy of the context it was raised in, so processors such as
``structlog.contextvars.merge_contextvars`` see the caller's bound values.
"""

from __future__ import annotations

import contextvars
import itertools
import os
import threading
import time
import weakref
from collections.abc import Iterator
from typing import Any

import structlog

from ._background import BackgroundQueue

__all__ = ["emit", "flush", "RateLimiter"]

MAX_QUEUED = 10_000

_logger = structlog.get_logger("shadowfn")


EventItem = tuple[contextvars.Context, str, str, dict[str, Any]]


def _log(item: EventItem) -> None:
    context, level, event, fields = item
    context.run(getattr(_logger, level), event, **fields)


class _Emitter(BackgroundQueue[EventItem]):
    """The queue of structlog events; a failing processor or sink loses only its event."""

    def __init__(self) -> None:
        super().__init__("shadowfn-events", _log, max_queued=MAX_QUEUED)

    def emit(
        self, level: str, event: str, context: contextvars.Context | None, fields: dict[str, Any]
    ) -> None:
        self.put((context or contextvars.copy_context(), level, event, fields))


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


def count_failure() -> None:
    """Count an event that could not be built or queued."""
    _EMITTER.failed += 1


def emitter_counts() -> dict[str, int]:
    return {"dropped": _EMITTER.dropped, "failed": _EMITTER.failed}


class RateLimiter:
    """Allows one event per key per interval (seconds); thread-safe.

    A suppressed event, the common case, takes no lock: it is counted with
    ``next()`` on an ``itertools.count``, which is atomic under the GIL. A lock
    taken on every shed call made sixteen calling threads queue behind a holder
    that had lost the GIL, a p99 of 0.4 to 0.9 ms per call (benchmarks/bench_load.py).
    """

    def __init__(self, interval: float = 10.0) -> None:
        self._interval = interval
        self._reset()
        _LIMITERS.add(self)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._last: dict[object, float] = {}
        # Events seen per key, allowed or not, and the count at the last allowed one.
        self._seen: dict[object, Iterator[int]] = {}
        self._reported: dict[object, int] = {}

    def allow(self, key: object) -> int | None:
        """Return how many events were suppressed since the last allowed one, or None to suppress this one."""
        now = time.monotonic()
        seen = self._seen.get(key)
        last = self._last.get(key)
        if seen is not None and last is not None and now - last < self._interval:
            next(seen)
            return None

        with self._lock:
            seen = self._seen.setdefault(key, itertools.count())
            position = next(seen)
            last = self._last.get(key)
            if last is not None and now - last < self._interval:
                return None
            self._last[key] = now
            suppressed = position - self._reported.get(key, 0)
            self._reported[key] = position + 1
            return suppressed


_LIMITERS: weakref.WeakSet[RateLimiter] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # A child must not inherit a queue whose thread did not survive the fork, nor
    # a lock that another thread of the parent held at the moment of the fork.
    _EMITTER.reset()
    for limiter in list(_LIMITERS):
        limiter._reset()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
