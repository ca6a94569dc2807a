"""Admission on the caller's path when a key function or an argument's copy raises SystemExit."""

from __future__ import annotations

from typing import Any

import pytest
from _support import country_name

import shadowfn
from shadowfn import shadow


class ClosedSession:
    """An argument whose copy raises SystemExit, as a session torn down at exit may."""

    def __deepcopy__(self, memo: dict[int, Any]) -> ClosedSession:
        raise SystemExit("session closed")


def exits_while_keying(alpha_2: str) -> str:
    raise SystemExit("key source closed")


def test_key_function_systemexit_does_not_reach_caller() -> None:
    @shadow(country_name, rate=50, key=exits_while_keying, timeout=1.0)
    def lookup(alpha_2: str) -> str:
        return country_name(alpha_2)

    assert lookup("PT") == "Portugal"
    assert shadowfn.drain(timeout=5)
    assert lookup.shadow.stats.unkeyable == 1


def test_argument_copy_systemexit_does_not_reach_caller() -> None:
    def name_v2(session: ClosedSession, alpha_2: str) -> str:
        return country_name(alpha_2)

    @shadow(name_v2, timeout=1.0)
    def lookup(session: ClosedSession, alpha_2: str) -> str:
        return country_name(alpha_2)

    assert lookup(ClosedSession(), "ES") == "Spain"
    assert shadowfn.drain(timeout=5)
    assert lookup.shadow.stats.sampled == 1
    assert lookup.shadow.stats.internal_errors + lookup.shadow.stats.uncopyable == 1


def test_key_function_interrupt_propagates_counted() -> None:
    def interrupted(alpha_2: str) -> str:
        raise KeyboardInterrupt

    @shadow(country_name, rate=50, key=interrupted, timeout=1.0)
    def lookup(alpha_2: str) -> str:
        return country_name(alpha_2)

    with pytest.raises(KeyboardInterrupt):
        lookup("IT")

    assert lookup.shadow.stats.internal_errors == 1
