"""Caller-side promises: the exact result, on time, whatever the shadow side does."""

from __future__ import annotations

import contextvars
import copy
import dataclasses
import os
import subprocess
import sys
import textwrap
import threading
import time
import traceback
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

import shadowfn
from shadowfn import ResponseRecord, shadow

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="none")


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """An event that blocked candidates wait on; set at teardown so no worker stays blocked."""
    event = threading.Event()
    yield event
    event.set()


@pytest.fixture
def raising_structlog() -> Iterator[list[str]]:
    """Configure structlog with a processor that raises on every event; restore the configuration after."""
    seen: list[str] = []

    def explode(logger: Any, method: str, event_dict: Any) -> Any:
        seen.append(event_dict["event"])
        raise RuntimeError("log sink is down")

    saved = structlog.get_config()
    structlog.configure(processors=[explode], cache_logger_on_first_use=False)
    try:
        yield seen
    finally:
        structlog.configure(**saved)


def settle() -> None:
    assert shadowfn.drain(timeout=5)


def run_python(script: str, **environment: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        env={**os.environ, **environment},
        timeout=30,
        check=False,
    )


def test_returned_object_is_primary_result() -> None:
    result = {"items": [1, 2, 3]}

    @shadow(lambda: {"items": [1, 2, 3]})
    def primary() -> dict[str, list[int]]:
        return result

    assert primary() is result
    settle()
    assert primary.shadow.stats.matched == 1


def test_reraised_exception_is_primary_exception() -> None:
    error = LookupError("no such user")

    @shadow(lambda user_id: "found")
    def find_user(user_id: int) -> str:
        raise error

    with pytest.raises(LookupError) as info:
        find_user(7)
    settle()

    assert info.value is error
    frames = [frame.name for frame in traceback.extract_tb(info.value.__traceback__)]
    assert frames[-1] == "find_user"
    assert find_user.shadow.stats.diverged == 1


def test_primary_keyboard_interrupt_is_reraised_and_counted() -> None:
    interrupt = KeyboardInterrupt()

    @shadow(lambda: "candidate")
    def primary() -> str:
        raise interrupt

    with pytest.raises(KeyboardInterrupt) as info:
        primary()
    settle()

    assert info.value is interrupt
    stats = primary.shadow.stats
    assert stats.cancelled == 1
    assert stats.sampled == stats.outcomes


def test_exception_traceback_is_unchanged_by_shadowing() -> None:
    def fail() -> None:
        raise ValueError("bad input")

    @shadow(lambda: None)
    def shadowed() -> None:
        fail()

    with pytest.raises(ValueError) as info:
        shadowed()
    settle()

    frames = [frame.name for frame in traceback.extract_tb(info.value.__traceback__)]
    assert frames[-2:] == ["shadowed", "fail"]


def test_slow_candidate_does_not_delay_caller(release: threading.Event) -> None:
    @shadow(lambda x: release.wait(1.0) and x, timeout=0.05)
    def primary(x: int) -> int:
        return x

    started = time.perf_counter()
    assert primary(1) == 1
    elapsed = time.perf_counter() - started

    assert elapsed < 0.3


def test_slow_candidate_is_counted_as_timeout_promptly(release: threading.Event) -> None:
    @shadow(lambda x: release.wait(1.0) and x, timeout=0.05)
    def primary(x: int) -> int:
        return x

    with capture_logs() as logs:
        started = time.perf_counter()
        primary(1)
        assert shadowfn.drain(timeout=0.5)
        settled_after = time.perf_counter() - started

    assert settled_after < 0.5
    assert not release.is_set()
    stats = primary.shadow.stats
    assert stats.timeouts == 1
    assert stats.pending == 0
    timeouts = [entry for entry in logs if entry["event"] == "shadow.candidate_timeout"]
    assert len(timeouts) == 1
    assert timeouts[0]["timeout_s"] == 0.05
    assert timeouts[0]["log_level"] == "warning"


