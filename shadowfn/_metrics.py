"""OpenTelemetry metrics of shadow outcomes and durations, off by default.

Nothing here imports ``opentelemetry`` until :func:`enable_metrics` is called.
Recording then works like the structlog events. The settling thread (or the
caller's thread, for calls that are shed or unkeyable) only appends to a bounded
queue. One daemon thread hands the measurements to the metrics SDK, so a slow,
hanging or raising SDK cannot delay or break a decorated call.
"""

from __future__ import annotations

import collections
import os
import threading
import time
from typing import Any

from . import _events

__all__ = ["disable_metrics", "enable_metrics", "flush", "record", "recorder_counts"]

MAX_QUEUED = 10_000

OUTCOMES_METRIC = "shadowfn.outcomes"
PRIMARY_DURATION_METRIC = "shadowfn.primary.duration"
CANDIDATE_DURATION_METRIC = "shadowfn.candidate.duration"

_failure_warnings = _events.RateLimiter(interval=60.0)


class _Instruments:
    def __init__(self, meter: Any) -> None:
        self.outcomes = meter.create_counter(
            OUTCOMES_METRIC,
            unit="{call}",
            description="Sampled calls of shadowed functions, by function and outcome",
        )
        self.primary = meter.create_histogram(
            PRIMARY_DURATION_METRIC,
            unit="ms",
            description="Run time of the primary on sampled calls, in milliseconds",
        )
        self.candidate = meter.create_histogram(
            CANDIDATE_DURATION_METRIC,
            unit="ms",
            description="Run time of the candidate on sampled calls, in milliseconds",
        )


Measurement = tuple[str, str, float | None, float | None]


class _Recorder:
    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._queue: collections.deque[tuple[_Instruments, Measurement]] = collections.deque()
        self._busy = False
        self._thread: threading.Thread | None = None
        # Read without the lock on every settlement: a plain attribute read.
        self.instruments: _Instruments | None = None
        self.dropped = 0
        self.failed = 0

    def record(self, measurement: Measurement) -> None:
        instruments = self.instruments
        if instruments is None:
            return
        with self._lock:
            if len(self._queue) >= MAX_QUEUED:
                self.dropped += 1
                return
            self._queue.append((instruments, measurement))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="shadowfn-metrics", daemon=True)
                self._thread.start()
            self._ready.notify()

    def flush(self, timeout: float | None) -> bool:
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
                instruments, measurement = self._queue.popleft()
                self._busy = True
            try:
                _export(instruments, measurement)
            except BaseException as exc:
                # BaseException too: an exporter's SystemExit must not end this thread.
                self.failed += 1
                suppressed = _failure_warnings.allow("metrics")
                if suppressed is not None:
                    _events.emit(
                        "error",
                        "shadow.metrics_failed",
                        None,
                        error=f"{type(exc).__qualname__}: {exc}",
                        suppressed=suppressed,
                    )


def _export(instruments: _Instruments, measurement: Measurement) -> None:
    function, outcome, primary_ms, candidate_ms = measurement
    attributes = {"function": function, "outcome": outcome}
    instruments.outcomes.add(1, attributes)
    if primary_ms is not None:
        instruments.primary.record(primary_ms, attributes)
    if candidate_ms is not None:
        instruments.candidate.record(candidate_ms, attributes)


_RECORDER = _Recorder()


def enable_metrics(meter_provider: Any = None) -> None:
    """Export shadow outcomes and durations through the OpenTelemetry metrics API.

    Needs the ``otel`` extra (``pip install 'shadowfn[otel]'``); until this is
    called, shadowfn does not import ``opentelemetry``. It creates, on the meter
    ``shadowfn``:

    - ``shadowfn.outcomes``, a counter of sampled calls;
    - ``shadowfn.primary.duration`` and ``shadowfn.candidate.duration``,
      histograms in milliseconds, recorded when that side finished;

    all with the attributes ``function`` (the shadowed function's name) and
    ``outcome`` (``matched``, ``diverged``, ``timeouts``, ``shed``, ``unkeyable``,
    ``uncopyable``, ``cancelled``, ``compare_errors``, ``internal_errors``, the
    names ``shadowfn.stats()`` uses).

    Measurements are queued when a call settles and handed to the SDK on a
    background thread. An SDK that raises loses that measurement, never the
    call: the failure is counted and logged as ``shadow.metrics_failed`` at
    most once a minute. Past 10,000 queued measurements, new ones are dropped.

    Args:
        meter_provider: The ``MeterProvider`` to use; None for the global one
            (``opentelemetry.metrics.get_meter_provider()``).

    Raises:
        ImportError: ``opentelemetry-api`` is not installed; the message names the extra.
        TypeError: ``meter_provider`` has no ``get_meter`` method.
    """
    if meter_provider is None:
        try:
            from opentelemetry import metrics
        except ImportError as exc:
            raise ImportError(
                "shadowfn metrics need the OpenTelemetry API: pip install 'shadowfn[otel]'"
            ) from exc
        meter_provider = metrics.get_meter_provider()
    elif not callable(getattr(meter_provider, "get_meter", None)):
        raise TypeError(
            "meter_provider must be an OpenTelemetry MeterProvider (an object with get_meter()) or None, "
            f"got {meter_provider!r} ({type(meter_provider).__name__})"
        )
    from . import __version__

    meter = meter_provider.get_meter("shadowfn", __version__)
    _RECORDER.instruments = _Instruments(meter)


def disable_metrics() -> None:
    """Stop exporting metrics; measurements already queued are still handed to the SDK."""
    _RECORDER.instruments = None


def record(
    function: str, outcome: str, primary_ms: float | None = None, candidate_ms: float | None = None
) -> None:
    """Queue one settled call for export; a no-op unless metrics are enabled. Never raises."""
    if _RECORDER.instruments is None:
        return
    try:
        _RECORDER.record((function, outcome, primary_ms, candidate_ms))
    except Exception:
        _RECORDER.failed += 1


def flush(timeout: float | None = None) -> bool:
    """Wait until every queued measurement has been handed to the SDK; False on timeout."""
    return _RECORDER.flush(timeout)


def recorder_counts() -> dict[str, int]:
    """Return how many measurements were dropped (queue full) or failed (SDK raised)."""
    return {"dropped": _RECORDER.dropped, "failed": _RECORDER.failed}


if hasattr(os, "register_at_fork"):
    # A child must not inherit a queue whose thread did not survive the fork.
    def _after_fork_in_child() -> None:
        instruments = _RECORDER.instruments
        _RECORDER._reset()
        _RECORDER.instruments = instruments

    os.register_at_fork(after_in_child=_after_fork_in_child)
