"""OpenTelemetry metrics: what is exported, and that a broken SDK never reaches the caller."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from typing import Any

import pycountry
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader, NumberDataPoint
from structlog.testing import capture_logs

import shadowfn
from shadowfn import shadow
from shadowfn._metrics import recorder_counts


def country_v1(alpha_2: str) -> dict[str, Any]:
    country = pycountry.countries.get(alpha_2=alpha_2)
    return {"alpha_3": country.alpha_3, "name": country.name}


def country_v2(alpha_2: str) -> dict[str, Any]:
    found = country_v1(alpha_2)
    if alpha_2 == "FR":
        found["name"] = "French Republic"
    return found


@pytest.fixture
def reader() -> Iterator[InMemoryMetricReader]:
    metric_reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[metric_reader])
    shadowfn.enable_metrics(meter_provider=provider)
    try:
        yield metric_reader
    finally:
        shadowfn.disable_metrics()
        provider.shutdown()


def collect(metric_reader: InMemoryMetricReader) -> dict[str, Any]:
    """Return ``{metric name: (unit, {(function, outcome): data point})}``."""
    data = metric_reader.get_metrics_data()
    assert data is not None
    found: dict[str, Any] = {}
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            assert scope_metrics.scope.name == "shadowfn"
            for metric in scope_metrics.metrics:
                points = {
                    (point.attributes["function"], point.attributes["outcome"]): point
                    for point in metric.data.data_points
                    if point.attributes is not None
                }
                found[metric.name] = (metric.unit, points)
    return found


def test_outcomes_and_durations_exported(reader: InMemoryMetricReader) -> None:
    @shadow(country_v2, name="countries.lookup")
    def lookup(alpha_2: str) -> dict[str, Any]:
        time.sleep(0.002)
        return country_v1(alpha_2)

    for code in ("DE", "FR", "IT", "FR"):
        lookup(code)
    assert shadowfn.drain(timeout=5)

    metrics = collect(reader)
    unit, outcomes = metrics["shadowfn.outcomes"]
    assert unit == "{call}"
    matched = outcomes[("countries.lookup", "matched")]
    diverged = outcomes[("countries.lookup", "diverged")]
    assert isinstance(matched, NumberDataPoint)
    assert isinstance(diverged, NumberDataPoint)
    assert matched.value == 2
    assert diverged.value == 2

    unit, primary = metrics["shadowfn.primary.duration"]
    assert unit == "ms"
    point = primary[("countries.lookup", "matched")]
    assert isinstance(point, HistogramDataPoint)
    assert point.count == 2
    assert point.min >= 2.0
    assert point.max < 1000

    unit, candidate = metrics["shadowfn.candidate.duration"]
    assert unit == "ms"
    assert candidate[("countries.lookup", "diverged")].count == 2


def test_shed_and_timeout_outcomes_exported(reader: InMemoryMetricReader) -> None:
    release = threading.Event()

    def hangs(alpha_2: str) -> dict[str, Any]:
        release.wait(10)
        return country_v1(alpha_2)

    @shadow(hangs, name="countries.slow", timeout=0.05, max_pending=1)
    def lookup(alpha_2: str) -> dict[str, Any]:
        return country_v1(alpha_2)

    try:
        lookup("DE")
        lookup("FR")
        # The timed-out call settles while its candidate still keeps the slot.
        assert shadowfn.drain(timeout=5)
    finally:
        release.set()

    metrics = collect(reader)
    _, outcomes = metrics["shadowfn.outcomes"]
    assert outcomes[("countries.slow", "timeouts")].value == 1
    assert outcomes[("countries.slow", "shed")].value == 1
    _, primary = metrics["shadowfn.primary.duration"]
    assert primary[("countries.slow", "timeouts")].count == 1
    assert ("countries.slow", "shed") not in primary
    # A candidate that did not finish has no duration to record.
    assert "shadowfn.candidate.duration" not in metrics


def test_no_metrics_without_enable() -> None:
    metric_reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[metric_reader])

    @shadow(country_v2)
    def lookup(alpha_2: str) -> dict[str, Any]:
        return country_v1(alpha_2)

    lookup("FR")
    assert shadowfn.drain(timeout=5)

    data = metric_reader.get_metrics_data()
    assert data is None or not data.resource_metrics
    provider.shutdown()


def test_opentelemetry_not_imported_without_enable() -> None:
    script = textwrap.dedent(
        """
        import sys
        import shadowfn
        from shadowfn import shadow

        def v2(x):
            return x + 1

        @shadow(v2, noise_rate=100, pure=True, tolerance=1e-9)
        def v1(x):
            return x

        with shadowfn.strict():
            try:
                v1(1)
            except shadowfn.DivergenceError:
                pass
        v1(2)
        assert shadowfn.drain(timeout=5)
        loaded = sorted(name for name in sys.modules if name.startswith("opentelemetry"))
        print(loaded)
        """
    )

    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.splitlines()[-1] == "[]"


class _FailingInstrument:
    def __init__(self, release: threading.Event | None) -> None:
        self.release = release

    def add(self, amount: float, attributes: Any = None) -> None:
        self._fail()

    def record(self, amount: float, attributes: Any = None) -> None:
        self._fail()

    def _fail(self) -> None:
        if self.release is not None:
            self.release.wait(10)
        raise RuntimeError("metrics backend unavailable")


class _BrokenMeter:
    def __init__(self, release: threading.Event | None) -> None:
        self.release = release

    def create_counter(self, name: str, **options: Any) -> _FailingInstrument:
        return _FailingInstrument(self.release)

    def create_histogram(self, name: str, **options: Any) -> _FailingInstrument:
        return _FailingInstrument(self.release)


class BrokenMeterProvider:
    """A meter provider whose instruments raise, after blocking on ``release`` when one is given."""

    def __init__(self, release: threading.Event | None = None) -> None:
        self.release = release

    def get_meter(self, name: str, version: str | None = None) -> _BrokenMeter:
        return _BrokenMeter(self.release)


def test_failing_sdk_does_not_reach_caller() -> None:
    returned: list[dict[str, Any]] = []

    @shadow(country_v2)
    def lookup(alpha_2: str) -> dict[str, Any]:
        result = country_v1(alpha_2)
        returned.append(result)
        return result

    failed_before = recorder_counts()["failed"]
    shadowfn.enable_metrics(meter_provider=BrokenMeterProvider())
    try:
        with capture_logs() as logs:
            result = lookup("FR")
            assert shadowfn.drain(timeout=5)
    finally:
        shadowfn.disable_metrics()

    assert result is returned[0]
    assert lookup.shadow.stats.diverged == 1
    assert recorder_counts()["failed"] > failed_before
    failures = [event for event in logs if event["event"] == "shadow.metrics_failed"]
    assert len(failures) <= 1
    if failures:
        assert failures[0]["error"] == "RuntimeError: metrics backend unavailable"


def test_hanging_sdk_does_not_delay_caller() -> None:
    release = threading.Event()
    returned: list[dict[str, Any]] = []

    @shadow(country_v1)
    def lookup(alpha_2: str) -> dict[str, Any]:
        result = country_v1(alpha_2)
        returned.append(result)
        return result

    shadowfn.enable_metrics(meter_provider=BrokenMeterProvider(release))
    try:
        started = time.monotonic()
        results = [lookup(code) for code in ("DE", "FR", "IT", "ES")]
        elapsed = time.monotonic() - started
        assert shadowfn.drain(timeout=0.5) is False
    finally:
        shadowfn.disable_metrics()
        release.set()

    assert results == returned
    assert all(result is original for result, original in zip(results, returned, strict=True))
    assert elapsed < 0.3
    assert shadowfn.drain(timeout=10)
    assert lookup.shadow.stats.matched == 4


def test_strict_mode_with_hanging_sdk_returns_result() -> None:
    release = threading.Event()

    @shadow(country_v1)
    def lookup(alpha_2: str) -> dict[str, Any]:
        return country_v1(alpha_2)

    shadowfn.enable_metrics(meter_provider=BrokenMeterProvider(release))
    try:
        started = time.monotonic()
        with shadowfn.strict():
            result = lookup("DE")
        elapsed = time.monotonic() - started
    finally:
        shadowfn.disable_metrics()
        release.set()

    assert result == {"alpha_3": "DEU", "name": "Germany"}
    assert elapsed < 0.5
    assert shadowfn.drain(timeout=10)


def test_invalid_meter_provider_rejected() -> None:
    with pytest.raises(TypeError) as caught:
        shadowfn.enable_metrics(meter_provider="prometheus")

    message = str(caught.value)
    assert "meter_provider must be an OpenTelemetry MeterProvider" in message
    assert "got 'prometheus' (str)" in message


def test_enable_metrics_uses_global_provider() -> None:
    from opentelemetry import metrics

    shadowfn.enable_metrics()
    try:
        assert metrics.get_meter_provider() is not None
    finally:
        shadowfn.disable_metrics()
