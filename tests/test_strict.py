"""Strict mode: the context manager, the DivergenceError message, and the pytest plugin."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pycountry
import pytest
import structlog

import shadowfn
from shadowfn import DivergenceError, shadow

pytest_plugins = ["pytester"]


def country_v1(alpha_2: str) -> dict[str, Any]:
    country = pycountry.countries.get(alpha_2=alpha_2)
    return {"alpha_3": country.alpha_3, "name": country.name, "numeric": country.numeric}


def country_v2_wrong_name(alpha_2: str) -> dict[str, Any]:
    found = country_v1(alpha_2)
    found["name"] = found["name"].upper()
    return found


def country_v2_raises(alpha_2: str) -> dict[str, Any]:
    raise LookupError(f"no country {alpha_2}")


@shadow(country_v1, timeout=1.0)
def country_matching(alpha_2: str) -> dict[str, Any]:
    return country_v1(alpha_2)


@shadow(country_v2_wrong_name, timeout=1.0)
def country_diverging(alpha_2: str) -> dict[str, Any]:
    return country_v1(alpha_2)


@shadow(country_v2_raises, timeout=1.0)
def country_candidate_raises(alpha_2: str) -> dict[str, Any]:
    return country_v1(alpha_2)


def test_matching_call_returns_primary_object() -> None:
    returned: list[dict[str, Any]] = []

    @shadow(country_v1, timeout=1.0)
    def lookup(alpha_2: str) -> dict[str, Any]:
        result = country_v1(alpha_2)
        returned.append(result)
        return result

    with shadowfn.strict():
        result = lookup("DE")

    assert result is returned[0]
    assert shadowfn.stats()[lookup.shadow.name].matched == 1


def test_divergence_raises_with_function_and_diff() -> None:
    with shadowfn.strict(), pytest.raises(DivergenceError) as caught:
        country_diverging("FR")

    message = str(caught.value)
    assert "country_diverging" in message
    assert "body.name changed: 'France' -> 'FRANCE'" in message
    assert caught.value.outcome == "diverged"
    assert caught.value.divergence is not None
    assert caught.value.divergence.paths() == ["body.name"]
    assert caught.value.function.endswith("country_diverging")


def test_divergence_error_is_assertion_error() -> None:
    with shadowfn.strict(), pytest.raises(AssertionError):
        country_diverging("FR")


def test_candidate_traceback_in_message() -> None:
    with shadowfn.strict(), pytest.raises(DivergenceError) as caught:
        country_candidate_raises("JP")

    message = str(caught.value)
    assert "only the candidate raised" in message
    assert "candidate traceback:" in message
    assert "in country_v2_raises" in message
    assert "LookupError: no country JP" in message
    assert isinstance(caught.value.candidate_error, LookupError)


def test_primary_exception_chained_to_divergence() -> None:
    raised: list[Exception] = []

    def lenient(code: str) -> str:
        return code

    @shadow(lenient, timeout=1.0)
    def strict_lookup(code: str) -> str:
        error = KeyError(code)
        raised.append(error)
        raise error

    with shadowfn.strict(), pytest.raises(DivergenceError) as caught:
        strict_lookup("XX")

    assert caught.value.__cause__ is raised[0]
    assert "only the primary raised" in str(caught.value)


def test_matching_exceptions_reraise_primary_exception() -> None:
    raised: list[Exception] = []

    def also_fails(code: str) -> str:
        raise KeyError(code)

    @shadow(also_fails, timeout=1.0)
    def fails(code: str) -> str:
        error = KeyError(code)
        raised.append(error)
        raise error

    with shadowfn.strict(), pytest.raises(KeyError) as caught:
        fails("XX")

    assert caught.value is raised[0]


def test_outside_strict_divergence_does_not_raise() -> None:
    result = country_diverging("FR")

    assert result["name"] == "France"
    assert shadowfn.drain(timeout=5)
    assert shadowfn.stats()[country_diverging.shadow.name].diverged == 1


def test_hanging_candidate_raises_timeout_within_bound() -> None:
    release = threading.Event()

    def hangs(code: str) -> str:
        release.wait(10)
        return code

    @shadow(hangs, timeout=0.2)
    def echo(code: str) -> str:
        return code

    started = time.monotonic()
    try:
        with shadowfn.strict(grace=0.5), pytest.raises(DivergenceError) as caught:
            echo("DE")
    finally:
        release.set()

    assert time.monotonic() - started < 3
    assert caught.value.outcome == "timeouts"
    assert "did not finish within timeout=0.2 s" in str(caught.value)


def test_hanging_comparator_raises_no_outcome() -> None:
    release = threading.Event()

    def compare_hangs(primary: Any, candidate: Any) -> bool:
        release.wait(10)
        return True

    @shadow(country_v1, timeout=0.2, compare=compare_hangs)
    def lookup(alpha_2: str) -> dict[str, Any]:
        return country_v1(alpha_2)

    started = time.monotonic()
    try:
        with shadowfn.strict(grace=0.3), pytest.raises(DivergenceError) as caught:
            lookup("DE")
    finally:
        release.set()

    assert time.monotonic() - started < 3
    assert caught.value.outcome == "no_outcome"
    assert "no shadow outcome within 0.5 s" in str(caught.value)


def test_failing_comparator_raises_compare_error() -> None:
    def compare_fails(primary: Any, candidate: Any) -> bool:
        raise RuntimeError("comparator bug")

    @shadow(country_v1, timeout=1.0, compare=compare_fails)
    def lookup(alpha_2: str) -> dict[str, Any]:
        return country_v1(alpha_2)

    with shadowfn.strict(), pytest.raises(DivergenceError) as caught:
        lookup("DE")

    assert caught.value.outcome == "compare_errors"
    assert "RuntimeError: comparator bug" in str(caught.value)


@pytest.fixture
def blocking_log_sink() -> Iterator[threading.Event]:
    release = threading.Event()

    def block(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
        release.wait(10)
        raise structlog.DropEvent

    saved = structlog.get_config()
    structlog.configure(processors=[block])
    try:
        yield release
    finally:
        release.set()
        shadowfn.drain(timeout=10)
        structlog.configure(**saved)


def test_hanging_log_sink_does_not_block_strict_call(blocking_log_sink: threading.Event) -> None:
    started = time.monotonic()
    with shadowfn.strict():
        first = country_matching("IT")
        second = country_matching("ES")
        with pytest.raises(DivergenceError):
            country_diverging("PT")

    assert time.monotonic() - started < 3
    assert first["alpha_3"] == "ITA"
    assert second["alpha_3"] == "ESP"


def test_strict_mode_does_not_reach_other_threads() -> None:
    results: list[Any] = []

    def call_in_thread() -> None:
        try:
            results.append(country_diverging("FR"))
        except DivergenceError as exc:
            results.append(exc)

    with shadowfn.strict():
        worker = threading.Thread(target=call_in_thread)
        worker.start()
        worker.join(10)

    assert shadowfn.is_enabled()
    assert len(results) == 1
    assert isinstance(results[0], dict)


@pytest.mark.asyncio
async def test_strict_mode_is_scoped_to_its_task() -> None:
    async def candidate(code: str) -> str:
        return code.lower()

    @shadow(candidate, timeout=1.0)
    async def primary(code: str) -> str:
        return code

    async def plain() -> str:
        return await primary("FR")

    async def checked() -> str:
        with shadowfn.strict():
            return await primary("DE")

    outcomes = await asyncio.gather(plain(), checked(), return_exceptions=True)

    assert outcomes[0] == "FR"
    assert isinstance(outcomes[1], DivergenceError)


@pytest.mark.asyncio
async def test_async_wait_does_not_block_loop() -> None:
    async def slow_candidate(code: str) -> str:
        await asyncio.sleep(0.3)
        return code

    @shadow(slow_candidate, timeout=2.0)
    async def primary(code: str) -> str:
        return code

    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticking = asyncio.create_task(ticker())
    try:
        with shadowfn.strict():
            result = await primary("NL")
    finally:
        ticking.cancel()

    assert result == "NL"
    assert ticks >= 5


@pytest.mark.asyncio
async def test_async_divergence_raises() -> None:
    async def candidate(alpha_2: str) -> dict[str, Any]:
        return country_v2_wrong_name(alpha_2)

    @shadow(candidate, timeout=1.0)
    async def primary(alpha_2: str) -> dict[str, Any]:
        return country_v1(alpha_2)

    with shadowfn.strict(), pytest.raises(DivergenceError) as caught:
        await primary("BE")

    assert "body.name changed: 'Belgium' -> 'BELGIUM'" in str(caught.value)


@pytest.mark.asyncio
async def test_sync_primary_with_coroutine_candidate_on_loop() -> None:
    async def candidate(code: str) -> str:
        await asyncio.sleep(0.01)
        return code + "!"

    @shadow(candidate, timeout=1.0)
    def primary(code: str) -> str:
        return code

    with shadowfn.strict(), pytest.raises(DivergenceError) as caught:
        primary("AT")

    assert caught.value.outcome == "diverged"


def test_uncopyable_call_raises_in_strict_mode() -> None:
    returned: list[str] = []

    def candidate(lock: Any, code: str) -> str:
        return code

    @shadow(candidate, timeout=1.0)
    def primary(lock: Any, code: str) -> str:
        returned.append(code)
        return code

    with shadowfn.strict(), pytest.raises(DivergenceError) as caught:
        primary(threading.Lock(), "DE")

    assert returned == ["DE"]
    assert caught.value.outcome == "uncopyable"
    assert "could not compare this call" in str(caught.value)
    assert "pass copy_args=False" in str(caught.value)


def test_shed_call_raises_in_strict_mode() -> None:
    release = threading.Event()

    def hangs(code: str) -> str:
        release.wait(10)
        return code

    @shadow(hangs, timeout=5.0, max_pending=1)
    def echo(code: str) -> str:
        return code

    try:
        assert echo("DE") == "DE"
        with shadowfn.strict(), pytest.raises(DivergenceError) as caught:
            echo("FR")
    finally:
        release.set()

    assert caught.value.outcome == "shed"
    assert "max_pending" in str(caught.value)


def test_unsampled_call_passes_in_strict_mode() -> None:
    def candidate(code: str) -> str:
        return code.lower()

    # The sticky bucket of b"req-key-1" is 52, above rate 10.
    @shadow(candidate, rate=10, key=lambda code: b"req-key-1")
    def echo(code: str) -> str:
        return code

    with shadowfn.strict():
        result = echo("DE")

    assert result == "DE"
    assert echo.shadow.stats.sampled == 0


@pytest.mark.asyncio
async def test_async_uncopyable_call_raises_in_strict_mode() -> None:
    async def candidate(lock: Any, code: str) -> str:
        return code

    @shadow(candidate, timeout=1.0)
    async def primary(lock: Any, code: str) -> str:
        return code

    with shadowfn.strict(), pytest.raises(DivergenceError) as caught:
        await primary(threading.Lock(), "DE")

    assert caught.value.outcome == "uncopyable"


def test_grace_validation_names_parameter() -> None:
    expected = r"grace must be a finite number of seconds >= 0, got -1 \(int\)"
    with pytest.raises(ValueError, match=expected), shadowfn.strict(grace=-1):
        pass


# The pytest plugin, run in a separate pytest session ---------------------------------

PLUGIN_MODULE = """
import pytest
import shadowfn
from shadowfn import shadow


