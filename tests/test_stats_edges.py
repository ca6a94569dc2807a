"""Counters reset while a call is pending: its late outcome must not leak into the new period."""

from __future__ import annotations

import threading

from _support import country_name, poll

import shadowfn
from shadowfn import shadow
from shadowfn._executor import admission
from shadowfn._stats import registry


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
    assert poll(lambda: admission.pending == 0, 5)

    stats = lookup.shadow.stats
    assert stats.pending == 0
    assert stats.matched == 0
    assert stats.sampled == stats.outcomes + stats.pending
    assert lookup.shadow.report().compared == 0
