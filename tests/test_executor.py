"""Where shadow work runs: the worker pool, the deadline timer, admission and draining."""

from __future__ import annotations

import gc
import threading
import time
import types
from collections.abc import Iterator

import pytest
from structlog.testing import capture_logs

import shadowfn
import shadowfn._call
import shadowfn._executor
from shadowfn import shadow
from shadowfn._call import ShadowCall
from shadowfn._executor import DEFAULT_MAX_PENDING, Admission, Timer, Tracker, WorkerPool, admission


@pytest.fixture
def release() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


@pytest.fixture
def restore_max_pending() -> Iterator[None]:
    yield
    shadowfn.configure(max_pending=DEFAULT_MAX_PENDING)


def test_pool_runs_jobs_on_daemon_threads() -> None:
    pool = WorkerPool(max_workers=2)
    finished = threading.Event()
    seen: list[tuple[str, bool]] = []

    def job() -> None:
        current = threading.current_thread()
        seen.append((current.name, current.daemon))
        finished.set()

    pool.submit(job)

    assert finished.wait(5)
    assert seen == [("shadowfn-worker", True)]


def test_pool_grows_only_to_max_workers(release: threading.Event) -> None:
    pool = WorkerPool(max_workers=3)
    started = threading.Semaphore(0)

    def blocked_job() -> None:
        started.release()
        release.wait(5)

    for _ in range(5):
        pool.submit(blocked_job)
    for _ in range(3):
        assert started.acquire(timeout=5)

    assert pool.threads == 3
    assert not started.acquire(timeout=0.05)
    release.set()
    for _ in range(2):
        assert started.acquire(timeout=5)


def test_pool_reuses_idle_workers() -> None:
    pool = WorkerPool(max_workers=4)
    for _ in range(20):
        done = threading.Event()
        pool.submit(done.set)
        assert done.wait(5)

    assert pool.threads == 1


def test_timer_runs_callbacks_in_deadline_order() -> None:
    timer = Timer()
    order: list[str] = []
    finished = threading.Event()
    now = time.monotonic()

    timer.call_at(now + 0.06, lambda: (order.append("late"), finished.set()))
    timer.call_at(now + 0.02, lambda: order.append("early"))
    timer.call_at(now - 1.0, lambda: order.append("overdue"))

    assert finished.wait(5)
    assert order == ["overdue", "early", "late"]


def test_timer_does_not_fire_early() -> None:
    timer = Timer()
    fired = threading.Event()
    started = time.monotonic()
    fired_at: list[float] = []

    timer.call_at(started + 0.05, lambda: (fired_at.append(time.monotonic()), fired.set()))

    assert fired.wait(5)
    assert fired_at[0] - started >= 0.05


def test_admission_enforces_global_bound() -> None:
    gate = Admission(max_pending=2)

    assert gate.try_acquire("a", None)
    assert gate.try_acquire("b", None)
    assert not gate.try_acquire("c", None)
    assert gate.pending == 2

    gate.release("a")
    assert gate.try_acquire("c", None)


def test_admission_enforces_per_function_bound() -> None:
    gate = Admission(max_pending=10)

    assert gate.try_acquire("a", 1)
    assert not gate.try_acquire("a", 1)
    assert gate.try_acquire("b", 1)

    gate.release("a")
    assert gate.try_acquire("a", 1)


def test_tracker_wait_returns_false_on_timeout() -> None:
    tracker = Tracker()
    tracker.opened()

    started = time.monotonic()
    assert tracker.wait(0.05) is False
    assert time.monotonic() - started < 1.0

    tracker.closed()
    assert tracker.wait(0.05) is True
    assert tracker.open == 0


def test_tracker_wakes_waiter_when_last_call_closes() -> None:
    tracker = Tracker()
    tracker.opened()
    threading.Timer(0.02, tracker.closed).start()

    assert tracker.wait(5) is True


def test_global_max_pending_sheds_across_functions(
    release: threading.Event, restore_max_pending: None
) -> None:
    shadowfn.configure(max_pending=2)

    @shadow(lambda: release.wait(5) and 1)
    def first() -> int:
        return 1

    @shadow(lambda: release.wait(5) and 2)
    def second() -> int:
        return 2

    for _ in range(3):
        assert first() == 1
        assert second() == 2
    release.set()
    assert shadowfn.drain(timeout=5)

    total_shed = first.shadow.stats.shed + second.shadow.stats.shed
    assert total_shed == 4
    assert first.shadow.stats.matched + second.shadow.stats.matched == 2


