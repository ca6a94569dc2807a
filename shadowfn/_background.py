"""A bounded queue drained by one daemon thread, for work kept off the caller's path.

structlog events and OpenTelemetry measurements both leave through one of these, so
a slow, hanging or raising sink delays or breaks nothing but its own thread.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["BackgroundQueue"]

T = TypeVar("T")

MAX_QUEUED = 10_000


class BackgroundQueue(Generic[T]):
    """Hands queued items to ``handle`` on one daemon thread, started on first use.

    ``put`` never blocks: past ``max_queued`` items it drops the new one and counts
    it in ``dropped``. An item whose ``handle`` raises, even ``SystemExit``, is
    counted in ``failed`` and passed to ``on_failure``; the thread goes on, because
    a dead thread would leave every later item queued. Thread-safe.
    """

    def __init__(
        self,
        name: str,
        handle: Callable[[T], None],
        on_failure: Callable[[BaseException], None] | None = None,
        max_queued: int = MAX_QUEUED,
    ) -> None:
        self._name = name
        self._handle = handle
        self._on_failure = on_failure
        self._max_queued = max_queued
        self.reset()

    def reset(self) -> None:
        """Start again empty, as a forked child must: its parent's thread and locks are gone."""
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._queue: collections.deque[T] = collections.deque()
        self._busy = False
        self._thread: threading.Thread | None = None
        self.dropped = 0
        self.failed = 0

    def put(self, item: T) -> None:
        """Queue ``item``; raises only when no thread can be started (the item stays queued)."""
        with self._lock:
            if len(self._queue) >= self._max_queued:
                self.dropped += 1
                return
            self._queue.append(item)
            if self._thread is None:
                # Set only once started, so a failed start is retried on the next put.
                thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                thread.start()
                self._thread = thread
            self._ready.notify()

    def flush(self, timeout: float | None) -> bool:
        """Wait until every queued item has been handled; False when ``timeout`` seconds pass first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._queue or self._busy:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._ready.wait(0.05 if remaining is None else min(remaining, 0.05))
        return True

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._queue:
                    self._busy = False
                    self._ready.notify_all()
                    self._ready.wait()
                item = self._queue.popleft()
                self._busy = True
            try:
                self._handle(item)
            except BaseException as exc:
                self.failed += 1
                if self._on_failure is not None:
                    try:
                        self._on_failure(exc)
                    except BaseException:
                        pass
