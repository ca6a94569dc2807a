"""Coroutine primaries and candidates, in every pairing of sync and async."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import inspect
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio
import structlog
from structlog.testing import capture_logs

import shadowfn
from shadowfn import shadow

PAIRINGS = ["async-async", "async-sync", "sync-async"]
SLOW_SECONDS = 0.6
# A call that waited for a SLOW_SECONDS candidate could not finish this fast.
CALLER_BOUND = 0.3

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


@pytest_asyncio.fixture(autouse=True)
async def loop_errors() -> AsyncIterator[list[dict[str, Any]]]:
    """Fail the test when anything reaches the loop's exception handler."""
    errors: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _, context: errors.append(context))
    yield errors
    await shadowfn.adrain(timeout=5)
    gc.collect()
    assert errors == []


@dataclass
class Probe:
    """What a candidate saw: its thread, its context and whether it was cancelled."""

    release: threading.Event = field(default_factory=threading.Event)
    started: threading.Event = field(default_factory=threading.Event)
    cancelled: threading.Event = field(default_factory=threading.Event)
    thread: str = ""
    request_id: str = ""
    structlog_context: dict[str, Any] = field(default_factory=dict)
    in_shadow: bool = False

    def record(self) -> None:
        self.thread = threading.current_thread().name
        self.request_id = request_id.get()
        self.structlog_context = structlog.contextvars.get_contextvars()
        self.in_shadow = shadowfn.is_shadow()
        self.started.set()


def make_candidate(kind: str, behaviour: str, probe: Probe) -> Callable[..., Any]:
    if kind == "async":

        async def async_candidate(x: int) -> dict[str, int]:
            probe.record()
            try:
                if behaviour == "slow":
                    await asyncio.sleep(SLOW_SECONDS)
                elif behaviour == "hanging":
                    await asyncio.Event().wait()
                elif behaviour == "failing":
                    raise ValueError(f"candidate failed on {x}")
            except asyncio.CancelledError:
                probe.cancelled.set()
                raise
            return {"value": x}

        return async_candidate

    def sync_candidate(x: int) -> dict[str, int]:
        probe.record()
        if behaviour == "slow":
            time.sleep(SLOW_SECONDS)
        elif behaviour == "hanging":
            probe.release.wait(10)
        elif behaviour == "failing":
            raise ValueError(f"candidate failed on {x}")
        return {"value": x}

    return sync_candidate


def make_primary(kind: str, returned: Any = None, raised: BaseException | None = None) -> Callable[..., Any]:
    def outcome(x: int) -> Any:
        if raised is not None:
            raise raised
        return returned if returned is not None else {"value": x}

    if kind == "async":

        async def async_primary(x: int) -> Any:
            await asyncio.sleep(0)
            return outcome(x)

        return async_primary

    def sync_primary(x: int) -> Any:
        return outcome(x)

    return sync_primary


async def call(function: Callable[..., Any], *args: Any) -> Any:
    result = function(*args)
    if inspect.isawaitable(result):
        return await result
    return result


def shadowed(pairing: str, behaviour: str, probe: Probe, **settings: Any) -> tuple[Callable[..., Any], Any]:
    primary_kind, candidate_kind = pairing.split("-")
    returned = {"value": 7}
    primary = make_primary(primary_kind, returned=returned)
    decorated = shadow(make_candidate(candidate_kind, behaviour, probe), **settings)(primary)
    return decorated, returned


def stats_of(function: Any) -> shadowfn.FunctionStats:
    stats: shadowfn.FunctionStats = function.shadow.stats
    return stats


# Each pairing with slow, failing and hanging candidates ------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("pairing", PAIRINGS)
async def test_slow_candidate_does_not_delay_caller(pairing: str) -> None:
    probe = Probe()
    decorated, returned = shadowed(pairing, "slow", probe, timeout=5)

    started = time.perf_counter()
    result = await call(decorated, 7)
    elapsed = time.perf_counter() - started

    assert result is returned
    assert elapsed < CALLER_BOUND
    assert await shadowfn.adrain(timeout=5)
    stats = stats_of(decorated)
    assert stats.matched == 1
    assert stats.pending == 0


