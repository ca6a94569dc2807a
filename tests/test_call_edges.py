"""Values and sinks that raise BaseException subclasses while shadowfn snapshots or logs them."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pycountry
import pytest
import structlog
from _support import country_name, country_name_upper

import shadowfn
from shadowfn import shadow


class ShutdownProxy:
    """A lazy proxy whose unloaded attribute raises SystemExit, as a loader may during shutdown."""

    __slots__ = ("alpha_2", "name")
    error: type[BaseException] = SystemExit

    def __init__(self, alpha_2: str) -> None:
        self.alpha_2 = alpha_2

    def __getattr__(self, attribute: str) -> Any:
        raise self.error(f"cannot load {attribute} during shutdown")


class InterruptedProxy(ShutdownProxy):
    """A lazy proxy whose load is interrupted by Ctrl-C."""

    __slots__ = ()
    error = KeyboardInterrupt


def _live_workers() -> int:
    return len([thread for thread in threading.enumerate() if thread.name == "shadowfn-worker"])


def test_candidate_value_raising_systemexit_keeps_workers() -> None:
    @shadow(ShutdownProxy, timeout=1.0)
    def lookup(alpha_2: str) -> str:
        return country_name(alpha_2)

    codes = [country.alpha_2 for country in pycountry.countries][:40]
    for code in codes:
        assert lookup(code) == country_name(code)
        assert shadowfn.drain(timeout=5)

    # Snapshotting the candidate's value failed: a comparison error, not a crash.
    assert lookup.shadow.stats.compare_errors == len(codes)
    assert _live_workers() >= 1

    @shadow(country_name, timeout=1.0)
    def healthy(alpha_2: str) -> str:
        return country_name(alpha_2)

    assert healthy("SE") == "Sweden"
    assert shadowfn.drain(timeout=5)
    assert healthy.shadow.stats.matched == 1


def test_primary_value_raising_systemexit_reaches_caller() -> None:
    @shadow(ShutdownProxy, timeout=1.0)
    def load(alpha_2: str) -> ShutdownProxy:
        return ShutdownProxy(alpha_2)

    result = load("NO")

    assert isinstance(result, ShutdownProxy)
    assert result.alpha_2 == "NO"
    assert shadowfn.drain(timeout=5)
    assert load.shadow.stats.compare_errors == 1


def test_primary_value_interrupt_is_still_counted() -> None:
    @shadow(InterruptedProxy, timeout=1.0)
    def load(alpha_2: str) -> InterruptedProxy:
        return InterruptedProxy(alpha_2)

    # Ctrl-C during the snapshot may be the user's, so it is not swallowed.
    with pytest.raises(KeyboardInterrupt):
        load("DK")

    assert shadowfn.drain(timeout=5)
    # The call is abandoned before the interrupt goes on, and counted as cancelled.
    assert load.shadow.stats.cancelled == 1


@pytest.fixture
def sink_raising_systemexit() -> Iterator[None]:
    def exits(logger: Any, method: str, event_dict: Any) -> Any:
        raise SystemExit("log handler closed")

    structlog.configure(processors=[exits])
    try:
        yield
    finally:
        structlog.reset_defaults()


def test_log_sink_raising_systemexit_keeps_events_flowing(sink_raising_systemexit: None) -> None:
    @shadow(country_name_upper, timeout=1.0)
    def lookup(alpha_2: str) -> str:
        return country_name(alpha_2)

    for code in ("FI", "IS"):
        assert lookup(code) == country_name(code)
        assert shadowfn.drain(timeout=5)

    assert lookup.shadow.stats.diverged == 2
