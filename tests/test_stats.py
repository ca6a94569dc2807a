"""Outcome counters: ``shadowfn.stats()`` and ``wrapped.shadow.stats``."""

from __future__ import annotations

import dataclasses
import threading

import shadowfn
from shadowfn import FunctionStats, shadow
from shadowfn._stats import Counters

OUTCOME_FIELDS = [
    "matched",
    "diverged",
    "timeouts",
    "shed",
    "unkeyable",
    "uncopyable",
    "cancelled",
    "compare_errors",
    "internal_errors",
]


def test_stats_has_integer_counters() -> None:
    stats = FunctionStats()

    for name in ["calls", "sampled", "pending", *OUTCOME_FIELDS]:
        assert getattr(stats, name) == 0, name
        assert isinstance(getattr(stats, name), int)


def test_outcomes_sum_every_outcome_counter() -> None:
    values = {name: index + 1 for index, name in enumerate(OUTCOME_FIELDS)}

    stats = FunctionStats(calls=100, sampled=45, pending=3, **values)

    assert stats.outcomes == sum(values.values())


def test_as_dict_lists_every_counter() -> None:
    stats = FunctionStats(calls=2, sampled=1, matched=1)

    assert stats.as_dict() == {field.name: getattr(stats, field.name) for field in dataclasses.fields(stats)}
    assert stats.as_dict()["calls"] == 2


def test_stats_are_immutable_snapshots() -> None:
    counters = Counters("f")
    counters.count_call(True)
    before = counters.snapshot()

    counters.settle("matched")

    assert before.pending == 1
    assert before.matched == 0
    assert counters.snapshot().matched == 1


def test_module_stats_are_keyed_by_function_name() -> None:
    @shadow(lambda x: x, name="orders.total")
    def total(x: int) -> int:
        return x

    @shadow(lambda x: -x, name="orders.tax")
    def tax(x: int) -> int:
        return x

    total(1)
    total(2)
    tax(1)
    assert shadowfn.drain(timeout=5)

    everything = shadowfn.stats()
    assert everything["orders.total"] == FunctionStats(calls=2, sampled=2, matched=2)
    assert everything["orders.tax"] == FunctionStats(calls=1, sampled=1, diverged=1)


def test_unsampled_calls_count_as_calls_only() -> None:
    @shadow(lambda request_id: request_id, rate=10, key=lambda request_id: request_id)
    def handle(request_id: str) -> str:
        return request_id

    handle("req-key-1")
    handle("hello")
    handle("req-30")
    assert shadowfn.drain(timeout=5)

    assert handle.shadow.stats == FunctionStats(calls=3, sampled=1, matched=1)


def test_pending_counts_unsettled_calls() -> None:
    release = threading.Event()

    @shadow(lambda: release.wait(5.0) and 1)
    def primary() -> int:
        return 1

    try:
        primary()
        primary()
        pending = primary.shadow.stats
    finally:
        release.set()
    assert shadowfn.drain(timeout=5)

    assert pending.pending == 2
    assert pending.sampled == 2
    assert pending.outcomes == 0
    settled = primary.shadow.stats
    assert settled.pending == 0
    assert settled.matched == 2


def test_functions_with_same_name_share_counters() -> None:
    @shadow(lambda: 1, name="shared.name")
    def first() -> int:
        return 1

    @shadow(lambda: 2, name="shared.name")
    def second() -> int:
        return 2

    first()
    second()
    assert shadowfn.drain(timeout=5)

    assert first.shadow.stats == second.shadow.stats
    assert first.shadow.stats.matched == 2


def test_counters_are_thread_safe() -> None:
    counters = Counters("f")

    def count() -> None:
        for _ in range(2000):
            counters.count_call(True)
            counters.settle("matched")
            counters.count_call(False)

    threads = [threading.Thread(target=count) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert counters.snapshot() == FunctionStats(calls=32_000, sampled=16_000, matched=16_000)


def test_disabled_calls_are_not_counted() -> None:
    @shadow(lambda: 1, enabled=False)
    def primary() -> int:
        return 1

    primary()

    assert primary.shadow.stats == FunctionStats()
