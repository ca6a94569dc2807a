"""structlog events: emitted off the caller's thread, rate-limited, never raising."""

from __future__ import annotations

import threading
import time
import types
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

import shadowfn
import shadowfn._background
import shadowfn._events
from shadowfn import shadow
from shadowfn._events import RateLimiter, _Emitter, emit, emitter_counts, flush


@pytest.fixture
def release() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


def test_rate_limiter_allows_first_event_per_key() -> None:
    limiter = RateLimiter(interval=60)

    assert limiter.allow("a") == 0
    assert limiter.allow("b") == 0
    assert limiter.allow("a") is None
    assert limiter.allow("a") is None


def test_rate_limiter_reports_suppressed_count_after_interval() -> None:
    limiter = RateLimiter(interval=0.02)

    assert limiter.allow("shed") == 0
    for _ in range(5):
        assert limiter.allow("shed") is None
    time.sleep(0.03)

    assert limiter.allow("shed") == 5
    assert limiter.allow("shed") is None


def test_events_run_in_the_given_context() -> None:
    saved = structlog.get_config()
    capture = structlog.testing.LogCapture()
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, capture], cache_logger_on_first_use=False
    )
    try:
        with structlog.contextvars.bound_contextvars(tenant="t-9"):
            emit("warning", "shadow.test_event", None, function="f")
        assert flush(timeout=5)
    finally:
        structlog.configure(**saved)

    assert capture.entries == [
        {"event": "shadow.test_event", "function": "f", "tenant": "t-9", "log_level": "warning"}
    ]


def test_failing_processor_loses_only_its_event() -> None:
    calls: list[str] = []

    def fail_once(logger: Any, method: str, event_dict: Any) -> Any:
        calls.append(event_dict["event"])
        if event_dict["event"] == "shadow.first":
            raise RuntimeError("sink is down")
        return event_dict

    saved = structlog.get_config()
    capture = structlog.testing.LogCapture()
    structlog.configure(processors=[fail_once, capture], cache_logger_on_first_use=False)
    failed_before = emitter_counts()["failed"]
    try:
        emit("warning", "shadow.first", None)
        emit("warning", "shadow.second", None)
        assert flush(timeout=5)
    finally:
        structlog.configure(**saved)

    assert calls == ["shadow.first", "shadow.second"]
    assert [entry["event"] for entry in capture.entries] == ["shadow.second"]
    assert emitter_counts()["failed"] == failed_before + 1


def test_flush_returns_false_while_a_processor_hangs(release: threading.Event) -> None:
    def hang(logger: Any, method: str, event_dict: Any) -> Any:
        release.wait(5)
        return event_dict

    saved = structlog.get_config()
    structlog.configure(processors=[hang, structlog.testing.LogCapture()], cache_logger_on_first_use=False)
    try:
        started = time.perf_counter()
        emit("info", "shadow.slow", None)
        assert flush(timeout=0.05) is False
        assert time.perf_counter() - started < 1.0
        release.set()
        assert flush(timeout=5) is True
    finally:
        structlog.configure(**saved)


def test_divergence_event_carries_key_digest_and_summary() -> None:
    @shadow(lambda secret: {"token": secret + "-v2"}, key="secret")
    def issue(secret: str) -> dict[str, str]:
        return {"token": secret}

    with capture_logs() as logs:
        issue("hunter2")
        assert shadowfn.drain(timeout=5)

    divergences = [entry for entry in logs if entry["event"] == "shadow.divergence"]
    assert len(divergences) == 1
    event = divergences[0]
    assert event["log_level"] == "warning"
    assert event["function"] == issue.shadow.name
    assert len(event["key"]) == 16
    assert int(event["key"], 16) >= 0
    assert event["summary"] == shadowfn.log.recent()[0].divergence.summary()
    assert event["diff"]["body"]["changes"][0]["path"] == "body.token"
    assert event["primary_ms"] >= 0
    assert event["candidate_ms"] >= 0


def test_divergence_event_values_are_truncated() -> None:
    @shadow(lambda: "b" * 10_000)
    def primary() -> str:
        return "a" * 10_000

    with capture_logs() as logs:
        primary()
        assert shadowfn.drain(timeout=5)

    event = next(entry for entry in logs if entry["event"] == "shadow.divergence")
    assert len(repr(event)) < 2000


def test_match_is_logged_at_debug() -> None:
    @shadow(lambda: 1)
    def primary() -> int:
        return 1

    with capture_logs() as logs:
        primary()
        assert shadowfn.drain(timeout=5)

    assert [(entry["event"], entry["log_level"]) for entry in logs] == [("shadow.match", "debug")]


class RejectedThread:
    """Stands in for ``threading.Thread`` when the system cannot start another thread."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def start(self) -> None:
        raise RuntimeError("can't start new thread")


def test_emitter_retries_thread_that_failed_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    emitter = _Emitter()
    saved = structlog.get_config()
    capture = structlog.testing.LogCapture()
    structlog.configure(processors=[capture], cache_logger_on_first_use=False)
    try:
        with monkeypatch.context() as patch:
            patch.setattr(
                shadowfn._background,
                "threading",
                types.SimpleNamespace(
                    Thread=RejectedThread, Lock=threading.Lock, Condition=threading.Condition
                ),
            )
            with pytest.raises(RuntimeError, match="can't start new thread"):
                emitter.emit("warning", "shadow.first", None, {})

        emitter.emit("warning", "shadow.second", None, {})
        assert emitter.flush(5) is True
    finally:
        structlog.configure(**saved)

    assert [entry["event"] for entry in capture.entries] == ["shadow.first", "shadow.second"]