@pytest.mark.asyncio
@pytest.mark.parametrize("pairing", PAIRINGS)
async def test_failing_candidate_is_a_divergence(pairing: str) -> None:
    probe = Probe()
    decorated, returned = shadowed(pairing, "failing", probe)

    result = await call(decorated, 7)

    assert result is returned
    assert await shadowfn.adrain(timeout=5)
    assert stats_of(decorated).diverged == 1
    entry = shadowfn.log.recent(1)[0]
    assert entry.candidate.ok is False
    assert entry.candidate.error == "ValueError: candidate failed on 7"
    assert entry.divergence.ok is not None


@pytest.mark.asyncio
@pytest.mark.parametrize("pairing", PAIRINGS)
async def test_hanging_candidate_times_out(pairing: str) -> None:
    probe = Probe()
    decorated, returned = shadowed(pairing, "hanging", probe, timeout=0.2)

    started = time.perf_counter()
    result = await call(decorated, 7)
    elapsed = time.perf_counter() - started

    assert result is returned
    assert elapsed < CALLER_BOUND / 2
    assert await shadowfn.adrain(timeout=5)
    stats = stats_of(decorated)
    assert stats.timeouts == 1
    assert stats.pending == 0
    if pairing.endswith("async"):
        # The coroutine candidate is cancelled at the timeout, not left running.
        assert await asyncio.to_thread(probe.cancelled.wait, 5)
    else:
        probe.release.set()


@pytest.mark.asyncio
@pytest.mark.parametrize("pairing", PAIRINGS)
async def test_raising_compare_reaches_no_caller(pairing: str) -> None:
    def compare(primary: Any, candidate: Any) -> bool:
        raise RuntimeError("broken comparator")

    probe = Probe()
    decorated, returned = shadowed(pairing, "plain", probe, compare=compare)

    result = await call(decorated, 7)

    assert result is returned
    assert await shadowfn.adrain(timeout=5)
    assert stats_of(decorated).compare_errors == 1


@pytest.mark.asyncio
@pytest.mark.parametrize("pairing", PAIRINGS)
async def test_primary_exception_is_same_object(pairing: str) -> None:
    primary_kind, candidate_kind = pairing.split("-")
    error = LookupError("no such code")
    probe = Probe()
    candidate = make_candidate(candidate_kind, "failing", probe)
    decorated = shadow(candidate)(make_primary(primary_kind, raised=error))

    with pytest.raises(LookupError) as caught:
        await call(decorated, 7)

    assert caught.value is error
    # The traceback still reaches the line in the primary that raised.
    assert caught.traceback[-1].name == "outcome"
    assert await shadowfn.adrain(timeout=5)
    assert stats_of(decorated).diverged == 1


# Where candidates run ---------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("work", ["sleep", "cpu"])
async def test_sync_candidate_keeps_loop_responsive(work: str) -> None:
    finished = threading.Event()
    threads: list[str] = []

    def candidate(x: int) -> int:
        threads.append(threading.current_thread().name)
        if work == "sleep":
            time.sleep(0.6)
        else:
            deadline = time.perf_counter() + 0.6
            while time.perf_counter() < deadline:
                sum(range(1000))
        finished.set()
        return x

    @shadow(candidate, timeout=5)
    async def primary(x: int) -> int:
        return x

    gaps: list[float] = []

    async def ticker() -> None:
        last = time.perf_counter()
        while not finished.is_set():
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticking = asyncio.create_task(ticker())
    assert await primary(3) == 3
    await ticking
    assert await shadowfn.adrain(timeout=5)

    assert threads == ["shadowfn-worker"]
    assert len(gaps) >= 5
    # A candidate on the loop thread would stall the ticker for its whole 0.6 s.
    assert max(gaps) < 0.3


@pytest.mark.asyncio
async def test_async_candidate_of_sync_primary_uses_background_loop() -> None:
    probe = Probe()
    seen: dict[str, Any] = {}

    async def candidate(x: int) -> int:
        probe.record()
        seen["loop"] = asyncio.get_running_loop()
        return x

    @shadow(candidate)
    def primary(x: int) -> int:
        return x

    assert primary(5) == 5
    assert await shadowfn.adrain(timeout=5)

    assert probe.thread == "shadowfn-loop"
    assert seen["loop"] is not asyncio.get_running_loop()
    assert stats_of(primary).matched == 1