def test_candidate_exception_does_not_reach_caller() -> None:
    @shadow(lambda x: 1 / 0)
    def primary(x: int) -> int:
        return x

    assert primary(3) == 3
    settle()

    entries = shadowfn.log.recent()
    assert len(entries) == 1
    assert entries[0].divergence.ok == (True, False)
    assert entries[0].candidate.error == "ZeroDivisionError: division by zero"


@pytest.mark.parametrize("exception", [SystemExit(3), KeyboardInterrupt()])
def test_candidate_base_exception_does_not_reach_caller(exception: BaseException) -> None:
    def candidate(x: int) -> int:
        raise exception

    @shadow(candidate)
    def primary(x: int) -> int:
        return x

    assert primary(3) == 3
    settle()
    assert primary(4) == 4
    settle()

    assert primary.shadow.stats.diverged == 2


def test_failing_compare_does_not_reach_caller() -> None:
    result = [1, 2]

    def compare(primary_value: Any, candidate_value: Any) -> bool:
        raise RuntimeError("comparator bug")

    @shadow(lambda: [1, 2], compare=compare)
    def primary() -> list[int]:
        return result

    with capture_logs() as logs:
        assert primary() is result
        settle()

    assert primary.shadow.stats.compare_errors == 1
    failures = [entry for entry in logs if entry["event"] == "shadow.compare_failed"]
    assert len(failures) == 1
    assert failures[0]["error"] == "RuntimeError: comparator bug"
    assert failures[0]["log_level"] == "error"


def test_failing_key_function_does_not_reach_caller() -> None:
    ran: list[int] = []

    def key(x: int) -> bytes:
        raise KeyError("tenant")

    @shadow(lambda x: ran.append(x), rate=50, key=key)
    def primary(x: int) -> int:
        return x

    with capture_logs() as logs:
        assert primary(5) == 5
        settle()

    assert ran == []
    assert primary.shadow.stats.unkeyable == 1
    warnings = [entry for entry in logs if entry["event"] == "shadow.unkeyable"]
    assert len(warnings) == 1
    assert "KeyError" in warnings[0]["reason"]


def test_failing_primary_adapter_spares_caller() -> None:
    result = {"id": 1}

    def adapter(value: Any) -> ResponseRecord:
        raise ValueError("cannot adapt")

    @shadow(lambda: {"id": 1}, adapter=adapter)
    def primary() -> dict[str, int]:
        return result

    assert primary() is result
    settle()

    stats = primary.shadow.stats
    assert stats.compare_errors == 1
    assert stats.sampled == stats.outcomes


def test_failing_candidate_adapter_spares_caller() -> None:
    result = {"source": "primary"}

    def adapter(value: Any) -> ResponseRecord:
        if value["source"] == "candidate":
            raise ValueError("cannot adapt the candidate's value")
        return ResponseRecord(body=value)

    @shadow(lambda: {"source": "candidate"}, adapter=adapter)
    def primary() -> dict[str, str]:
        return result

    with capture_logs() as logs:
        assert primary() is result
        settle()

    assert primary.shadow.stats.compare_errors == 1
    failures = [entry for entry in logs if entry["event"] == "shadow.compare_failed"]
    assert [entry["stage"] for entry in failures] == ["adapter"]


def test_adapter_wrong_type_is_compare_error() -> None:
    @shadow(lambda: 1, adapter=lambda value: {"body": value})  # type: ignore[arg-type, return-value]
    def primary() -> int:
        return 1

    assert primary() == 1
    settle()

    assert primary.shadow.stats.compare_errors == 1


def test_raising_log_processor_does_not_reach_caller(raising_structlog: list[str]) -> None:
    result = {"total": 10}

    @shadow(lambda: {"total": 11})
    def primary() -> dict[str, int]:
        return result

    assert primary() is result
    settle()

    assert raising_structlog == ["shadow.divergence"]
    assert primary.shadow.stats.diverged == 1
    assert len(shadowfn.log.recent()) == 1


