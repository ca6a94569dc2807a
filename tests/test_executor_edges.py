"""The deadline timer under long timeouts: settled calls leave nothing behind until their deadline."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator

import pycountry
import pytest
from _support import country_name, poll

import shadowfn
from shadowfn import shadow
from shadowfn._executor import admission, timer

# A generous candidate timeout, as a slow backend might need: an hour.
HOUR = 3600.0
CODES = [country.alpha_2 for country in pycountry.countries]
# Fewer calls than the default pending bound (32) between drains, so none is shed.
BATCH = 16


def _pending_deadlines() -> int:
    return len(timer._heap)


def test_settled_sync_calls_leave_no_deadlines() -> None:
    @shadow(country_name, timeout=HOUR)
    def lookup(alpha_2: str) -> str:
        return country_name(alpha_2)

    before = _pending_deadlines()
    for _ in range(4):
        for position, code in enumerate(CODES):
            lookup(code)
            if position % BATCH == 0:
                assert shadowfn.drain(timeout=10)
    assert shadowfn.drain(timeout=10)

    assert lookup.shadow.stats.matched == 4 * len(CODES)
    assert _pending_deadlines() - before < 100


@pytest.mark.asyncio
async def test_settled_async_calls_leave_no_deadlines() -> None:
    async def name_v2(alpha_2: str) -> str:
        return country_name(alpha_2)

    @shadow(name_v2, timeout=HOUR)
    async def lookup(alpha_2: str) -> str:
        return country_name(alpha_2)

    before = _pending_deadlines()
    for _ in range(4):
        for position, code in enumerate(CODES):
            await lookup(code)
            if position % BATCH == 0:
                assert await shadowfn.adrain(timeout=10)
    assert await shadowfn.adrain(timeout=10)

    assert lookup.shadow.stats.matched == 4 * len(CODES)
    assert _pending_deadlines() - before < 100


def test_fired_deadlines_are_not_counted_as_cancelled() -> None:
    release = threading.Event()

    def waits(alpha_2: str) -> str:
        release.wait(10)
        return country_name(alpha_2)

    @shadow(waits, timeout=0.05)
    def lookup(alpha_2: str) -> str:
        return country_name(alpha_2)

    cancelled_before = timer._cancelled
    for code in CODES[:BATCH]:
        lookup(code)
    try:
        assert poll(lambda: lookup.shadow.stats.timeouts == BATCH, 5)
    finally:
        release.set()
    # Timed-out calls settle at once; their candidates end, and free their slots, later.
    assert poll(lambda: admission.pending == 0, 5)

    # Every deadline fired before its call ended, so none is left to cancel.
    assert timer._cancelled == cancelled_before


@pytest.fixture
def four_pending() -> Iterator[None]:
    limit = admission.max_pending
    interval = sys.getswitchinterval()
    shadowfn.configure(max_pending=4)
    # Switch threads as often as possible, so a short race shows up in a short test.
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(interval)
    shadowfn.configure(max_pending=limit)


def test_drain_frees_every_slot_for_next_batch(four_pending: None) -> None:
    @shadow(country_name, timeout=1.0)
    def lookup(alpha_2: str) -> str:
        return country_name(alpha_2)

    for _ in range(4):
        for start in range(0, len(CODES) - 4, 4):
            for code in CODES[start : start + 4]:
                lookup(code)
            assert shadowfn.drain(timeout=5)

    stats = lookup.shadow.stats
    assert stats.shed == 0
    assert stats.matched == stats.calls
