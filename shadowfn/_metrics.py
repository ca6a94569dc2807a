"""OpenTelemetry metrics of shadow outcomes and durations, off by default.

Nothing here imports ``opentelemetry`` until :func:`enable_metrics` is called.
Recording then works like the structlog events. The settling thread (or the
caller's thread, for calls that are shed or unkeyable) only appends to a bounded
queue. One daemon thread hands the measurements to the metrics SDK, so a slow,
hanging or raising SDK cannot delay or break a decorated call.
"""

from __future__ import annotations

import os
from typing import Any

from . import _events
from ._background import BackgroundQueue

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


class _Recorder(BackgroundQueue[tuple[_Instruments, Measurement]]):
    """The queue of measurements; an SDK that raises loses only that measurement."""

    def __init__(self) -> None:
        super().__init__("shadowfn-metrics", _export_item, on_failure=_warn_failure, max_queued=MAX_QUEUED)
        # Read without the lock on every settlement: a plain attribute read.
        self.instruments: _Instruments | None = None

    def record(self, measurement: Measurement) -> None:
        instruments = self.instruments
        if instruments is not None:
            self.put((instruments, measurement))


def _export_item(item: tuple[_Instruments, Measurement]) -> None:
    _export(*item)


def _warn_failure(exc: BaseException) -> None:
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
        _RECORDER.reset()

    os.register_at_fork(after_in_child=_after_fork_in_child)