def test_timed_out_candidate_keeps_its_slot(release: threading.Event) -> None:
    @shadow(lambda: release.wait(5) and 1, timeout=0.02, max_pending=1)
    def primary() -> int:
        return 1

    primary()
    assert shadowfn.drain(timeout=5)
    primary()
    assert shadowfn.drain(timeout=5)

    assert primary.shadow.stats.timeouts == 1
    assert primary.shadow.stats.shed == 1

    release.set()
    deadline = time.monotonic() + 5
    while admission.pending and time.monotonic() < deadline:
        time.sleep(0.005)
    primary()
    assert shadowfn.drain(timeout=5)
    assert primary.shadow.stats.matched == 1


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "8"])
def test_configure_rejects_invalid_max_pending(bad: object) -> None:
    with pytest.raises(ValueError, match="max_pending must be a positive int") as info:
        shadowfn.configure(max_pending=bad)  # type: ignore[arg-type]

    assert repr(bad) in str(info.value)
    assert admission.max_pending == DEFAULT_MAX_PENDING


def test_drain_returns_false_while_candidate_runs(release: threading.Event) -> None:
    @shadow(lambda: release.wait(5) and 1)
    def primary() -> int:
        return 1

    primary()

    started = time.monotonic()
    assert shadowfn.drain(timeout=0.05) is False
    assert time.monotonic() - started < 1.0
    release.set()
    assert shadowfn.drain(timeout=5) is True
    assert primary.shadow.stats.matched == 1


class RejectedThread:
    """Stands in for ``threading.Thread`` when the system cannot start another thread."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def start(self) -> None:
        raise RuntimeError("can't start new thread")


def test_unstartable_candidate_is_internal_error(monkeypatch: pytest.MonkeyPatch) -> None:
    empty_pool = WorkerPool(max_workers=4)
    monkeypatch.setattr(shadowfn._call, "pool", empty_pool)
    monkeypatch.setattr(
        shadowfn._executor,
        "threading",
        types.SimpleNamespace(Thread=RejectedThread, Lock=threading.Lock, Condition=threading.Condition),
    )
    result = {"id": 1}

    @shadow(lambda: {"id": 1})
    def primary() -> dict[str, int]:
        return result

    with capture_logs() as logs:
        assert primary() is result
        assert shadowfn.drain(timeout=1) is True

    stats = primary.shadow.stats
    assert stats.calls == 1
    assert stats.sampled == 1
    assert stats.internal_errors == 1
    assert stats.pending == 0
    assert admission.pending == 0
    errors = [entry for entry in logs if entry["event"] == "shadow.internal_error"]
    assert len(errors) == 1
    assert errors[0]["error"] == "RuntimeError: can't start new thread"


def test_pool_forgets_thread_that_fails_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    pool = WorkerPool(max_workers=1)
    ran = threading.Event()
    with monkeypatch.context() as patch:
        patch.setattr(
            shadowfn._executor,
            "threading",
            types.SimpleNamespace(Thread=RejectedThread, Lock=threading.Lock, Condition=threading.Condition),
        )
        with pytest.raises(RuntimeError, match="can't start new thread"):
            pool.submit(lambda: None)

    assert pool.threads == 0
    pool.submit(ran.set)
    assert ran.wait(5)


def test_settled_calls_are_freed_before_their_deadline() -> None:
    body = {"items": list(range(100)), "text": "x" * 1000}

    @shadow(lambda i: body, timeout=30.0)
    def primary(i: int) -> dict[str, object]:
        return body

    for i in range(200):
        primary(i)
        assert shadowfn.drain(timeout=5)
    gc.collect()

    # Other tests' calls may still be alive; count only this function's.
    alive = [
        item
        for item in gc.get_objects()
        if isinstance(item, ShadowCall) and item.control.name == primary.shadow.name
    ]
    assert alive == []
    assert primary.shadow.stats.matched == 200


def test_timer_retries_thread_that_failed_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    timer = Timer()
    fired: list[str] = []
    done = threading.Event()
    with monkeypatch.context() as patch:
        patch.setattr(
            shadowfn._executor,
            "threading",
            types.SimpleNamespace(Thread=RejectedThread, Lock=threading.Lock, Condition=threading.Condition),
        )
        with pytest.raises(RuntimeError, match="can't start new thread"):
            timer.call_at(time.monotonic(), lambda: fired.append("first"))

    timer.call_at(time.monotonic(), lambda: (fired.append("second"), done.set()))

    assert done.wait(5)
    assert fired == ["first", "second"]
