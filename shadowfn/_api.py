"""Module-level functions: counters, draining and process-wide settings."""

from __future__ import annotations

import asyncio
import atexit
import time

from . import _events, _metrics
from ._executor import configure as _configure_executor
from ._executor import tracker
from ._stats import FunctionStats, registry

__all__ = ["adrain", "configure", "drain", "stats"]


def stats() -> dict[str, FunctionStats]:
    """Return a snapshot of every shadowed function's counters, by function name."""
    return registry.snapshot()


def drain(timeout: float | None = None) -> bool:
    """Wait until every sampled call has its outcome and its events and metrics are handed on.

    Meant for tests and shutdown. Do not call it from inside a running event loop
    that runs coroutine candidates: it blocks that loop; use :func:`adrain`.

    Returns:
        True when everything finished, False when ``timeout`` seconds passed first.

    Raises:
        ValueError: ``timeout`` is not None or a number of seconds >= 0.
    """
    _check_timeout(timeout)
    deadline = None if timeout is None else time.monotonic() + timeout
    if not tracker.wait(timeout):
        return False
    remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
    if not _events.flush(remaining):
        return False
    remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
    return _metrics.flush(remaining)


async def adrain(timeout: float | None = None) -> bool:
    """Await every sampled call's outcome without blocking the running event loop.

    Returns:
        True when everything finished, False when ``timeout`` seconds passed first.

    Raises:
        ValueError: ``timeout`` is not None or a number of seconds >= 0.
    """
    _check_timeout(timeout)
    deadline = None if timeout is None else time.monotonic() + timeout
    while tracker.open > 0 or not _events.flush(0) or not _metrics.flush(0):
        if deadline is not None and time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.002)
    return True


def _check_timeout(timeout: float | None) -> None:
    if timeout is None:
        return
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout >= 0:
        raise ValueError(f"timeout must be None or a number of seconds >= 0, got {timeout!r}")


def configure(*, max_pending: int | None = None, log_capacity: int | None = None) -> None:
    """Set process-wide limits.

    Args:
        max_pending: The maximum number of shadow calls pending at once across all functions,
            which is also the size of the worker pool (32 by default). Calls past
            it are shed.
        log_capacity: The number of entries ``shadowfn.log`` keeps (1000 by default).

    Raises:
        ValueError: a limit is not a positive int.
    """
    from ._control import divergence_log

    # Check both limits before setting either, so a rejected call changes nothing.
    for parameter, value in (("max_pending", max_pending), ("log_capacity", log_capacity)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"{parameter} must be a positive int, got {value!r}")

    if max_pending is not None:
        _configure_executor(max_pending)
    if log_capacity is not None:
        if isinstance(log_capacity, bool) or not isinstance(log_capacity, int) or log_capacity < 1:
            raise ValueError(f"log_capacity must be a positive int, got {log_capacity!r}")
        divergence_log.capacity = log_capacity


# At exit, a call made just before the end of a script should still be logged, but a
# hung candidate must not hold the process. So shadowfn waits while outcomes keep
# arriving. It stops once none has arrived for EXIT_STALL_S, because the calls left
# are stuck, or after EXIT_OUTCOME_WAIT_S in all. Then it flushes queued events.
EXIT_OUTCOME_WAIT_S = 1.0
EXIT_STALL_S = 0.15
EXIT_EVENT_WAIT_S = 0.3


def _finish_at_exit() -> None:
    deadline = time.monotonic() + EXIT_OUTCOME_WAIT_S
    while tracker.open and time.monotonic() < deadline:
        before = tracker.open
        tracker.wait(EXIT_STALL_S)
        if tracker.open >= before:
            break
    _events.flush(EXIT_EVENT_WAIT_S)


atexit.register(_finish_at_exit)
