"""Strict mode combined with the other entry points: Shadower, replay, several calls in one context."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from _support import country_name, country_name_upper

import shadowfn
from shadowfn import DivergenceError, ShadowConfig, Shadower, shadow
from shadowfn._strict import is_strict


def test_shadower_skip_does_not_fail_later_call() -> None:
    def primary(lock: Any, code: str) -> str:
        return country_name(code)

    shadower = Shadower(primary, primary, ShadowConfig(timeout=1.0), name="shadower.lookup")

    # The sticky bucket of b"req-key-1" is 52, above rate 10: never sampled.
    @shadow(country_name_upper, rate=10, key=lambda code: b"req-key-1", timeout=1.0)
    def lookup(code: str) -> str:
        return country_name(code)

    with shadowfn.strict():
        outcome = shadower.call(threading.Lock(), "DE")
        result = lookup("FR")

    assert outcome.value() == "Germany"
    assert not outcome.sampled
    assert shadowfn.stats()["shadower.lookup"].uncopyable == 1
    assert result == "France"
    assert lookup.shadow.stats.sampled == 0


def test_replay_skip_does_not_fail_later_call() -> None:
    def primary(lock: Any, code: str) -> str:
        return country_name(code)

    # The sticky bucket of b"req-key-1" is 52, above rate 10: never sampled.
    @shadow(country_name_upper, rate=10, key=lambda code: b"req-key-1", timeout=1.0)
    def lookup(code: str) -> str:
        return country_name(code)

    shadower = Shadower(primary, primary, ShadowConfig(timeout=1.0), name="replay.lookup")
    with shadowfn.strict():
        summary = shadowfn.replay(shadower, [(threading.Lock(), "DE")])
        result = lookup("FR")

    assert summary.total == 1
    assert summary.counts.get("matched", 0) == 0
    assert result == "France"


@shadow(country_name_upper, timeout=1.0)
def diverging_lookup(code: str) -> str:
    return country_name(code)


@pytest.mark.asyncio
async def test_strict_as_decorator_covers_coroutine() -> None:
    @shadowfn.strict()
    async def check(code: str) -> str:
        await asyncio.sleep(0)
        return diverging_lookup(code)

    with pytest.raises(DivergenceError) as raised:
        await check("SE")

    assert raised.value.outcome == "diverged"
    assert not is_strict()


def test_strict_as_decorator_covers_function() -> None:
    @shadowfn.strict(grace=0.5)
    def check(code: str) -> str:
        return diverging_lookup(code)

    with pytest.raises(DivergenceError):
        check("SE")

    assert not is_strict()
    assert check.__name__ == "check"


def test_strict_block_nests_and_restores() -> None:
    with shadowfn.strict():
        with shadowfn.strict(grace=0):
            assert is_strict()
        assert is_strict()

    assert not is_strict()
    assert diverging_lookup("SE") == "Sweden"


def test_shared_strict_block_in_two_threads() -> None:
    block = shadowfn.strict()
    both_inside = threading.Barrier(2, timeout=5)
    first_left = threading.Event()
    errors: list[BaseException] = []
    states: list[bool] = []

    def enter_and_leave(leave_first: bool) -> None:
        try:
            with block:
                both_inside.wait()
                if not leave_first:
                    assert first_left.wait(5)
            states.append(is_strict())
            if leave_first:
                first_left.set()
        except BaseException as exc:
            errors.append(exc)
            first_left.set()

    threads = [threading.Thread(target=enter_and_leave, args=(first,)) for first in (True, False)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert errors == []
    assert states == [False, False]
    assert not is_strict()
