"""Counters reset while a call is pending: its late outcome must not leak into the new period."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pycountry

import shadowfn
from shadowfn import shadow
from shadowfn._executor import admission
from shadowfn._stats import registry


def country_name(alpha_2: str) -> str:
    return pycountry.countries.get(alpha_2=alpha_2).name


def _poll(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    pause = threading.Event()
    while time.monotonic() < deadline:
        if condition():
            return True
        pause.wait(0.01)
    return condition()


def test_reset_drops_late_outcome_of_pending_call() -> None:
    release = threading.Event()

    def waits(alpha_2: str) -> str:
        release.wait(10)
        return country_name(alpha_2)

    @shadow(waits, timeout=5.0)
    def lookup(alpha_2: str) -> str:
        return country_name(alpha_2)

    try:
        assert lookup("AT") == "Austria"
        # What shadowfn_isolated does between tests when drain() runs out of time.
        registry.reset()
    finally:
        release.set()
    assert shadowfn.drain(timeout=5)
    assert _poll(lambda: admission.pending == 0, 5)

    stats = lookup.shadow.stats
    assert stats.pending == 0
    assert stats.matched == 0
    assert stats.sampled == stats.outcomes + stats.pending
    assert lookup.shadow.report().compared == 0
