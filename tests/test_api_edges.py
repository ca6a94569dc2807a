"""shadowfn.configure: each invalid limit is named, and a rejected call changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import shadowfn
from shadowfn._control import divergence_log
from shadowfn._executor import admission


@pytest.fixture
def restore_limits() -> Iterator[None]:
    max_pending, capacity = admission.max_pending, divergence_log.capacity
    yield
    shadowfn.configure(max_pending=max_pending, log_capacity=capacity)


@pytest.mark.parametrize("value", [0, -3, 2.5, "100", True])
def test_invalid_log_capacity_names_parameter(value: Any, restore_limits: None) -> None:
    with pytest.raises(ValueError) as raised:
        shadowfn.configure(log_capacity=value)

    message = str(raised.value)
    assert message.startswith("log_capacity must be a positive int")
    assert repr(value) in message


def test_rejected_configure_changes_nothing(restore_limits: None) -> None:
    max_pending = admission.max_pending

    with pytest.raises(ValueError, match="log_capacity"):
        shadowfn.configure(max_pending=max_pending + 7, log_capacity=0)

    assert admission.max_pending == max_pending