def upper(text):
    return text.upper()


@shadow(upper, timeout=1.0)
def echo(text):
    return text


@pytest.mark.shadowfn_strict
def test_marked():
    echo("quiet")


def test_fixture(shadowfn_strict):
    echo("quiet")


def test_unmarked():
    assert echo("quiet") == "quiet"


@pytest.mark.shadowfn_strict
async def test_marked_async():
    async def louder(text):
        return text.upper()

    @shadow(louder, timeout=1.0)
    async def async_echo(text):
        return text

    await async_echo("quiet")


@pytest.mark.shadowfn_strict
def test_marked_matching():
    @shadow(str.strip, timeout=1.0)
    def strip(text):
        return text.strip()

    assert strip(" x ") == "x"
"""


def test_plugin_marker_and_fixture(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plugin_module=PLUGIN_MODULE)

    result = pytester.runpytest_subprocess("-p", "asyncio", "--asyncio-mode=auto", "--strict-markers", "-rf")

    result.assert_outcomes(passed=2, failed=3)
    result.stdout.fnmatch_lines(["*DivergenceError: test_plugin_module.echo: the candidate diverged*"])
    result.stdout.fnmatch_lines(["*body changed: 'quiet' -> 'QUIET'*"])
    result.stdout.fnmatch_lines(
        [
            "FAILED *::test_marked - shadowfn.DivergenceError*",
            "FAILED *::test_fixture - shadowfn.DivergenceError*",
            "FAILED *::test_marked_async - shadowfn.Divergence*",
        ]
    )


ISOLATION_MODULE = """
import shadowfn
from shadowfn import shadow


def upper(text):
    return text.upper()


@shadow(upper, timeout=1.0)
def echo(text):
    return text


def test_first(shadowfn_isolated):
    echo("a")
    assert shadowfn_isolated.drain()
    assert len(shadowfn_isolated.log) == 1
    assert shadowfn_isolated.stats("echo")["test_isolation.echo"].diverged == 1


def test_second(shadowfn_isolated):
    assert len(shadowfn_isolated.log) == 0
    assert shadowfn_isolated.stats("echo")["test_isolation.echo"].diverged == 0
    echo("b")
    assert shadowfn_isolated.drain()
    assert [entry.divergence.summary() for entry in shadowfn.log.recent()] == [
        "body: 1 change: body changed: 'b' -> 'B'"
    ]
"""


def test_isolated_fixture_empties_log_and_counters(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_isolation=ISOLATION_MODULE)

    result = pytester.runpytest_subprocess("-p", "no:randomly")

    result.assert_outcomes(passed=2)