def test_hanging_log_processor_does_not_delay_caller(release: threading.Event) -> None:
    def hang(logger: Any, method: str, event_dict: Any) -> Any:
        release.wait(1.0)
        return event_dict

    @shadow(lambda x: -x)
    def primary(x: int) -> int:
        return x

    saved = structlog.get_config()
    structlog.configure(processors=[hang, structlog.testing.LogCapture()], cache_logger_on_first_use=False)
    try:
        started = time.perf_counter()
        for value in range(1, 6):
            assert primary(value) == value
        elapsed = time.perf_counter() - started
        release.set()
        settle()
    finally:
        structlog.configure(**saved)

    assert elapsed < 0.3
    assert primary.shadow.stats.diverged == 5


def test_burst_is_shed_and_warned(release: threading.Event) -> None:
    @shadow(lambda x: release.wait(2.0) and x, max_pending=2, timeout=2.0)
    def primary(x: int) -> int:
        return x

    with capture_logs() as logs:
        started = time.perf_counter()
        results = [primary(i) for i in range(20)]
        elapsed = time.perf_counter() - started
        release.set()
        settle()

    assert results == list(range(20))
    assert elapsed < 0.3
    stats = primary.shadow.stats
    assert stats.shed == 18
    assert stats.matched == 2
    assert stats.sampled == stats.outcomes
    warnings = [entry for entry in logs if entry["event"] == "shadow.shed"]
    assert len(warnings) == 1
    assert warnings[0]["max_pending"] == 2
    assert warnings[0]["log_level"] == "warning"


def test_mutating_returned_value_causes_no_divergence(release: threading.Event) -> None:
    def candidate() -> dict[str, list[int]]:
        release.wait(1.0)
        return {"items": [1, 2, 3]}

    @shadow(candidate)
    def primary() -> dict[str, list[int]]:
        return {"items": [1, 2, 3]}

    result = primary()
    result["items"].append(4)
    result["extra"] = []
    release.set()
    settle()

    stats = primary.shadow.stats
    assert stats.matched == 1
    assert stats.diverged == 0


def test_mutation_with_compare_causes_no_divergence(release: threading.Event) -> None:
    def candidate() -> list[int]:
        release.wait(1.0)
        return [1, 2, 3]

    @shadow(candidate, compare=lambda left, right: left == right)
    def primary() -> list[int]:
        return [1, 2, 3]

    result = primary()
    result.clear()
    release.set()
    settle()

    assert primary.shadow.stats.matched == 1


def test_concurrent_callers_keep_counters_consistent() -> None:
    threads_count = 16
    calls_each = 60
    barrier = threading.Barrier(threads_count)
    failures: list[str] = []

    def candidate(x: int) -> int:
        return x if x % 3 else x + 1

    @shadow(candidate, rate=50, key=lambda x: b"k%d" % x, max_pending=10_000)
    def primary(x: int) -> int:
        return x

    def caller(offset: int) -> None:
        barrier.wait()
        for i in range(calls_each):
            value = offset * calls_each + i
            if primary(value) != value:
                failures.append(f"wrong result for {value}")

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    settle()

    values = range(threads_count * calls_each)
    sampled = [v for v in values if shadowfn.should_shadow(b"k%d" % v, 50)]
    stats = primary.shadow.stats
    assert failures == []
    assert stats.calls == len(values)
    assert stats.sampled == len(sampled)
    assert stats.pending == 0
    assert stats.sampled == stats.outcomes
    assert stats.matched + stats.diverged + stats.shed == len(sampled)
    assert stats.internal_errors == 0
    assert stats.diverged <= len([v for v in sampled if v % 3 == 0])
    assert len(shadowfn.log.recent(n=10_000)) == stats.diverged