def test_background_loop_starts_lazily_and_stops_at_exit() -> None:
    script = textwrap.dedent(
        """
        import asyncio, atexit, threading, time

        cancelled = threading.Event()
        # Registered before shadowfn is imported, so it runs after shadowfn's own
        # exit handler (atexit runs the last registered first).
        atexit.register(lambda: print("candidate:", "cancelled" if cancelled.is_set() else "running"))

        import logging, structlog
        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
        from shadowfn import shadow

        def loop_threads():
            return [t for t in threading.enumerate() if t.name == "shadowfn-loop"]

        async def candidate(x):
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.set()
                raise

        @shadow(candidate, timeout=60)
        def primary(x):
            return x

        assert loop_threads() == [], "loop thread started before any call"
        assert primary(1) == 1
        time.sleep(0.1)
        assert len(loop_threads()) == 1, "loop thread missing after a call"
        """
    )
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-W", "error", "-c", script],
        capture_output=True,
        text=True,
        timeout=30,
    )
    elapsed = time.perf_counter() - started

    assert completed.returncode == 0, completed.stderr
    assert completed.stderr == ""
    # The handler that prints this line runs after shadowfn's loop shutdown.
    assert completed.stdout == "candidate: cancelled\n"
    assert elapsed < 10


# Decoration ----------------------------------------------------------------------


async def async_identity(x: int) -> int:
    return x


def sync_identity(x: int) -> int:
    return x


@pytest.mark.asyncio
async def test_iscoroutinefunction_follows_primary() -> None:
    class Service:
        @shadow(sync_identity)
        async def method(self, x: int) -> int:
            return x

        @shadow(async_identity)
        def sync_method(self, x: int) -> int:
            return x

        @shadow(async_identity)
        @classmethod
        async def build(cls, x: int) -> int:
            return x

    cases: list[tuple[Any, bool]] = [
        (shadow(sync_identity)(async_identity), True),
        (shadow(async_identity)(async_identity), True),
        (shadow(async_identity)(sync_identity), False),
        (shadow(sync_identity)(sync_identity), False),
        (Service.method, True),
        (Service().method, True),
        (Service().sync_method, False),
        (Service.build, True),
    ]
    for decorated, expected in cases:
        assert inspect.iscoroutinefunction(decorated) is expected, decorated


@pytest.mark.asyncio
async def test_async_generators_rejected_at_decoration() -> None:
    async def rows(x: int) -> AsyncIterator[int]:
        yield x

    with pytest.raises(TypeError, match="async generator function"):
        shadow(async_identity)(rows)
    with pytest.raises(TypeError, match=r"candidate must be .* async generator function"):
        shadow(rows)


@pytest.mark.asyncio
async def test_awaitable_from_sync_primary_is_plain_value() -> None:
    ran: list[str] = []

    async def later(side: str) -> str:
        ran.append(side)
        return side

    def candidate(x: int) -> Any:
        return later("candidate")

    @shadow(candidate)
    def primary(x: int) -> Any:
        return later("primary")

    returned = primary(1)

    assert inspect.iscoroutinefunction(primary) is False
    assert inspect.iscoroutine(returned)
    assert await shadowfn.adrain(timeout=5)
    # shadowfn neither awaited the primary's coroutine nor ran the candidate's.
    assert ran == []
    assert await returned == "primary"
    assert ran == ["primary"]
    stats = stats_of(primary)
    assert stats.outcomes == stats.sampled == 1
    gc.collect()


# Methods ----------------------------------------------------------------------


def sync_class_identity(cls: type, x: int) -> int:
    return x


class Repository:
    def __init__(self, scale: int) -> None:
        self.scale = scale
        self.candidate_calls = 0

    @shadow("lookup_v2")
    async def lookup(self, x: int) -> int:
        return x * self.scale

    async def lookup_v2(self, x: int) -> int:
        self.candidate_calls += 1
        await asyncio.sleep(0.01)
        return x * self.scale

    @shadow(sync_class_identity, key="x", rate=100)
    @classmethod
    async def describe(cls, x: int) -> int:
        return x

    @shadow("describe_v2")
    @classmethod
    async def describe_plus(cls, x: int) -> int:
        return x + 1

    @classmethod
    async def describe_v2(cls, x: int) -> int:
        return x + 2


