"""Shared fixtures: every test starts with empty shadowfn state and ends with no pending work."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import shadowfn
from shadowfn._stats import registry


@pytest.fixture(autouse=True)
def clean_shadowfn_state() -> Iterator[None]:
    shadowfn.enable()
    shadowfn.log.clear()
    registry.reset()
    yield
    # A test that leaves hung candidates behind still gets a bounded wait.
    shadowfn.drain(timeout=5)
    shadowfn.enable()
    shadowfn.log.clear()
    registry.reset()
