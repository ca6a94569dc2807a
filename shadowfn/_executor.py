"""The machinery that runs shadow work: a bounded pool of daemon threads, a deadline
timer, and a background event loop for coroutine candidates of sync primaries.

Every thread here is a daemon thread, so a candidate that never returns cannot
delay interpreter exit. ``concurrent.futures.ThreadPoolExecutor`` is not used
because it joins its workers at exit, which would wait for a hung candidate.
"""

from __future__ import annotations

import asyncio
import atexit
import heapq
import itertools
import os
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["admission", "bounded", "loop_thread", "pool", "timer", "tracker"]

DEFAULT_MAX_PENDING = 32


def bounded(seconds: float | None) -> float | None:
    """Clamp a wait to ``threading.TIMEOUT_MAX``, past which lock waits raise OverflowError.

    A longer ``timeout=``, strict-mode grace or drain timeout is accepted, and
    every wait whose length comes from such a setting goes through here, so
    none of them can raise or kill a shadowfn thread.
    """
    return None if seconds is None else min(seconds, threading.TIMEOUT_MAX)


class WorkerPool:
    """A pool of daemon threads that grows on demand up to ``max_workers``.

    Admission keeps the number of pending shadow calls at or below the number of
    workers, and each pending call has at most one job queued or running at a
    time, so a job never waits behind a hung candidate.
    """

    def __init__(self, max_workers: int) -> None:
        self.max_workers = max_workers
        self._reset()

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._jobs: list[Callable[[], None]] = []
        self._has_jobs = threading.Condition(self._lock)
        self._threads = 0
        self._idle = 0

    def submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            self._jobs.append(job)
            if self._idle > 0:
                # The woken worker stops counting as idle now, not when it runs:
                # otherwise a second job submitted before it runs would wake no
                # one and wait behind a busy, possibly hung, worker.
                self._idle -= 1
                self._has_jobs.notify()
                return
            if self._threads < self.max_workers:
                self._threads += 1
                start = True
            else:
                start = False
        if start:
            try:
                threading.Thread(target=self._work, name="shadowfn-worker", daemon=True).start()
            except BaseException:
                # No thread was started: forget it and the job, so neither waits forever.
                with self._lock:
                    self._threads -= 1
                    if job in self._jobs:
                        self._jobs.remove(job)
                raise

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._jobs:
                    self._idle += 1
                    self._has_jobs.wait()
                job = self._jobs.pop(0)
            # Jobs are shadowfn's own functions, which catch everything the
            # candidate and the hooks raise. This is the last guard that keeps
            # the worker alive, so the pool never shrinks.
            try:
                job()
            except BaseException:
                pass
            # Drop the finished job, so an idle worker keeps no call alive.
            del job

    @property
    def threads(self) -> int:
        return self._threads