def test_hung_candidate_does_not_block_exit() -> None:
    done = run_python(
        """
        import sys, threading, time
        from shadowfn import shadow

        @shadow(lambda x: threading.Event().wait(), timeout=0.05)
        def primary(x):
            return x

        for i in range(5):
            primary(i)
        # stderr, in one write: the events thread prints to stdout meanwhile.
        sys.stderr.write("finished %r\\n" % time.time())
        """
    )
    exited = time.time()
    finished = next(line for line in done.stderr.splitlines() if line.startswith("finished "))

    assert done.returncode == 0, done.stderr
    assert exited - float(finished.split()[1]) < 1.0


def test_copy_args_copies_on_sampled_calls_only() -> None:
    copies: list[str] = []

    @dataclasses.dataclass
    class Order:
        order_id: str

        def __deepcopy__(self, memo: dict[int, Any]) -> Order:
            copies.append(self.order_id)
            return Order(self.order_id)

    @shadow(lambda order: order.order_id, rate=10, key=lambda order: order.order_id)
    def primary(order: Order) -> str:
        return order.order_id

    primary(Order("req-30"))
    primary(Order("req-key-1"))
    primary(Order("hello"))
    settle()

    assert copies == ["req-30"]


def test_copy_args_gives_candidate_its_own_copy() -> None:
    received: list[Any] = []

    def candidate(items: list[int], options: dict[str, list[int]]) -> int:
        received.append((items, options))
        items.append(99)
        return sum(items[:-1])

    @shadow(candidate)
    def primary(items: list[int], options: dict[str, list[int]]) -> int:
        return sum(items)

    items = [1, 2, 3]
    options = {"shared": items}
    assert primary(items, options=options) == 6
    settle()

    assert items == [1, 2, 3]
    copied_items, copied_options = received[0]
    assert copied_items is not items
    assert copied_options["shared"] is copied_items
    assert primary.shadow.stats.matched == 1


def test_arguments_are_copied_before_primary_runs() -> None:
    @shadow(lambda items: sum(items))
    def primary(items: list[int]) -> int:
        total = sum(items)
        items.clear()
        return total

    assert primary([4, 5]) == 9
    settle()

    assert primary.shadow.stats.matched == 1


def test_copy_args_false_passes_same_objects() -> None:
    received: list[Any] = []
    argument = {"a": 1}

    @shadow(lambda value: received.append(value), copy_args=False)
    def primary(value: dict[str, int]) -> None:
        return None

    primary(argument)
    settle()

    assert received[0] is argument


def test_uncopyable_argument_runs_unshadowed_with_warning() -> None:
    ran: list[object] = []
    lock = threading.Lock()

    @shadow(lambda guard: ran.append(guard))
    def primary(guard: Any) -> str:
        return "primary"

    with capture_logs() as logs:
        assert primary(lock) == "primary"
        assert primary(lock) == "primary"
        settle()

    assert ran == []
    stats = primary.shadow.stats
    assert stats.uncopyable == 2
    assert stats.sampled == stats.outcomes
    warnings = [entry for entry in logs if entry["event"] == "shadow.uncopyable"]
    assert len(warnings) == 1
    assert "_thread.lock" in warnings[0]["reason"]
    assert "copy_args=False" in warnings[0]["fix"]
    assert warnings[0]["log_level"] == "warning"


def test_is_shadow_is_true_only_in_candidate() -> None:
    observed: dict[str, bool] = {}

    def candidate() -> str:
        observed["candidate"] = shadowfn.is_shadow()
        return "x"

    @shadow(candidate)
    def primary() -> str:
        observed["primary"] = shadowfn.is_shadow()
        return "x"

    primary()
    settle()

    assert observed == {"primary": False, "candidate": True}
    assert shadowfn.is_shadow() is False


def test_caller_context_variables_reach_candidate() -> None:
    observed: list[str] = []

    def candidate() -> str:
        observed.append(REQUEST_ID.get())
        REQUEST_ID.set("changed-by-candidate")
        return "x"

    @shadow(candidate)
    def primary() -> str:
        return "x"

    token = REQUEST_ID.set("req-81")
    try:
        primary()
        settle()
        assert REQUEST_ID.get() == "req-81"
    finally:
        REQUEST_ID.reset(token)

    assert observed == ["req-81"]


