"""Shared fixtures: every test starts with empty shadowfn state and ends with no pending work."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

import shadowfn
from shadowfn._executor import admission
from shadowfn._stats import registry

# A test may leave a hung candidate behind only briefly: pending slots are shared by
# the whole process, so a slot still held after this long would shed later tests' calls.
SLOT_RELEASE_SECONDS = 5.0


@pytest.fixture(autouse=True)
def clean_shadowfn_state() -> Iterator[None]:
    shadowfn.enable()
    shadowfn.log.clear()
    registry.reset()
    yield
    shadowfn.drain(timeout=5)
    deadline = time.monotonic() + SLOT_RELEASE_SECONDS
    while admission.pending and time.monotonic() < deadline:
        time.sleep(0.01)
    leaked = admission.pending
    shadowfn.enable()
    shadowfn.log.clear()
    registry.reset()
    assert leaked == 0, f"the test left {leaked} candidates running; release them before it ends"