class Timer:
    """Runs short callbacks at deadlines, on one daemon thread."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        # Entries are [deadline, sequence, callback]; a cancelled entry's callback is None.
        self._heap: list[list[Any]] = []
        self._cancelled = 0
        self._sequence = itertools.count()
        self._thread: threading.Thread | None = None

    def call_at(self, deadline: float, callback: Callable[[], None]) -> list[Any]:
        """Call ``callback`` on the timer thread at ``deadline`` (``time.monotonic()`` seconds).

        Returns the entry to pass to :meth:`cancel`.
        """
        entry = [deadline, next(self._sequence), callback]
        with self._lock:
            heapq.heappush(self._heap, entry)
            if self._thread is None:
                # Set only once started, so a failed start is retried on the next call.
                thread = threading.Thread(target=self._run, name="shadowfn-timer", daemon=True)
                thread.start()
                self._thread = thread
            if self._heap[0] is entry:
                self._changed.notify()

        return entry

    def cancel(self, entry: list[Any]) -> None:
        """Drop a deadline that is no longer needed, so it holds no memory until it passes.

        Cancelled entries are removed in bulk once they are most of the heap, which
        keeps the heap within about twice the calls still waiting for a deadline.
        """
        with self._lock:
            if entry[2] is None:
                return
            entry[2] = None
            self._cancelled += 1
            if self._cancelled > 64 and self._cancelled * 2 > len(self._heap):
                self._heap = [kept for kept in self._heap if kept[2] is not None]
                heapq.heapify(self._heap)
                self._cancelled = 0

    def _run(self) -> None:
        while True:
            with self._lock:
                while True:
                    if not self._heap:
                        self._changed.wait()
                        continue
                    wait = self._heap[0][0] - time.monotonic()
                    if wait <= 0:
                        break
                    self._changed.wait(bounded(wait))
                entry = heapq.heappop(self._heap)
                callback = entry[2]
                if callback is None:
                    self._cancelled -= 1
                    continue
                # A later cancel() of a fired entry must not count it as still in the heap.
                entry[2] = None
            try:
                callback()
            except BaseException:
                # One failed callback must not stop every later deadline.
                pass


class Admission:
    """Counts pending shadow calls and sheds new ones past the global and per-function bounds."""

    def __init__(self, max_pending: int) -> None:
        self.max_pending = max_pending
        self._reset()

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._pending = 0
        self._per_function: dict[str, int] = {}

    def try_acquire(self, name: str, limit: int | None) -> bool:
        with self._lock:
            if self._pending >= self.max_pending:
                return False
            current = self._per_function.get(name, 0)
            if limit is not None and current >= limit:
                return False
            self._pending += 1
            self._per_function[name] = current + 1
            return True

    def release(self, name: str) -> None:
        with self._lock:
            self._pending -= 1
            self._per_function[name] -= 1

    @property
    def pending(self) -> int:
        return self._pending


class Tracker:
    """Counts sampled calls still waiting for their outcome, for ``drain()``."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._settled = threading.Condition(self._lock)
        self._open = 0

    def opened(self) -> None:
        with self._lock:
            self._open += 1

    def closed(self) -> None:
        with self._lock:
            self._open -= 1
            if self._open == 0:
                self._settled.notify_all()

    @property
    def open(self) -> int:
        return self._open

    def wait(self, timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._open > 0:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._settled.wait(bounded(remaining))
        return True


class LoopThread:
    """A background event loop, started on first use, for coroutine candidates of sync primaries."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="shadowfn-loop", daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def shutdown(self, timeout: float = 1.0) -> None:
        """Cancel the loop's tasks and stop it; waits at most ``timeout`` seconds."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None or loop.is_closed():
            return

        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        def stop(_: Any) -> None:
            loop.stop()

        try:
            future = asyncio.run_coroutine_threadsafe(cancel_all(), loop)
            future.add_done_callback(stop)
        except RuntimeError:
            return
        thread.join(timeout)
        if not thread.is_alive():
            loop.close()

    def submit(
        self, start: Callable[[asyncio.AbstractEventLoop, set[asyncio.Task[None]]], None], context: Any
    ) -> None:
        """Call ``start(loop, tasks)`` on the background loop's thread, inside ``context``.

        ``start`` creates its task on ``loop`` and keeps it in ``tasks`` until it ends.
        """
        loop = self.loop()
        loop.call_soon_threadsafe(start, loop, _BACKGROUND_TASKS, context=context)


_BACKGROUND_TASKS: set[asyncio.Task[None]] = set()

pool = WorkerPool(DEFAULT_MAX_PENDING)
timer = Timer()
admission = Admission(DEFAULT_MAX_PENDING)
tracker = Tracker()
loop_thread = LoopThread()

atexit.register(loop_thread.shutdown)


def configure(max_pending: int) -> None:
    """Set the global bound on pending shadow calls, which is also the worker count."""
    admission.max_pending = max_pending
    pool.max_workers = max_pending


def _after_fork_in_child() -> None:
    # Threads do not survive fork(); start again from empty state. Calls that
    # were pending in the parent finish there, not here.
    pool._reset()
    timer._reset()
    admission._reset()
    tracker._reset()
    loop_thread._reset()
    _BACKGROUND_TASKS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
