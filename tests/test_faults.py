"""Faults: candidates, hooks, log sinks and arguments that misbehave.

In every case the caller gets the primary's own result object, without waiting
for the candidate, and the sampled call ends in one counted outcome.
"""

from __future__ import annotations

import asyncio
import copy
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog

import shadowfn
from shadowfn import shadow
from shadowfn._call import MIN_COMPARE_SECONDS
from shadowfn._executor import WorkerPool
from shadowfn._stats import registry

# A call may take this long on a loaded 2-core machine; a hung candidate would
# take its whole timeout or forever.
FAST = 0.3


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """An event that hung candidates and hooks wait on; set at teardown so they end."""
    event = threading.Event()
    yield event
    event.set()


@pytest.fixture
def structlog_config() -> Iterator[None]:
    """Restore structlog's configuration after a test that changes it."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


def stats_of(name: str) -> shadowfn.FunctionStats:
    return shadowfn.stats()[name]


def shadowed(kind: str, candidate: Any, name: str, **options: Any) -> Callable[..., Any]:
    """Return a sync or async primary whose result is a fresh dict per call."""
    options.setdefault("timeout", 1.0)
    if kind == "sync":

        @shadow(candidate, name=name, **options)
        def primary(x: int) -> dict[str, int]:
            return {"x": x}

        return primary

    @shadow(candidate, name=name, **options)
    async def primary_async(x: int) -> dict[str, int]:
        return {"x": x}

    return primary_async


async def invoke(primary: Callable[..., Any], *args: Any) -> Any:
    result = primary(*args)
    if asyncio.iscoroutine(result):
        result = await result
    return result


# Candidates that raise -------------------------------------------------------------

RAISED = [ValueError("candidate failed"), KeyboardInterrupt(), SystemExit(3), RecursionError("deep")]


def _raising_candidates(error: BaseException) -> dict[str, Callable[..., Any]]:
    calls = {"count": 0}

    def sync_candidate(x: int) -> dict[str, int]:
        calls["count"] += 1
        if calls["count"] == 1:
            raise error
        return {"x": x}

    async def async_candidate(x: int) -> dict[str, int]:
        calls["count"] += 1
        if calls["count"] == 1:
            raise error
        return {"x": x}

    return {"sync": sync_candidate, "async": async_candidate}


def _check_raised_then_matched(name: str, error: BaseException, later_calls: int) -> None:
    stats = stats_of(name)
    assert stats.diverged == 1
    assert stats.matched == later_calls
    assert stats.pending == 0
    assert stats.internal_errors == 0
    entry = shadowfn.log.recent(1, function=name)[0]
    assert entry.divergence.ok == (True, False)
    assert entry.candidate.error is not None
    assert entry.candidate.error.startswith(type(error).__name__)


@pytest.mark.parametrize("candidate_kind", ["sync", "async"])
@pytest.mark.parametrize("error", RAISED, ids=lambda e: type(e).__name__)
def test_raising_candidate_sync_primary(error: BaseException, candidate_kind: str) -> None:
    name = f"raise_sync_{candidate_kind}_{type(error).__name__}"
    primary = shadowed("sync", _raising_candidates(error)[candidate_kind], name)

    first = primary(1)
    assert first == {"x": 1}
    assert shadowfn.drain(timeout=5)
    # More calls than the worker pool has threads, one at a time so none is
    # shed: a worker lost to the first candidate's exception would show here.
    later = []
    for i in range(40):
        later.append(primary(i))
        assert shadowfn.drain(timeout=5)

    assert [value["x"] for value in later] == list(range(40))
    _check_raised_then_matched(name, error, 40)


@pytest.mark.asyncio
@pytest.mark.parametrize("candidate_kind", ["sync", "async"])
@pytest.mark.parametrize("error", RAISED, ids=lambda e: type(e).__name__)
async def test_raising_candidate_async_primary(error: BaseException, candidate_kind: str) -> None:
    name = f"raise_async_{candidate_kind}_{type(error).__name__}"
    primary = shadowed("async", _raising_candidates(error)[candidate_kind], name)

    first = await primary(1)
    assert first == {"x": 1}
    assert await shadowfn.adrain(timeout=5)
    later = []
    for i in range(40):
        later.append(await primary(i))
        assert await shadowfn.adrain(timeout=5)

    assert [value["x"] for value in later] == list(range(40))
    _check_raised_then_matched(name, error, 40)


def test_primary_result_is_same_object_when_candidate_raises() -> None:
    returned: list[object] = []

    def candidate(x: int) -> None:
        raise KeyboardInterrupt

    @shadow(candidate, name="same_object")
    def primary(x: int) -> object:
        value = {"x": x}
        returned.append(value)
        return value

    result = primary(1)

    assert result is returned[0]
    assert shadowfn.drain(timeout=5)


def test_primary_exception_is_same_object_when_candidate_raises() -> None:
    raised = ValueError("primary failed")

    def candidate(x: int) -> None:
        raise SystemExit(1)

    @shadow(candidate, name="same_exception")
    def primary(x: int) -> None:
        raise raised

    with pytest.raises(ValueError) as caught:
        primary(1)

    assert caught.value is raised
    assert shadowfn.drain(timeout=5)
    assert stats_of("same_exception").diverged == 1


# Candidates that return awkward values -------------------------------------------


class Awkward:
    """A value whose __eq__ and __repr__ raise."""

    __hash__ = None  # type: ignore[assignment]

    def __init__(self, size: int) -> None:
        self.size = size

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("__eq__ is broken")

    def __repr__(self) -> str:
        raise RuntimeError("__repr__ is broken")


def _self_referencing(x: int) -> dict[str, Any]:
    value: dict[str, Any] = {"x": x}
    value["self"] = value
    return value


def _fifty_megabytes(x: int) -> bytes:
    return b"\x00" * 50_000_000


def _awkward(x: int) -> Awkward:
    return Awkward(x)


def _generator(x: int) -> Iterator[int]:
    return iter(range(x))


def _counting_generator(x: int) -> Any:
    return (i for i in range(x))


def _unbounded(x: int) -> Any:
    return _unbounded(x)


def _huge_message(x: int) -> Any:
    raise ValueError("e" * 50_000_000)


# (candidate, the primary's value, the expected outcome counter)
AWKWARD_RETURNS = {
    "self_referencing": (_self_referencing, lambda x: {"x": x}, "diverged"),
    "fifty_megabytes": (_fifty_megabytes, lambda x: b"", "diverged"),
    "raising_eq_and_repr": (_awkward, lambda x: Awkward(x), "matched"),
    "iterator": (_generator, lambda x: list(range(x)), "diverged"),
    "generator": (_counting_generator, lambda x: list(range(x)), "compare_errors"),
    "unbounded_recursion": (_unbounded, lambda x: {"x": x}, "diverged"),
    "fifty_megabyte_message": (_huge_message, lambda x: {"x": x}, "diverged"),
}


def _check_awkward_outcome(name: str, outcome: str) -> None:
    stats = stats_of(name)
    assert getattr(stats, outcome) == 1, stats
    assert stats.internal_errors == 0
    for entry in shadowfn.log.recent(5, function=name):
        # Whatever the candidate returned, what is kept and logged stays small.
        assert len(repr(entry.to_dict())) < 20_000
        assert len(repr(entry.candidate)) < 5_000


@pytest.mark.parametrize("case", list(AWKWARD_RETURNS))
def test_awkward_candidate_value_sync(case: str) -> None:
    candidate, make_value, outcome = AWKWARD_RETURNS[case]
    made: list[Any] = []

    @shadow(candidate, name=f"awkward_sync_{case}", timeout=5)
    def primary(x: int) -> Any:
        made.append(make_value(x))
        return made[-1]

    result = primary(3)

    assert result is made[0]
    assert shadowfn.drain(timeout=10)
    _check_awkward_outcome(f"awkward_sync_{case}", outcome)


@pytest.mark.asyncio
@pytest.mark.parametrize("case", list(AWKWARD_RETURNS))
async def test_awkward_candidate_value_async(case: str) -> None:
    sync_candidate, make_value, outcome = AWKWARD_RETURNS[case]
    made: list[Any] = []

    async def candidate(x: int) -> Any:
        return sync_candidate(x)

    @shadow(candidate, name=f"awkward_async_{case}", timeout=5)
    async def primary(x: int) -> Any:
        made.append(make_value(x))
        return made[-1]

    result = await primary(3)

    assert result is made[0]
    assert await shadowfn.adrain(timeout=10)
    _check_awkward_outcome(f"awkward_async_{case}", outcome)


def test_primary_generator_is_not_consumed() -> None:
    @shadow(lambda: iter([1, 2]), name="primary_generator")
    def primary() -> Any:
        return (i for i in (1, 2, 3))

    result = primary()

    assert shadowfn.drain(timeout=5)
    assert list(result) == [1, 2, 3]
    assert stats_of("primary_generator").compare_errors == 1


def test_equal_objects_with_default_repr_match() -> None:
    class Opaque:
        __slots__ = ()

    @shadow(lambda: Opaque(), name="opaque")
    def primary() -> Opaque:
        return Opaque()

    primary()

    assert shadowfn.drain(timeout=5)
    assert stats_of("opaque").matched == 1


# Candidates that hang ----------------------------------------------------------------


def test_hung_sync_candidate_holds_pending_bound(release: threading.Event) -> None:
    def candidate(x: int) -> dict[str, int]:
        release.wait()
        return {"x": x}

    primary = shadowed("sync", candidate, "hung_sync", timeout=0.2, max_pending=2)

    for i in range(10):
        started = time.perf_counter()
        assert primary(i) == {"x": i}
        assert time.perf_counter() - started < FAST

    assert shadowfn.drain(timeout=5)
    stats = stats_of("hung_sync")
    assert stats.timeouts == 2
    assert stats.shed == 8
    # The hung candidates still hold their slots: later calls keep shedding.
    primary(99)
    assert stats_of("hung_sync").shed == 9


@pytest.mark.asyncio
async def test_hung_sync_candidate_async_primary(release: threading.Event) -> None:
    def candidate(x: int) -> dict[str, int]:
        release.wait()
        return {"x": x}

    primary = shadowed("async", candidate, "hung_sync_async_primary", timeout=0.2, max_pending=2)

    for i in range(10):
        started = time.perf_counter()
        assert await primary(i) == {"x": i}
        assert time.perf_counter() - started < FAST
    assert await shadowfn.adrain(timeout=5)

    stats = stats_of("hung_sync_async_primary")
    assert stats.timeouts == 2
    assert stats.shed == 8


def test_hung_async_candidate_sync_primary() -> None:
    async def candidate(x: int) -> dict[str, int]:
        await asyncio.sleep(3600)
        return {"x": x}

    # No running loop: the candidate runs on shadowfn's background loop thread.
    primary = shadowed("sync", candidate, "hung_async_sync_primary", timeout=0.2, max_pending=2)

    for i in range(10):
        started = time.perf_counter()
        assert primary(i) == {"x": i}
        assert time.perf_counter() - started < FAST
    assert shadowfn.drain(timeout=5)

    stats = stats_of("hung_async_sync_primary")
    assert stats.timeouts == 2
    assert stats.shed == 8


@pytest.mark.asyncio
async def test_hung_async_candidate_is_cancelled_at_timeout() -> None:
    async def candidate(x: int) -> dict[str, int]:
        await asyncio.sleep(3600)
        return {"x": x}

    primary = shadowed("async", candidate, "hung_async", timeout=0.2, max_pending=2)

    for i in range(10):
        started = time.perf_counter()
        assert await primary(i) == {"x": i}
        assert time.perf_counter() - started < FAST
    assert await shadowfn.adrain(timeout=5)

    stats = stats_of("hung_async")
    assert stats.timeouts == 2
    assert stats.shed == 8
    # Cancelled at its timeout, the candidate gave its slot back.
    await primary(99)
    assert await shadowfn.adrain(timeout=5)
    assert stats_of("hung_async").timeouts == 3


@pytest.mark.asyncio
async def test_candidate_ignoring_cancellation_still_times_out() -> None:
    stop = asyncio.Event()

    async def candidate(x: int) -> dict[str, int]:
        while not stop.is_set():
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                continue
        return {"x": x}

    primary = shadowed("async", candidate, "stubborn", timeout=0.2, max_pending=1)

    assert await primary(1) == {"x": 1}
    assert await primary(2) == {"x": 2}
    assert await shadowfn.adrain(timeout=5)

    stats = stats_of("stubborn")
    assert stats.timeouts == 1
    assert stats.shed == 1
    stop.set()
    await asyncio.sleep(0)


def test_closed_loop_gives_candidate_slot_back() -> None:
    async def candidate(x: int) -> dict[str, int]:
        await asyncio.sleep(3600)
        return {"x": x}

    primary = shadowed("async", candidate, "closed_loop", timeout=0.1, max_pending=1)

    for i in range(3):
        # Older code runs a loop and closes it without cancelling its tasks.
        loop = asyncio.new_event_loop()
        assert loop.run_until_complete(primary(i)) == {"x": i}
        loop.close()
        assert shadowfn.drain(timeout=5)

    stats = stats_of("closed_loop")
    assert stats.timeouts == 3
    assert stats.shed == 0


def test_hung_candidate_keeps_memory_flat(release: threading.Event) -> None:
    def candidate(payload: list[int]) -> int:
        release.wait()
        return len(payload)

    @shadow(candidate, name="hung_memory", timeout=0.2, max_pending=2)
    def primary(payload: list[int]) -> int:
        return len(payload)

    payload = list(range(1000))
    for _ in range(100):
        primary(payload)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(5000):
            primary(payload)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()

    assert grown < 200_000
    assert stats_of("hung_memory").shed == 5098


def test_hung_candidates_do_not_delay_exit(tmp_path: Any) -> None:
    script = tmp_path / "hung.py"
    script.write_text(
        textwrap.dedent(
            """
            import asyncio, threading, time
            from shadowfn import shadow

            def hang_sync(x):
                threading.Event().wait()

            async def hang_async(x):
                await asyncio.sleep(3600)

            async def block_loop(x):
                time.sleep(3600)

            @shadow(hang_sync, timeout=0.05)
            def first(x):
                return x

            @shadow(hang_async, timeout=0.05)
            def second(x):
                return x

            @shadow(block_loop, timeout=0.05)
            def third(x):
                return x

            print(first(1), second(2), third(3), flush=True)
            """
        )
    )
    started = time.monotonic()

    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=30, check=False
    )

    # structlog's default configuration prints events after the result line.
    assert done.stdout.splitlines()[0] == "1 2 3"
    assert done.returncode == 0, done.stderr
    # Start-up and imports take well under a second; the loop thread gets at most
    # one second to stop.
    assert time.monotonic() - started < 6


# Hooks that raise or hang -----------------------------------------------------------


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("error", [LookupError("no key"), SystemExit(4)], ids=["LookupError", "SystemExit"])
def test_raising_key_function_counts_unkeyable(kind: str, error: BaseException) -> None:
    def key(x: int) -> str:
        raise error

    name = f"key_raises_{kind}_{type(error).__name__}"
    primary = shadowed(kind, lambda x: {"x": x}, name, rate=50, key=key)

    result = primary(1) if kind == "sync" else asyncio.run(invoke(primary, 1))

    assert result == {"x": 1}
    assert shadowfn.drain(timeout=5)
    assert stats_of(name).unkeyable == 1


def test_hanging_key_function_at_rate_100_is_off_callers_path(release: threading.Event) -> None:
    def key(x: int) -> str:
        release.wait()
        return str(x)

    primary = shadowed("sync", lambda x: {"x": x}, "key_hangs", rate=100, key=key, timeout=0.2)
    started = time.perf_counter()

    assert primary(1) == {"x": 1}
    assert time.perf_counter() - started < FAST
    assert shadowfn.drain(timeout=5)
    assert stats_of("key_hangs").timeouts == 1


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize(
    "error", [ValueError("bad compare"), SystemExit(2)], ids=["ValueError", "SystemExit"]
)
def test_raising_compare_counts_compare_error(kind: str, error: BaseException) -> None:
    def compare(a: Any, b: Any) -> bool:
        raise error

    name = f"compare_raises_{kind}_{type(error).__name__}"
    primary = shadowed(kind, lambda x: {"x": x}, name, compare=compare)

    for i in range(40):
        result = primary(i) if kind == "sync" else asyncio.run(invoke(primary, i))
        assert result == {"x": i}
        assert shadowfn.drain(timeout=5)

    assert stats_of(name).compare_errors == 40


@pytest.mark.parametrize("side", ["primary", "candidate"])
@pytest.mark.parametrize("error", [KeyError("adapter failed"), SystemExit(5)], ids=["KeyError", "SystemExit"])
def test_raising_adapter_counts_compare_error(side: str, error: BaseException) -> None:
    def adapter(value: Any) -> shadowfn.ResponseRecord:
        if value["side"] == side:
            raise error
        return shadowfn.ResponseRecord(body=value["x"])

    name = f"adapter_raises_{side}_{type(error).__name__}"
    made: list[Any] = []

    @shadow(lambda x: {"x": x, "side": "candidate"}, name=name, adapter=adapter)
    def primary(x: int) -> dict[str, Any]:
        made.append({"x": x, "side": "primary"})
        return made[-1]

    result = primary(1)

    assert result is made[0]
    assert shadowfn.drain(timeout=5)
    assert stats_of(name).compare_errors == 1


def test_keyboard_interrupt_in_callers_path_hook_propagates() -> None:
    def adapter(value: Any) -> shadowfn.ResponseRecord:
        if value == "primary":
            raise KeyboardInterrupt
        return shadowfn.ResponseRecord(body=value)

    @shadow(lambda: "candidate", name="adapter_interrupted", adapter=adapter)
    def primary() -> str:
        return "primary"

    # A KeyboardInterrupt in the caller's thread may be a real Ctrl-C, so it is
    # not swallowed; the call still settles.
    with pytest.raises(KeyboardInterrupt):
        primary()

    assert shadowfn.drain(timeout=5)
    stats = stats_of("adapter_interrupted")
    assert stats.cancelled == 1
    assert stats.pending == 0


def test_hung_compare_and_adapter_settle_as_compare_errors(release: threading.Event) -> None:
    def compare(a: Any, b: Any) -> bool:
        release.wait()
        return True

    def adapter(value: Any) -> shadowfn.ResponseRecord:
        if value == "candidate":
            release.wait()
        return shadowfn.ResponseRecord(body=value)

    compared = shadowed("sync", lambda x: {"x": x}, "compare_hangs", compare=compare, timeout=0.1)

    @shadow(lambda: "candidate", name="adapter_hangs", adapter=adapter, timeout=0.1, max_pending=1)
    def adapted() -> str:
        return "primary"

    @shadow(lambda: "candidate", name="late_compare_hangs", compare=compare, timeout=0.1)
    def slow() -> str:
        # The comparison starts after the candidate's deadline has passed.
        time.sleep(0.3)
        return "primary"

    started = time.perf_counter()
    assert compared(1) == {"x": 1}
    assert adapted() == "primary"
    assert time.perf_counter() - started < FAST
    # A hung hook still holds its slot, so the bound holds.
    assert adapted() == "primary"
    assert slow() == "primary"

    assert shadowfn.drain(timeout=MIN_COMPARE_SECONDS + 5)
    assert stats_of("late_compare_hangs").compare_errors == 1
    assert stats_of("compare_hangs").compare_errors == 1
    assert stats_of("adapter_hangs").compare_errors == 1
    assert stats_of("adapter_hangs").shed == 1


def _collecting(events: list[dict[str, Any]]) -> Callable[..., Any]:
    def collect(logger: Any, method: str, event_dict: dict[str, Any]) -> Any:
        events.append(event_dict)
        raise structlog.DropEvent

    return collect


@pytest.mark.parametrize(
    "error", [RuntimeError("sink down"), SystemExit(1)], ids=["RuntimeError", "SystemExit"]
)
def test_raising_structlog_processor_loses_only_its_event(
    structlog_config: None, error: BaseException
) -> None:
    events: list[dict[str, Any]] = []
    failures = {"left": 1}

    def fail_once(logger: Any, method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        if failures["left"]:
            failures["left"] -= 1
            raise error
        return event_dict

    structlog.configure(processors=[fail_once, _collecting(events)])
    primary = shadowed("sync", lambda x: {"y": x}, "processor_raises")

    assert primary(1) == {"x": 1}
    assert shadowfn.drain(timeout=5)
    assert primary(2) == {"x": 2}
    assert shadowfn.drain(timeout=5)

    assert [event["event"] for event in events] == ["shadow.divergence"]
    assert stats_of("processor_raises").diverged == 2


def test_hanging_structlog_processor_does_not_delay_callers(
    structlog_config: None, release: threading.Event
) -> None:
    events: list[dict[str, Any]] = []

    def hang(logger: Any, method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        release.wait()
        return event_dict

    structlog.configure(processors=[hang, _collecting(events)])
    primary = shadowed("sync", lambda x: {"y": x}, "processor_hangs")

    started = time.perf_counter()
    for i in range(20):
        assert primary(i) == {"x": i}
    assert time.perf_counter() - started < 20 * FAST

    # Outcomes are counted while the event sink is stuck; only events wait.
    assert not shadowfn.drain(timeout=0.5)
    assert stats_of("processor_hangs").diverged == 20
    release.set()
    assert shadowfn.drain(timeout=5)
    assert len(events) == 20


# Arguments ------------------------------------------------------------------------------


class Unencodable:
    def __init__(self, value: int) -> None:
        self.value = value


def test_unencodable_argument_runs_unshadowed_below_rate_100() -> None:
    @shadow(lambda item: item.value, name="unencodable", rate=50)
    def primary(item: Unencodable) -> int:
        return item.value

    with structlog.testing.capture_logs() as logs:
        assert primary(Unencodable(4)) == 4
        assert shadowfn.drain(timeout=5)

    assert stats_of("unencodable").unkeyable == 1
    assert [log["event"] for log in logs] == ["shadow.unkeyable"]


def test_uncopyable_argument_runs_unshadowed() -> None:
    lock = threading.Lock()
    seen: list[object] = []

    def candidate(guard: Any) -> bool:
        seen.append(guard)
        return True

    @shadow(candidate, name="uncopyable")
    def primary(guard: Any) -> bool:
        return guard is lock

    with structlog.testing.capture_logs() as logs:
        assert primary(lock) is True
        assert shadowfn.drain(timeout=5)

    assert seen == []
    assert stats_of("uncopyable").uncopyable == 1
    assert "copy_args=False" in logs[0]["fix"]


class RefusesCopy:
    def __init__(self, error: BaseException) -> None:
        self.error = error

    def __deepcopy__(self, memo: Any) -> Any:
        raise self.error


@pytest.mark.parametrize(
    "error", [RecursionError("too deep"), SystemExit(6)], ids=["RecursionError", "SystemExit"]
)
def test_argument_whose_deepcopy_raises_runs_unshadowed(error: BaseException) -> None:
    name = f"deepcopy_raises_{type(error).__name__}"

    @shadow(lambda value: 1, name=name)
    def primary(value: RefusesCopy) -> int:
        return 1

    assert primary(RefusesCopy(error)) == 1
    assert shadowfn.drain(timeout=5)
    assert stats_of(name).uncopyable == 1


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_candidate_sees_arguments_before_primary_mutates_them(kind: str) -> None:
    mutated = threading.Event()
    seen: list[Any] = []

    def candidate(items: list[int], options: dict[str, Any]) -> int:
        assert mutated.wait(5)
        seen.append((list(items), copy.deepcopy(options)))
        return sum(items)

    async def async_candidate(items: list[int], options: dict[str, Any]) -> int:
        return candidate(items, options)

    def mutate(items: list[int], options: dict[str, Any]) -> int:
        total = sum(items)
        items.clear()
        options["nested"]["flag"] = False
        mutated.set()
        return total

    chosen = candidate if kind == "sync" else async_candidate

    @shadow(chosen, name=f"mutating_{kind}", timeout=5)
    def primary(items: list[int], options: dict[str, Any]) -> int:
        return mutate(items, options)

    items, options = [1, 2, 3], {"nested": {"flag": True}}

    assert primary(items, options) == 6
    assert shadowfn.drain(timeout=10)
    assert items == []
    assert seen == [([1, 2, 3], {"nested": {"flag": True}})]
    assert stats_of(f"mutating_{kind}").matched == 1


@pytest.mark.asyncio
async def test_candidate_sees_arguments_before_async_primary_mutates_them() -> None:
    mutated = asyncio.Event()
    seen: list[Any] = []

    async def candidate(items: list[int], options: dict[str, Any]) -> int:
        await mutated.wait()
        seen.append((list(items), copy.deepcopy(options)))
        return sum(items)

    @shadow(candidate, name="mutating_async_primary", timeout=5)
    async def primary(items: list[int], options: dict[str, Any]) -> int:
        total = sum(items)
        # Let the candidate start before the arguments change.
        await asyncio.sleep(0)
        items.clear()
        options["nested"]["flag"] = False
        mutated.set()
        return total

    items, options = [1, 2, 3], {"nested": {"flag": True}}

    assert await primary(items, options) == 6
    assert await shadowfn.adrain(timeout=10)
    assert items == []
    assert seen == [([1, 2, 3], {"nested": {"flag": True}})]
    assert stats_of("mutating_async_primary").matched == 1


# Fork ---------------------------------------------------------------------------------------


def _wait_for_child(pid: int, seconds: float) -> int:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return -1


def _child_uses_shadowfn(primary: Callable[[int], Any], name: str) -> int:
    # Runs in the forked child; any failure becomes a non-zero exit code.
    try:
        if primary(7) != {"x": 7}:
            return 2
        if not shadowfn.drain(timeout=5):
            return 3
        stats = stats_of(name)
        if (stats.calls, stats.matched, stats.pending) != (1, 1, 0):
            return 4
        return 0
    except BaseException:
        return 5


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_forked_child_shadows_with_fresh_state(release: threading.Event) -> None:
    name = "forked"
    slow_started = threading.Event()

    def candidate(x: int) -> dict[str, int]:
        if x == 0:
            slow_started.set()
            release.wait()
        return {"x": x}

    async def async_candidate(x: int) -> dict[str, int]:
        return {"x": x}

    primary = shadowed("sync", candidate, name, timeout=30)
    on_loop = shadowed("sync", async_candidate, name + "_loop", timeout=30)
    # Start the workers, timer, loop thread and events thread, and leave one call pending.
    assert primary(1) == {"x": 1}
    assert on_loop(1) == {"x": 1}
    assert shadowfn.drain(timeout=5)
    assert primary(0) == {"x": 0}
    assert slow_started.wait(5)

    # Another thread sits inside shadowfn's critical sections at the moment of the fork.
    held = [registry.counters(name)._lock, registry.counters(name).keys._lock, shadowfn.log._lock]
    for lock in held:
        lock.acquire()
    try:
        pid = os.fork()
        if pid == 0:
            os._exit(_child_uses_shadowfn(primary, name) or _child_uses_shadowfn(on_loop, name + "_loop"))
    finally:
        for lock in held:
            lock.release()

    assert _wait_for_child(pid, 20) == 0
    release.set()
    assert shadowfn.drain(timeout=5)
    stats = stats_of(name)
    assert (stats.calls, stats.matched) == (2, 2)


# Settings changed during a burst ----------------------------------------------------


def test_rate_and_enabled_change_during_burst() -> None:
    sampled: list[int] = []
    lock = threading.Lock()

    def candidate(x: int) -> dict[str, int]:
        with lock:
            sampled.append(x)
        return {"x": x}

    primary = shadowed("sync", candidate, "burst", key=lambda x: str(x), rate=30)
    stop = threading.Event()
    wrong: list[Any] = []

    def toggle() -> None:
        settings = [(0, True), (30, True), (12.5, False), (30, True), (5, True)]
        index = 0
        while not stop.is_set():
            rate, enabled = settings[index % len(settings)]
            primary.shadow.rate = rate  # type: ignore[attr-defined]
            primary.shadow.enabled = enabled  # type: ignore[attr-defined]
            index += 1

    def call(start: int) -> None:
        for x in range(start, start + 2000):
            if primary(x) != {"x": x}:
                wrong.append(x)

    toggler = threading.Thread(target=toggle)
    callers = [threading.Thread(target=call, args=(n * 2000,)) for n in range(4)]
    toggler.start()
    for thread in callers:
        thread.start()
    for thread in callers:
        thread.join()
    stop.set()
    toggler.join()

    assert shadowfn.drain(timeout=10)
    assert wrong == []
    stats = stats_of("burst")
    assert stats.pending == 0
    assert stats.internal_errors == 0
    assert stats.sampled == stats.outcomes
    # A key is never shadowed above the highest rate that was ever set.
    assert all(shadowfn.should_shadow(str(x).encode(), 30) for x in sampled)


def test_pool_job_never_waits_behind_busy_worker(release: threading.Event) -> None:
    pool = WorkerPool(2)
    first_done = threading.Event()
    pool.submit(first_done.set)
    assert first_done.wait(5)
    deadline = time.monotonic() + 5
    while pool._idle != 1 and time.monotonic() < deadline:
        time.sleep(0.001)
    second_done = threading.Event()

    # Back to back, before the idle worker wakes: the first job takes it for
    # good, so the second needs a new worker.
    pool.submit(release.wait)
    pool.submit(second_done.set)

    assert second_done.wait(5)
    assert pool.threads == 2