@pytest.mark.asyncio
async def test_async_method_named_candidate() -> None:
    repository = Repository(scale=3)

    assert await repository.lookup(4) == 12
    assert await shadowfn.adrain(timeout=5)

    assert Repository.lookup.shadow.stats.matched == 1
    # A named candidate is looked up on the caller's own instance: ``self`` is not copied.
    assert repository.candidate_calls == 1


@pytest.mark.asyncio
async def test_async_classmethods() -> None:
    assert await Repository.describe(9) == 9
    assert await Repository.describe_plus(1) == 2
    assert await shadowfn.adrain(timeout=5)

    assert Repository.describe.shadow.stats.matched == 1
    assert Repository.describe_plus.shadow.stats.diverged == 1
    entry = shadowfn.log.recent(1)[0]
    assert entry.primary.body == 2
    assert entry.candidate.body == 3


# Draining ------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_adrain_waits_for_async_candidates() -> None:
    done = threading.Event()

    async def candidate(x: int) -> int:
        await asyncio.sleep(0.2)
        done.set()
        return x

    @shadow(candidate)
    async def primary(x: int) -> int:
        return x

    await primary(1)
    assert not done.is_set()
    assert await shadowfn.adrain(timeout=5)

    assert done.is_set()
    assert stats_of(primary).matched == 1


@pytest.mark.asyncio
async def test_adrain_times_out_on_hanging_candidate() -> None:
    @shadow(make_candidate("async", "hanging", Probe()), timeout=1.0)
    async def primary(x: int) -> int:
        return x

    await primary(1)

    assert await shadowfn.adrain(timeout=0.05) is False
    assert await shadowfn.adrain(timeout=5) is True
    assert stats_of(primary).timeouts == 1


def test_drain_waits_for_background_loop_candidates() -> None:
    done = threading.Event()

    async def candidate(x: int) -> int:
        await asyncio.sleep(0.2)
        done.set()
        return x

    @shadow(candidate)
    def primary(x: int) -> int:
        return x

    primary(1)

    assert shadowfn.drain(timeout=5)
    assert done.is_set()
    assert stats_of(primary).matched == 1


# Cancellation and loop shutdown -----------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("candidate_kind", ["async", "sync"])
async def test_caller_cancellation_cancels_primary(candidate_kind: str) -> None:
    probe = Probe()
    primary_cancelled = asyncio.Event()

    @shadow(make_candidate(candidate_kind, "slow", probe), timeout=0.4)
    async def primary(x: int) -> int:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            primary_cancelled.set()
            raise
        return x

    caller = asyncio.create_task(primary(1))
    await asyncio.to_thread(probe.started.wait, 5)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller

    assert primary_cancelled.is_set()
    assert await shadowfn.adrain(timeout=5)
    assert stats_of(primary).cancelled == 1
    if candidate_kind == "async":
        assert await asyncio.to_thread(probe.cancelled.wait, 5)


def run_in_new_loop(make_calls: Callable[[], Any]) -> list[dict[str, Any]]:
    """Run ``make_calls()`` under asyncio.run and return what reached the loop's exception handler."""
    errors: list[dict[str, Any]] = []

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _, context: errors.append(context))
        await make_calls()

    asyncio.run(main())
    gc.collect()
    return errors


@pytest.mark.parametrize("candidate_started", [False, True])
def test_loop_close_cancels_and_counts_candidates(candidate_started: bool) -> None:
    probe = Probe()

    @shadow(make_candidate("async", "hanging", probe), timeout=30)
    async def primary(x: int) -> int:
        return x

    async def calls() -> None:
        assert await primary(1) == 1
        assert await primary(2) == 2
        if candidate_started:
            await asyncio.sleep(0.05)

    errors = run_in_new_loop(calls)

    assert errors == []
    assert shadowfn.drain(timeout=1)
    stats = stats_of(primary)
    assert stats.cancelled == 2
    assert stats.pending == 0
    # A candidate given time to start is cancelled inside its body. Without that time
    # it may or may not have started, by the Python version's task scheduling.
    if candidate_started:
        assert probe.cancelled.is_set()


# Load and context ------------------------------------------------------------------


