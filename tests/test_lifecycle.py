"""The lifecycle of a sampled call: its admission slot, its deadlines and drain().

After drain() returns True, every sampled call has its outcome, no admission slot
is still taken, and each function's counters add up.
"""

from __future__ import annotations

import asyncio
import contextvars
import random
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pycountry
import pytest
from _support import country_name

import shadowfn
from shadowfn import shadow
from shadowfn._executor import admission, timer

# Set inside a candidate, so that the candidate's context copy keeps a reference to the value
# until the candidate job frees that copy, after the candidate has returned.
_HELD: contextvars.ContextVar[Any] = contextvars.ContextVar("held")


def assert_counters_add_up() -> None:
    for name, stats in shadowfn.stats().items():
        assert stats.pending == 0, name
        assert stats.sampled == stats.outcomes, name


@pytest.fixture
def frequent_switches() -> Iterator[None]:
    """Make the interpreter switch threads often, so races show up in few calls."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(previous)


class _SlowToFree:
    """Signals when it is freed, then blocks the freeing thread for a while."""

    def __init__(self, freed: threading.Event, release: threading.Event) -> None:
        self.freed = freed
        self.release = release

    def __del__(self) -> None:
        self.freed.set()
        self.release.wait(0.5)


def test_drain_waits_for_ending_candidate_job() -> None:
    # The candidate returns first, and its job is still ending (freeing its context
    # copy) when the primary returns and the comparison settles the call on another
    # worker. drain() must wait until that job has freed the slot.
    freed = threading.Event()
    release = threading.Event()

    def candidate(alpha_2: str) -> str:
        _HELD.set(_SlowToFree(freed, release))
        return country_name(alpha_2)

    @shadow(candidate, timeout=5)
    def primary(alpha_2: str) -> str:
        freed.wait(5)
        return country_name(alpha_2)

    try:
        assert primary("NO") == "Norway"
        drained = shadowfn.drain(timeout=5)
        held = admission.pending
    finally:
        release.set()

    assert drained
    assert held == 0
    assert primary.shadow.stats.matched == 1
    assert_counters_add_up()


def test_drain_after_async_candidates_frees_slots(frequent_switches: None) -> None:
    # A coroutine candidate that ends after the primary hands its comparison to a
    # worker and then ends its task on the background loop.
    async def candidate(alpha_2: str) -> str:
        await asyncio.sleep(0)
        return alpha_2.upper()

    @shadow(candidate, timeout=5)
    def primary(alpha_2: str) -> str:
        return alpha_2.upper()

    codes = [country.alpha_2 for country in pycountry.countries][:200] * 15
    held_after_drain = 0
    for code in codes:
        assert primary(code) == code
        assert shadowfn.drain(timeout=5)
        held_after_drain += admission.pending

    assert held_after_drain == 0
    assert primary.shadow.stats.matched == len(codes)
    assert_counters_add_up()


def test_noise_run_on_closed_loop_frees_slot() -> None:
    async def candidate(alpha_2: str) -> str:
        return country_name(alpha_2)

    @shadow(candidate, timeout=0.2, pure=True, noise_rate=100)
    async def primary(alpha_2: str) -> str:
        return country_name(alpha_2)

    # run_until_complete() then close(): the loop's other tasks, the candidate and
    # the second run of the primary, are never run to their end.
    loop = asyncio.new_event_loop()
    try:
        assert loop.run_until_complete(primary("DK")) == "Denmark"
    finally:
        loop.close()

    assert shadowfn.drain(timeout=5)
    assert admission.pending == 0
    noise = primary.shadow.noise
    assert noise is not None
    # Whether the noise run finished before close() depends on the Python version's
    # task scheduling, and 3.12 runs it to its end here. Either way it is counted once.
    assert noise.skipped + noise.noise_runs == 1
    assert_counters_add_up()


class _CopiedOnce:
    """Deep-copies once, then raises ``failure`` from every later copy."""

    def __init__(self, failure: BaseException, copies: list[int] | None = None) -> None:
        self.failure = failure
        self.copies = copies if copies is not None else [0]

    def __deepcopy__(self, memo: dict[int, Any]) -> _CopiedOnce:
        self.copies[0] += 1
        if self.copies[0] > 1:
            raise self.failure
        return _CopiedOnce(self.failure, self.copies)


def test_noise_copy_system_exit_settles_call() -> None:
    # The candidate's copy of the arguments works and the noise run's copy raises.
    def candidate(alpha_2: str, extra: _CopiedOnce) -> str:
        return country_name(alpha_2)

    @shadow(candidate, timeout=5, pure=True, noise_rate=100)
    def primary(alpha_2: str, extra: _CopiedOnce) -> str:
        return country_name(alpha_2)

    assert primary("SE", _CopiedOnce(SystemExit(3))) == "Sweden"

    assert shadowfn.drain(timeout=5)
    assert admission.pending == 0
    stats = primary.shadow.stats
    assert stats.calls == 1
    assert stats.matched == 1
    noise = primary.shadow.noise
    assert noise is not None
    assert noise.skipped == 1
    assert_counters_add_up()


def test_noise_copy_interrupt_settles_call() -> None:
    def candidate(alpha_2: str, extra: _CopiedOnce) -> str:
        return country_name(alpha_2)

    @shadow(candidate, timeout=5, pure=True, noise_rate=100)
    def primary(alpha_2: str, extra: _CopiedOnce) -> str:
        return country_name(alpha_2)

    # A KeyboardInterrupt may be the user's Ctrl-C, so it reaches the caller.
    with pytest.raises(KeyboardInterrupt):
        primary("FI", _CopiedOnce(KeyboardInterrupt()))

    assert shadowfn.drain(timeout=5)
    assert admission.pending == 0
    assert primary.shadow.stats.cancelled == 1
    assert_counters_add_up()


def _live_entries_between(start: float, end: float) -> int:
    return sum(1 for entry in list(timer._heap) if entry[2] is not None and start <= entry[0] <= end)


def test_slow_compare_leaves_no_timer_entry() -> None:
    # The comparison is still running at the candidate's deadline, so the
    # comparison's own deadline (at least 5 s away) goes on the timer.
    def compare(primary_value: str, candidate_value: str) -> bool:
        time.sleep(0.3)
        return primary_value == candidate_value

    @shadow(country_name, timeout=0.05, compare=compare)
    def primary(alpha_2: str) -> str:
        return country_name(alpha_2)

    started = time.monotonic()
    assert primary("IS") == "Iceland"
    assert shadowfn.drain(timeout=5)

    assert primary.shadow.stats.matched == 1
    assert _live_entries_between(started + 4, started + 6) == 0


def test_many_threads_mixed_paths_add_up(frequent_switches: None) -> None:
    codes = [country.alpha_2 for country in pycountry.countries][:60]

    def sync_slow(alpha_2: str) -> str:
        time.sleep(random.random() * 0.02)
        return country_name(alpha_2)

    def sync_raises(alpha_2: str) -> str:
        raise LookupError(alpha_2)

    async def async_fast(alpha_2: str) -> str:
        return country_name(alpha_2)

    async def async_swallows_cancel(alpha_2: str) -> str:
        try:
            await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            await asyncio.sleep(0.01)
        return country_name(alpha_2)

    def slow_compare(primary_value: str, candidate_value: str) -> bool:
        time.sleep(random.random() * 0.01)
        return primary_value == candidate_value

    variants: list[tuple[Any, dict[str, Any]]] = [
        (country_name, {}),
        (sync_slow, {"timeout": 0.01}),
        (sync_raises, {}),
        (async_fast, {}),
        (async_swallows_cancel, {"timeout": 0.01}),
        (country_name, {"compare": slow_compare, "timeout": 0.005}),
    ]
    functions = []
    for index, (candidate, options) in enumerate(variants):

        def primary(alpha_2: str) -> str:
            return country_name(alpha_2)

        primary.__qualname__ = f"mixed_sync_{index}"
        functions.append(shadow(candidate, rate=100, **options)(primary))

        async def async_primary(alpha_2: str) -> str:
            await asyncio.sleep(0)
            return country_name(alpha_2)

        async_primary.__qualname__ = f"mixed_async_{index}"
        functions.append(shadow(candidate, rate=100, **options)(async_primary))

    failures: list[BaseException] = []

    def run(seed: int) -> None:
        chooser = random.Random(seed)
        loop = asyncio.new_event_loop()
        try:
            for code in codes * 2:
                function = chooser.choice(functions)
                result = function(code)
                if asyncio.iscoroutine(result):
                    result = loop.run_until_complete(result)
                assert result == country_name(code)
            # Let the coroutine candidates on this loop end before it closes.
            loop.run_until_complete(asyncio.sleep(0.1))
        except BaseException as exc:
            failures.append(exc)
        finally:
            loop.close()

    threads = [threading.Thread(target=run, args=(seed,)) for seed in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert failures == []
    assert shadowfn.drain(timeout=10)
    assert admission.pending == 0
    assert_counters_add_up()


async def _swallows_cancellation(alpha_2: str) -> str:
    try:
        await asyncio.sleep(5)
    except asyncio.CancelledError:
        # Ignores the cancellation at the timeout and returns a little later.
        await asyncio.sleep(0.02)
    return country_name(alpha_2)


def test_late_async_candidate_counts_as_timeout() -> None:
    @shadow(_swallows_cancellation, timeout=0.1)
    def primary(alpha_2: str) -> str:
        return country_name(alpha_2)

    assert primary("EE") == "Estonia"

    assert shadowfn.drain(timeout=5)
    stats = primary.shadow.stats
    assert stats.timeouts == 1
    assert stats.matched == 0
    assert_counters_add_up()


def test_late_candidate_under_async_primary_times_out() -> None:
    @shadow(_swallows_cancellation, timeout=0.1)
    async def primary(alpha_2: str) -> str:
        return country_name(alpha_2)

    async def main() -> str:
        result = await primary("LV")
        assert await shadowfn.adrain(timeout=5)
        return result

    assert asyncio.run(main()) == "Latvia"

    stats = primary.shadow.stats
    assert stats.timeouts == 1
    assert stats.matched == 0
    assert_counters_add_up()


class _Suspend:
    """An awaitable that suspends a coroutine once."""

    def __await__(self) -> Iterator[None]:
        yield


async def _blocks_when_closed(release: threading.Event) -> str:
    try:
        await _Suspend()
    finally:
        release.wait(5)
    return "never"


def test_drain_skips_candidate_hung_in_close() -> None:
    # A sync candidate that returns a started coroutine: shadowfn closes it, which
    # runs its finally block, and that block hangs past the timeout.
    release = threading.Event()

    def candidate(alpha_2: str) -> Any:
        coroutine = _blocks_when_closed(release)
        coroutine.send(None)
        return coroutine

    @shadow(candidate, timeout=0.1)
    def primary(alpha_2: str) -> str:
        return country_name(alpha_2)

    try:
        assert primary("PL") == "Poland"
        drained = shadowfn.drain(timeout=2)
    finally:
        release.set()

    assert drained
    assert primary.shadow.stats.timeouts == 1
    assert_counters_add_up()


def test_noise_task_factory_failure_drains() -> None:
    async def candidate(alpha_2: str) -> str:
        return country_name(alpha_2)

    @shadow(candidate, timeout=5, pure=True, noise_rate=100)
    async def primary(alpha_2: str) -> str:
        return country_name(alpha_2)

    def factory(loop: asyncio.AbstractEventLoop, coroutine: Any) -> asyncio.Task[Any]:
        # Rejects only the second run of the primary, so the candidate still starts.
        if "NoiseRun" in coroutine.__qualname__:
            raise RuntimeError("task factory rejected the task")
        return asyncio.Task(coroutine, loop=loop)

    async def main() -> str:
        asyncio.get_running_loop().set_task_factory(factory)
        result = await primary("LT")
        assert await shadowfn.adrain(timeout=5)
        return result

    assert asyncio.run(main()) == "Lithuania"

    assert shadowfn.drain(timeout=5)
    assert admission.pending == 0
    assert primary.shadow.stats.matched == 1
    noise = primary.shadow.noise
    assert noise is not None
    assert noise.skipped == 1
    assert_counters_add_up()
