"""Shadower: explicit sync and async calls, the outcome, sampling, threads and misbehaving hooks."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pycountry
import pytest
import structlog
from structlog.testing import capture_logs

import shadowfn
from shadowfn import ResponseRecord, ShadowConfig, Shadower, ShadowOutcome, shadow

COUNTRIES = [
    {"alpha_2": c.alpha_2, "alpha_3": c.alpha_3, "name": c.name, "numeric": c.numeric}
    for c in pycountry.countries
]


class LookupFailed(Exception):
    pass


def encode_legacy(record: dict[str, str]) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":")).encode()


def encode_utf8(record: dict[str, str]) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def encode_orjson(record: dict[str, str]) -> bytes:
    return orjson.dumps(record, option=orjson.OPT_SORT_KEYS)


def lookup(code: str) -> dict[str, str]:
    country = pycountry.countries.get(alpha_2=code)
    if country is None:
        raise LookupFailed(f"no country {code!r}")
    return {"alpha_2": country.alpha_2, "name": country.name}


def lookup_v2(code: str) -> dict[str, str]:
    country = pycountry.countries.lookup(code)
    return {"alpha_2": country.alpha_2, "name": country.name}


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """An event that hung hooks wait on; set at teardown so their workers return."""
    event = threading.Event()
    yield event
    event.set()


@pytest.fixture
def failing_log_sink() -> Iterator[None]:
    def explode(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("log sink is down")

    structlog.configure(processors=[explode])
    yield
    structlog.reset_defaults()


# Sync calls --------------------------------------------------------------------


def test_call_match_returns_primary_value() -> None:
    shadower = Shadower(encode_utf8, encode_orjson, ShadowConfig(timeout=1.0))
    record = COUNTRIES[4]

    outcome = shadower.call(record)

    assert outcome.sampled
    assert outcome.outcome == "matched"
    assert outcome.divergence is None
    assert not outcome.candidate_failed
    assert outcome.value() == encode_utf8(record)
    assert outcome.primary == ResponseRecord(body=encode_utf8(record))
    assert outcome.candidate == ResponseRecord(body=encode_orjson(record))
    assert outcome.candidate_ms is not None


def test_call_value_is_same_object() -> None:
    result = {"alpha_2": "FR"}
    shadower = Shadower(lambda code: result, lambda code: {"alpha_2": code})

    outcome = shadower.call("FR")

    assert outcome.value() is result
    assert outcome.outcome == "matched"


def test_call_reraises_same_exception() -> None:
    shadower = Shadower(lookup, lookup_v2, ShadowConfig(timeout=1.0))

    outcome = shadower.call("XX")

    assert not outcome.primary.ok
    assert outcome.primary.error is not None
    assert "no country 'XX'" in outcome.primary.error
    with pytest.raises(LookupFailed) as first:
        outcome.value()
    with pytest.raises(LookupFailed) as second:
        outcome.value()
    assert first.value is second.value
    # The candidate raised LookupError, a different error: a divergence.
    assert outcome.outcome == "diverged"
    assert outcome.candidate_failed
    assert isinstance(outcome.candidate_error, LookupError)


def test_call_divergence_is_logged_and_counted() -> None:
    shadower = Shadower(encode_legacy, encode_orjson, ShadowConfig(timeout=1.0), name="codec.encode")
    record = next(r for r in COUNTRIES if r["alpha_2"] == "AX")

    with capture_logs() as events:
        outcome = shadower.call(record)
        assert shadowfn.drain(timeout=5)

    assert outcome.outcome == "diverged"
    assert outcome.divergence is not None
    assert outcome.divergence.paths() == ["body.name"]
    assert outcome.value() == encode_legacy(record)
    entries = shadowfn.log.recent(function="codec.encode")
    assert len(entries) == 1
    assert entries[0].divergence == outcome.divergence
    divergences = [e for e in events if e["event"] == "shadow.divergence"]
    assert len(divergences) == 1
    assert divergences[0]["function"] == "codec.encode"
    stats = shadowfn.stats()["codec.encode"]
    assert stats.diverged == 1
    assert stats.sampled == 1


def test_call_ignore_rules_apply() -> None:
    config = ShadowConfig(timeout=1.0, ignore=("body.name",))
    shadower = Shadower(lookup, lambda code: {**lookup(code), "name": "changed"}, config)

    outcome = shadower.call("DE")

    assert outcome.outcome == "matched"
    assert outcome.divergence is None


def test_call_candidate_raises() -> None:
    def broken(record: dict[str, str]) -> bytes:
        raise MemoryError("candidate ran out of memory")

    shadower = Shadower(encode_utf8, broken, ShadowConfig(timeout=1.0))

    outcome = shadower.call(COUNTRIES[0])

    assert outcome.value() == encode_utf8(COUNTRIES[0])
    assert outcome.candidate_failed
    assert isinstance(outcome.candidate_error, MemoryError)
    assert outcome.divergence is not None
    assert outcome.divergence.ok == (True, False)


def test_call_hung_candidate_times_out(release: threading.Event) -> None:
    def hang(record: dict[str, str]) -> bytes:
        release.wait(10)
        return b""

    shadower = Shadower(encode_utf8, hang, ShadowConfig(timeout=0.2))

    started = time.monotonic()
    outcome = shadower.call(COUNTRIES[1])
    elapsed = time.monotonic() - started

    assert outcome.value() == encode_utf8(COUNTRIES[1])
    assert outcome.outcome == "timeouts"
    assert outcome.candidate_failed
    assert outcome.candidate is None
    assert outcome.candidate_ms is None
    assert elapsed < 2.0


def test_call_hung_compare_returns_pending(release: threading.Event) -> None:
    def compare(primary: Any, candidate: Any) -> bool:
        release.wait(10)
        return True

    shadower = Shadower(encode_utf8, encode_orjson, ShadowConfig(timeout=0.2, compare=compare))

    started = time.monotonic()
    outcome = shadower.call(COUNTRIES[2])
    elapsed = time.monotonic() - started

    assert outcome.value() == encode_utf8(COUNTRIES[2])
    assert outcome.outcome == "pending"
    assert outcome.sampled
    assert outcome.divergence is None
    assert elapsed < 2.0


def test_call_compare_raises() -> None:
    def compare(primary: Any, candidate: Any) -> bool:
        raise ValueError("comparator bug")

    shadower = Shadower(encode_utf8, encode_orjson, ShadowConfig(timeout=1.0, compare=compare))

    outcome = shadower.call(COUNTRIES[3])

    assert outcome.value() == encode_utf8(COUNTRIES[3])
    assert outcome.outcome == "compare_errors"
    assert outcome.divergence is None


def test_call_adapter_raises() -> None:
    def adapter(value: Any) -> ResponseRecord:
        raise KeyError("adapter bug")

    shadower = Shadower(encode_utf8, encode_orjson, ShadowConfig(timeout=1.0, adapter=adapter))

    outcome = shadower.call(COUNTRIES[3])

    assert outcome.value() == encode_utf8(COUNTRIES[3])
    assert outcome.outcome == "compare_errors"
    assert outcome.primary == ResponseRecord(body=encode_utf8(COUNTRIES[3]))


@pytest.mark.usefixtures("failing_log_sink")
def test_call_survives_failing_log_sink() -> None:
    shadower = Shadower(encode_legacy, encode_orjson, ShadowConfig(timeout=1.0))
    record = next(r for r in COUNTRIES if r["alpha_2"] == "RE")

    outcome = shadower.call(record)
    assert shadowfn.drain(timeout=5)

    assert outcome.value() == encode_legacy(record)
    assert outcome.outcome == "diverged"


def test_call_survives_hanging_log_sink(release: threading.Event) -> None:
    entered = threading.Event()

    def block(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
        entered.set()
        release.wait(10)
        return event

    structlog.configure(processors=[block, structlog.processors.KeyValueRenderer()])
    try:
        shadower = Shadower(encode_legacy, encode_orjson, ShadowConfig(timeout=1.0))
        records = [r for r in COUNTRIES if not r["name"].isascii()][:3]

        started = time.monotonic()
        outcomes = [shadower.call(record) for record in records]
        elapsed = time.monotonic() - started

        assert entered.wait(5)
        assert elapsed < 2.0
        for outcome, record in zip(outcomes, records, strict=True):
            assert outcome.value() == encode_legacy(record)
            assert outcome.outcome == "diverged"
    finally:
        release.set()
        assert shadowfn.drain(timeout=5)
        structlog.reset_defaults()


def test_call_sampling_follows_config() -> None:
    config = ShadowConfig(rate=20, timeout=1.0, key=lambda record: record["alpha_3"].encode())
    calls: list[str] = []

    def candidate(record: dict[str, str]) -> bytes:
        calls.append(record["alpha_3"])
        return encode_orjson(record)

    shadower = Shadower(encode_utf8, candidate, config)

    outcomes = [shadower.call(record) for record in COUNTRIES]

    expected = [config.should_shadow(r["alpha_3"].encode()) for r in COUNTRIES]
    assert [o.sampled for o in outcomes] == expected
    assert sorted(calls) == sorted(
        r["alpha_3"] for r, chosen in zip(COUNTRIES, expected, strict=True) if chosen
    )
    for outcome, record in zip(outcomes, COUNTRIES, strict=True):
        assert outcome.value() == encode_utf8(record)
        assert outcome.outcome == ("matched" if outcome.sampled else "unsampled")


def test_call_rate_zero_skips_candidate() -> None:
    calls: list[Any] = []
    shadower = Shadower(encode_utf8, calls.append, ShadowConfig(rate=0))

    outcome = shadower.call(COUNTRIES[0])

    assert not outcome.sampled
    assert outcome.candidate is None
    assert calls == []
    assert outcome.primary == ResponseRecord(body=encode_utf8(COUNTRIES[0]))


def test_call_kill_switch_skips_candidate() -> None:
    calls: list[Any] = []
    shadower = Shadower(encode_utf8, calls.append)
    shadowfn.disable()

    outcome = shadower.call(COUNTRIES[0])

    assert not outcome.sampled
    assert outcome.outcome == "unsampled"
    assert calls == []


def test_call_propagates_base_exception() -> None:
    class Stop(BaseException):
        pass

    def primary(code: str) -> str:
        raise Stop()

    shadower = Shadower(primary, lambda code: code, ShadowConfig(timeout=1.0))

    with pytest.raises(Stop):
        shadower.call("FR")
    assert shadowfn.drain(timeout=5)


def test_shadower_shared_between_threads() -> None:
    shadower = Shadower(encode_legacy, encode_orjson, ShadowConfig(timeout=5.0), name="threads.encode")
    results: dict[int, list[tuple[dict[str, str], ShadowOutcome[bytes]]]] = {}
    barrier = threading.Barrier(8)

    def work(worker: int) -> None:
        barrier.wait()
        mine = COUNTRIES[worker::8][:25]
        results[worker] = [(record, shadower.call(record)) for record in mine]

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    pairs = [pair for worker in sorted(results) for pair in results[worker]]
    assert len(pairs) == 200
    for record, outcome in pairs:
        assert outcome.value() == encode_legacy(record)
        assert outcome.outcome == ("matched" if record["name"].isascii() else "diverged")
    stats = shadowfn.stats()["threads.encode"]
    assert stats.sampled == 200
    assert stats.matched + stats.diverged == 200


def test_call_rejects_coroutine_primary() -> None:
    async def primary(code: str) -> str:
        return code

    shadower = Shadower(primary, lookup)

    with pytest.raises(TypeError, match="acall"):
        shadower.call("FR")


@pytest.mark.parametrize(
    ("primary", "candidate", "config", "message"),
    [
        (42, lookup, None, "primary must be a callable"),
        (lookup, "lookup_v2", None, "candidate must be a callable"),
        (lookup, lookup_v2, {"rate": 5}, "config must be a ShadowConfig"),
        (lookup, lookup_v2, ShadowConfig(key="country"), "key names parameter 'country'"),
    ],
)
def test_shadower_rejects_bad_arguments(primary: Any, candidate: Any, config: Any, message: str) -> None:
    with pytest.raises((TypeError, ValueError), match=message):
        Shadower(primary, candidate, config)


def test_outcome_constructed_directly() -> None:
    record = ResponseRecord(body=1)

    outcome: ShadowOutcome[Any] = ShadowOutcome(record, None, None, False, False)

    assert outcome.primary is record
    assert outcome.value() is None
    assert outcome.outcome == "unsampled"


# Async calls ---------------------------------------------------------------------


async def alookup(code: str) -> dict[str, str]:
    await asyncio.sleep(0)
    return lookup(code)


async def alookup_v2(code: str) -> dict[str, str]:
    await asyncio.sleep(0)
    return lookup_v2(code)


@pytest.mark.asyncio
async def test_acall_match() -> None:
    shadower = Shadower(alookup, alookup_v2, ShadowConfig(timeout=1.0))

    outcome = await shadower.acall("FR")

    assert outcome.outcome == "matched"
    assert outcome.value() == {"alpha_2": "FR", "name": "France"}
    assert outcome.candidate == outcome.primary


@pytest.mark.asyncio
async def test_acall_value_is_same_object() -> None:
    result = {"alpha_2": "JP"}

    async def primary(code: str) -> dict[str, str]:
        return result

    shadower = Shadower(primary, lookup_v2, ShadowConfig(timeout=1.0, ignore=("body.name",)))

    outcome = await shadower.acall("JP")

    assert outcome.value() is result
    assert outcome.outcome == "matched"


@pytest.mark.asyncio
async def test_acall_reraises_same_exception() -> None:
    shadower = Shadower(alookup, alookup_v2, ShadowConfig(timeout=1.0))

    outcome = await shadower.acall("XX")

    with pytest.raises(LookupFailed) as first:
        outcome.value()
    with pytest.raises(LookupFailed) as second:
        outcome.value()
    assert first.value is second.value
    assert outcome.candidate_failed


@pytest.mark.asyncio
async def test_acall_hung_candidate_keeps_loop_running() -> None:
    async def hang(code: str) -> dict[str, str]:
        await asyncio.Event().wait()
        return {}

    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    shadower = Shadower(alookup, hang, ShadowConfig(timeout=0.3))
    ticking = asyncio.ensure_future(ticker())
    started = time.monotonic()
    outcome = await shadower.acall("IT")
    elapsed = time.monotonic() - started
    ticking.cancel()

    assert outcome.value() == lookup("IT")
    assert outcome.outcome == "timeouts"
    assert outcome.candidate_failed
    assert elapsed < 2.0
    assert ticks >= 5


@pytest.mark.asyncio
async def test_acall_hung_compare_returns_pending(release: threading.Event) -> None:
    def compare(primary: Any, candidate: Any) -> bool:
        release.wait(10)
        return True

    shadower = Shadower(alookup, alookup_v2, ShadowConfig(timeout=0.2, compare=compare))

    started = time.monotonic()
    outcome = await shadower.acall("PT")
    elapsed = time.monotonic() - started

    assert outcome.value() == lookup("PT")
    assert outcome.outcome == "pending"
    assert elapsed < 2.0


@pytest.mark.asyncio
async def test_acall_sync_candidate() -> None:
    shadower = Shadower(alookup, lookup_v2, ShadowConfig(timeout=1.0))

    outcome = await shadower.acall("BR")

    assert outcome.outcome == "matched"


@pytest.mark.asyncio
async def test_acall_rejects_sync_primary() -> None:
    shadower = Shadower(lookup, lookup_v2)

    with pytest.raises(TypeError, match="use call"):
        await shadower.acall("FR")


@pytest.mark.asyncio
async def test_call_inside_loop_with_async_candidate() -> None:
    # call() blocks this thread, so the coroutine candidate must run elsewhere.
    shadower = Shadower(lookup, alookup_v2, ShadowConfig(timeout=1.0))

    started = time.monotonic()
    outcome = shadower.call("ES")
    elapsed = time.monotonic() - started

    assert outcome.outcome == "matched"
    assert elapsed < 1.0


@pytest.mark.asyncio
async def test_acall_shared_between_tasks() -> None:
    shadower = Shadower(alookup, alookup_v2, ShadowConfig(timeout=5.0), name="tasks.lookup")
    codes = [c["alpha_2"] for c in COUNTRIES[:30]]

    outcomes = await asyncio.gather(*(shadower.acall(code) for code in codes))

    for code, outcome in zip(codes, outcomes, strict=True):
        assert outcome.value() == lookup(code)
        assert outcome.outcome == "matched"
    assert shadowfn.stats()["tasks.lookup"].matched == 30


def test_decorated_primary_is_shadowed_once() -> None:
    def encode_v2(record: dict[str, str]) -> str:
        return json.dumps(record, separators=(",", ":"))

    @shadow(encode_v2, name="shadower.decorated")
    def encode(record: dict[str, str]) -> str:
        return json.dumps(record, separators=(",", ":"))

    shadower = Shadower(encode, encode_v2, name="shadower.explicit")
    outcome = shadower.call({"name": "France"})

    assert outcome.outcome == "matched"
    assert shadowfn.drain(timeout=5)
    assert "shadower.decorated" not in shadowfn.stats() or shadowfn.stats()["shadower.decorated"].calls == 0
    assert shadowfn.stats()["shadower.explicit"].calls == 1