@pytest.mark.asyncio
async def test_concurrent_calls_shed_and_add_up() -> None:
    release = asyncio.Event()

    async def candidate(x: int) -> int:
        await release.wait()
        return x

    @shadow(candidate, timeout=5, max_pending=20)
    async def primary(x: int) -> int:
        await asyncio.sleep(0)
        return x

    results = await asyncio.gather(*(primary(i) for i in range(200)))
    release.set()
    assert await shadowfn.adrain(timeout=5)

    assert results == list(range(200))
    stats = stats_of(primary)
    assert stats.calls == 200
    assert stats.sampled == 200
    # No candidate ends before the gather does, so exactly max_pending of them run.
    assert stats.matched == 20
    assert stats.shed == 180
    assert stats.outcomes == 200
    assert stats.pending == 0


@pytest.mark.asyncio
@pytest.mark.parametrize("pairing", PAIRINGS)
async def test_context_reaches_candidate_and_event(pairing: str) -> None:
    probe = Probe()
    decorated, _ = shadowed(pairing, "failing", probe)

    request_id.set("req-42")
    structlog.contextvars.bind_contextvars(tenant="acme")
    try:
        with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
            await call(decorated, 7)
            assert await shadowfn.adrain(timeout=5)
    finally:
        structlog.contextvars.unbind_contextvars("tenant")

    assert probe.request_id == "req-42"
    assert probe.structlog_context == {"tenant": "acme"}
    assert probe.in_shadow is True
    assert shadowfn.is_shadow() is False
    divergences = [log for log in logs if log["event"] == "shadow.divergence"]
    assert len(divergences) == 1
    assert divergences[0]["tenant"] == "acme"


def test_closed_loop_frees_pending_slot() -> None:
    @shadow(make_candidate("async", "hanging", Probe()), timeout=0.2, max_pending=1)
    async def primary(x: int) -> int:
        return x

    for attempt in (1, 2):
        loop = asyncio.new_event_loop()
        try:
            assert loop.run_until_complete(primary(attempt)) == attempt
        finally:
            loop.close()
        assert shadowfn.drain(timeout=5)

    stats = stats_of(primary)
    # With one slot, a slot still held by the first candidate would shed the second call.
    assert stats.shed == 0
    assert stats.timeouts == 2


@pytest.mark.asyncio
@pytest.mark.parametrize("pairing", PAIRINGS)
async def test_failing_hooks_reach_no_caller(pairing: str) -> None:
    def key(x: int) -> bytes:
        raise RuntimeError("broken key")

    def adapter(value: Any) -> shadowfn.ResponseRecord:
        raise RuntimeError("broken adapter")

    # rate below 100 so the key function runs on the caller's path.
    unkeyable, returned = shadowed(pairing, "plain", Probe(), key=key, rate=99.5)
    unadaptable, returned_too = shadowed(pairing, "plain", Probe(), adapter=adapter)

    assert await call(unkeyable, 7) is returned
    assert await call(unadaptable, 7) is returned_too
    assert await shadowfn.adrain(timeout=5)
    assert stats_of(unkeyable).unkeyable == 1
    assert stats_of(unadaptable).compare_errors == 1


@pytest.mark.asyncio
@pytest.mark.parametrize("pairing", PAIRINGS)
async def test_raising_log_sink_reaches_no_caller(pairing: str) -> None:
    def broken_sink(logger: Any, method_name: str, event_dict: Any) -> Any:
        raise RuntimeError("log sink down")

    decorated, returned = shadowed(pairing, "failing", Probe())
    previous = structlog.get_config()
    structlog.configure(processors=[broken_sink])
    try:
        result = await call(decorated, 7)
        assert await shadowfn.adrain(timeout=5)
    finally:
        structlog.configure(**previous)

    assert result is returned
    assert stats_of(decorated).diverged == 1
    assert len(shadowfn.log.recent(function=stats_name(decorated))) == 1


def stats_name(function: Any) -> str:
    name: str = function.shadow.name
    return name


@pytest.mark.asyncio
@pytest.mark.parametrize("primary_kind", ["async", "sync"])
async def test_candidate_ignoring_cancel_times_out(primary_kind: str) -> None:
    async def candidate(x: int) -> int:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            # Swallows the cancellation and goes on working.
            await asyncio.sleep(0.6)
        return x

    decorated = shadow(candidate, timeout=0.1)(make_primary(primary_kind))

    started = time.perf_counter()
    await call(decorated, 1)
    assert await shadowfn.adrain(timeout=5)
    waited = time.perf_counter() - started

    # The timer settles the call at its deadline, without waiting for the candidate.
    assert waited < 0.5
    assert stats_of(decorated).timeouts == 1