def test_bound_structlog_context_reaches_divergence_event() -> None:
    @shadow(lambda: "candidate")
    def primary() -> str:
        return "primary"

    saved = structlog.get_config()
    capture = structlog.testing.LogCapture()
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, capture], cache_logger_on_first_use=False
    )
    try:
        with structlog.contextvars.bound_contextvars(request_id="req-5"):
            primary()
        settle()
    finally:
        structlog.configure(**saved)

    divergences = [entry for entry in capture.entries if entry["event"] == "shadow.divergence"]
    assert len(divergences) == 1
    assert divergences[0]["request_id"] == "req-5"


def test_disable_and_enable_switch_shadowing() -> None:
    ran: list[int] = []

    @shadow(lambda x: ran.append(x))
    def primary(x: int) -> int:
        return x

    shadowfn.disable()
    assert shadowfn.is_enabled() is False
    assert primary(1) == 1
    shadowfn.enable()
    assert shadowfn.is_enabled() is True
    assert primary(2) == 2
    settle()

    assert ran == [2]
    assert primary.shadow.stats.calls == 1


def test_environment_variable_disables_shadowing() -> None:
    done = run_python(
        """
        import shadowfn
        from shadowfn import shadow

        ran = []

        @shadow(lambda x: ran.append(x))
        def primary(x):
            return x

        primary(1)
        shadowfn.drain(timeout=5)
        print("result", shadowfn.is_enabled(), ran, primary.shadow.stats.calls)
        shadowfn.enable()
        primary(2)
        shadowfn.drain(timeout=5)
        print("result", shadowfn.is_enabled(), ran, primary.shadow.stats.calls)
        """,
        SHADOWFN_DISABLED="1",
    )

    assert done.returncode == 0, done.stderr
    results = [line for line in done.stdout.splitlines() if line.startswith("result ")]
    assert results == ["result False [] 0", "result True [2] 1"]


def test_environment_variable_unset_leaves_shadowing_on() -> None:
    environment = {key: value for key, value in os.environ.items() if key != "SHADOWFN_DISABLED"}
    done = subprocess.run(
        [sys.executable, "-c", "import shadowfn; print(shadowfn.is_enabled())"],
        capture_output=True,
        text=True,
        env=environment,
        timeout=30,
        check=False,
    )

    assert done.stdout.strip() == "True"


def test_candidate_mutating_shared_state_cannot_change_result() -> None:
    config = {"scale": 2}

    def candidate(x: int) -> int:
        shared = copy.copy(config)
        shared["scale"] = 3
        return x * shared["scale"]

    @shadow(candidate)
    def primary(x: int) -> int:
        return x * config["scale"]

    assert primary(5) == 10
    settle()

    assert config == {"scale": 2}
    assert primary.shadow.stats.diverged == 1


def test_mutation_after_adapter_causes_no_divergence(release: threading.Event) -> None:
    def candidate() -> dict[str, list[int]]:
        release.wait(1.0)
        return {"items": [1, 2]}

    @shadow(candidate, adapter=lambda value: ResponseRecord(status=200, body=value))
    def primary() -> dict[str, list[int]]:
        return {"items": [1, 2]}

    result = primary()
    result["items"].append(3)
    release.set()
    settle()

    assert primary.shadow.stats.matched == 1


def test_mutation_of_returned_record_causes_no_divergence(release: threading.Event) -> None:
    def candidate() -> ResponseRecord:
        release.wait(1.0)
        return ResponseRecord(status=200, headers={"etag": "1"}, body={"items": [1, 2]})

    @shadow(candidate)
    def primary() -> ResponseRecord:
        return ResponseRecord(status=200, headers={"etag": "1"}, body={"items": [1, 2]})

    result = primary()
    result.body["items"].append(3)
    result.headers["etag"] = "2"  # type: ignore[index]
    release.set()
    settle()

    assert primary.shadow.stats.matched == 1
