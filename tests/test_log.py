"""The divergence log: a bounded, thread-safe ring buffer behind ``shadowfn.log``."""

from __future__ import annotations

import datetime
import threading
from collections.abc import Iterator

import pytest

import shadowfn
from shadowfn import Divergence, DivergenceEntry, DivergenceLog, ResponseRecord, shadow
from shadowfn._log import DEFAULT_CAPACITY


def make_entry(function: str, number: int) -> DivergenceEntry:
    return DivergenceEntry(
        function=function,
        key=f"{number:016x}",
        at=datetime.datetime(2024, 1, 1, 12, 30, 5, tzinfo=datetime.timezone.utc),
        divergence=Divergence(status=(200, 500)),
        primary=ResponseRecord(status=200),
        candidate=ResponseRecord(status=500),
        primary_ms=1.5,
        candidate_ms=2.25,
    )


@pytest.fixture
def restore_log_capacity() -> Iterator[None]:
    yield
    shadowfn.log.capacity = DEFAULT_CAPACITY


def test_recent_returns_newest_first() -> None:
    log = DivergenceLog()
    for number in range(5):
        log.append(make_entry("app.encode", number))

    assert [entry.key for entry in log.recent(3)] == [f"{n:016x}" for n in (4, 3, 2)]
    assert len(log.recent()) == 5


def test_recent_filters_by_function() -> None:
    log = DivergenceLog()
    for number in range(6):
        log.append(make_entry("app.encode" if number % 2 else "app.decode", number))

    assert [entry.key for entry in log.recent(function="app.encode")] == [f"{n:016x}" for n in (5, 3, 1)]
    assert [entry.key for entry in log.recent(2, function="decode")] == [f"{n:016x}" for n in (4, 2)]
    assert log.recent(function="code") == []
    assert log.recent(function="other") == []


def test_log_keeps_only_newest_entries_at_capacity() -> None:
    log = DivergenceLog(capacity=3)
    for number in range(10):
        log.append(make_entry("f", number))

    assert len(log) == 3
    assert [entry.key for entry in log.recent(10)] == [f"{n:016x}" for n in (9, 8, 7)]


def test_capacity_is_settable() -> None:
    log = DivergenceLog(capacity=10)
    for number in range(10):
        log.append(make_entry("f", number))

    log.capacity = 4
    assert log.capacity == 4
    assert [entry.key for entry in log.recent(10)] == [f"{n:016x}" for n in (9, 8, 7, 6)]

    log.capacity = 6
    log.append(make_entry("f", 10))
    assert len(log) == 5


@pytest.mark.parametrize("bad", [0, -1, 2.5, "10", True, None])
def test_invalid_capacity_is_rejected(bad: object) -> None:
    with pytest.raises(ValueError, match="capacity must be a positive int") as info:
        DivergenceLog(capacity=bad)  # type: ignore[arg-type]
    assert repr(bad) in str(info.value)

    log = DivergenceLog(capacity=2)
    with pytest.raises(ValueError, match="capacity must be a positive int"):
        log.capacity = bad  # type: ignore[assignment]
    assert log.capacity == 2


def test_clear_removes_every_entry() -> None:
    log = DivergenceLog()
    for number in range(3):
        log.append(make_entry("f", number))

    log.clear()

    assert len(log) == 0
    assert log.recent() == []


def test_log_repr_is_one_line() -> None:
    log = DivergenceLog(capacity=50)
    log.append(make_entry("f", 1))

    assert repr(log) == "<DivergenceLog 1 of 50 entries>"


def test_entry_repr_is_one_readable_line() -> None:
    text = repr(make_entry("app.encode", 255))

    assert text == (
        "<DivergenceEntry 12:30:05 app.encode key=00000000000000ff status 200 -> 500 (1.50 ms vs 2.25 ms)>"
    )


def test_multiline_entry_repr_is_one_line() -> None:
    @shadow(lambda: "line one\nline two\n" * 50)
    def primary() -> str:
        return "line one\nline three\n" * 50

    primary()
    assert shadowfn.drain(timeout=5)

    entry = shadowfn.log.recent()[0]
    assert "\n" not in repr(entry)
    assert "\n" not in entry.divergence.summary()


def test_appends_from_many_threads_are_all_kept() -> None:
    log = DivergenceLog(capacity=100_000)
    barrier = threading.Barrier(8)

    def writer(thread_number: int) -> None:
        barrier.wait()
        for number in range(500):
            log.append(make_entry(f"t{thread_number}", number))
            log.recent(1)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(log) == 4000
    for thread_number in range(8):
        assert len(log.recent(1000, function=f"t{thread_number}")) == 500


def test_log_capacity_is_bounded_under_concurrent_appends() -> None:
    log = DivergenceLog(capacity=64)

    def writer() -> None:
        for number in range(1000):
            log.append(make_entry("f", number))

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(log) == 64


def test_shadowed_divergences_reach_module_log() -> None:
    @shadow(lambda x: x + 1, name="app.increment")
    def increment(x: int) -> int:
        return x

    for value in range(3):
        increment(value)
    assert shadowfn.drain(timeout=5)

    entries = shadowfn.log.recent(function="increment")
    assert len(entries) == 3
    assert all(entry.function == "app.increment" for entry in entries)
    assert all(entry.at.tzinfo is datetime.timezone.utc for entry in entries)
    assert all(entry.primary_ms >= 0 and entry.candidate_ms >= 0 for entry in entries)
    assert sorted(entry.candidate.body for entry in entries) == [1, 2, 3]


def test_logged_records_are_bounded_previews() -> None:
    @shadow(lambda: {"text": "y" * 10_000, "items": list(range(1000))})
    def primary() -> dict[str, object]:
        return {"text": "x" * 10_000, "items": list(range(1000))}

    primary()
    assert shadowfn.drain(timeout=5)

    entry = shadowfn.log.recent()[0]
    assert len(entry.primary.body["text"]) <= 121
    assert len(entry.candidate.body["items"]) <= 9


def test_configure_sets_module_log_capacity(restore_log_capacity: None) -> None:
    shadowfn.configure(log_capacity=2)

    assert shadowfn.log.capacity == 2


@pytest.mark.parametrize("bad", [-1, 2.5, "5", None, True])
def test_recent_rejects_invalid_count(bad: object) -> None:
    with pytest.raises(ValueError, match="n must be an int >= 0") as info:
        shadowfn.log.recent(bad)  # type: ignore[arg-type]

    assert repr(bad) in str(info.value)


def test_recent_rejects_non_string_function() -> None:
    with pytest.raises(TypeError, match="function must be a function name"):
        shadowfn.log.recent(function=len)  # type: ignore[arg-type]


def test_recent_of_zero_is_empty() -> None:
    log = DivergenceLog()
    log.append(make_entry("f", 1))

    assert log.recent(0) == []


def test_recent_with_name_as_n_suggests_function() -> None:
    with pytest.raises(ValueError, match=r"write recent\(function='codec.encode'\)"):
        shadowfn.log.recent("codec.encode")  # type: ignore[arg-type]
