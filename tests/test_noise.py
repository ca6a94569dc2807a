"""Noise cancellation: second runs of pure primaries and the noisy-path rule."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from typing import Any

import pycountry
import pytest
from structlog.testing import capture_logs

import shadowfn
from shadowfn import shadow
from shadowfn._noise import fold_path, is_noisy, wilson_bounds

CODES = ["DE", "FR", "IT", "ES", "PT", "NL", "BE", "AT", "PL", "SE", "FI", "DK", "IE", "GR", "CZ", "HU"]


def describe(alpha_2: str) -> dict[str, Any]:
    country = pycountry.countries.get(alpha_2=alpha_2)
    # A fresh request id on every run: the primary disagrees with itself here.
    return {"name": country.name, "alpha_3": country.alpha_3, "request_id": str(uuid.uuid4())}


def describe_v2(alpha_2: str) -> dict[str, Any]:
    # Differs for real on names with a space.
    found = describe(alpha_2)
    found["name"] = found["name"].replace(" ", "_")
    return found


def test_noise_rate_requires_pure() -> None:
    with pytest.raises(ValueError) as caught:
        shadow(describe_v2, noise_rate=5)

    message = str(caught.value)
    assert "noise_rate=5 requires pure=True" in message
    assert "without side effects" in message


@pytest.mark.parametrize(
    ("value", "error", "shown"),
    [
        (-1, ValueError, "got -1 (int)"),
        (101, ValueError, "got 101 (int)"),
        ("5", TypeError, "got '5' (str)"),
        (True, TypeError, "got True (bool)"),
        (float("nan"), ValueError, "got nan (float)"),
    ],
)
def test_invalid_noise_rate_rejected(value: Any, error: type[Exception], shown: str) -> None:
    with pytest.raises(error) as caught:
        shadow(describe_v2, noise_rate=value, pure=True)

    message = str(caught.value)
    assert message.startswith("noise_rate must be a number in [0, 100] (percent of sampled calls)")
    assert shown in message


def test_invalid_pure_rejected() -> None:
    with pytest.raises(TypeError, match=r"pure must be True or False, got 'yes' \(str\)"):
        shadow(describe_v2, pure="yes")  # type: ignore[arg-type]


def test_noise_off_by_default() -> None:
    @shadow(describe_v2)
    def lookup(alpha_2: str) -> dict[str, Any]:
        return describe(alpha_2)

    lookup("DE")

    assert shadowfn.drain(timeout=5)
    assert lookup.shadow.noise is None
    assert shadowfn.log.recent()[0].noisy_paths == ()


def test_noisy_path_marked_and_real_path_kept() -> None:
    @shadow(describe_v2, noise_rate=100, pure=True)
    def lookup(alpha_2: str) -> dict[str, Any]:
        return describe(alpha_2)

    # Gather noise evidence first: entries are judged with the evidence at settlement.
    for code in CODES:
        lookup(code)
    assert shadowfn.drain(timeout=5)
    evidence = lookup.shadow.noise
    assert evidence is not None
    assert evidence.noise_runs == len(CODES)
    assert evidence.noise_counts == {"body.request_id": len(CODES)}
    assert evidence.noisy_paths == ("body.request_id",)

    with capture_logs() as logs:
        lookup("CZ")
        assert shadowfn.drain(timeout=5)

    entry = shadowfn.log.recent(1)[0]
    assert entry.noisy_paths == ("body.request_id",)
    assert "noisy: body.request_id" in repr(entry)
    assert entry.to_dict()["noisy_paths"] == ["body.request_id"]
    divergences = [event for event in logs if event["event"] == "shadow.divergence"]
    assert divergences[0]["noisy_paths"] == ["body.request_id"]


def test_real_path_not_noisy() -> None:
    @shadow(describe_v2, noise_rate=100, pure=True)
    def lookup(alpha_2: str) -> dict[str, Any]:
        return describe(alpha_2)

    # "United Kingdom": the candidate writes "United_Kingdom".
    for _ in range(12):
        lookup("GB")
    assert shadowfn.drain(timeout=5)

    lookup("GB")
    assert shadowfn.drain(timeout=5)
    entry = shadowfn.log.recent(1)[0]
    assert set(entry.divergence.paths()) == {"body.name", "body.request_id"}
    assert entry.noisy_paths == ("body.request_id",)
    assert not entry.noise_only


def test_noise_only_entry() -> None:
    @shadow(describe, noise_rate=100, pure=True)
    def lookup(alpha_2: str) -> dict[str, Any]:
        return describe(alpha_2)

    for code in CODES:
        lookup(code)
    assert shadowfn.drain(timeout=5)
    lookup("DE")
    assert shadowfn.drain(timeout=5)

    assert shadowfn.log.recent(1)[0].noise_only


def test_second_run_off_caller_thread_on_own_copy() -> None:
    calls: list[tuple[int, int, bool]] = []

    def candidate(codes: list[str]) -> list[str]:
        return sorted(codes)

    @shadow(candidate, noise_rate=100, pure=True)
    def lookup(codes: list[str]) -> list[str]:
        calls.append((threading.get_ident(), id(codes), shadowfn.is_shadow()))
        return sorted(codes)

    argument = ["FR", "DE"]
    result = lookup(argument)
    assert shadowfn.drain(timeout=5)

    assert result == ["DE", "FR"]
    assert len(calls) == 2
    caller, noise = calls
    assert caller == (threading.get_ident(), id(argument), False)
    assert noise[0] != threading.get_ident()
    assert noise[1] != id(argument)
    assert noise[2] is True
    assert lookup.shadow.noise is not None
    assert lookup.shadow.noise.noise_runs == 1


def test_hanging_noise_run_does_not_delay_caller() -> None:
    release = threading.Event()
    returned: list[dict[str, Any]] = []

    @shadow(describe, noise_rate=100, pure=True, timeout=1.0)
    def lookup(alpha_2: str) -> dict[str, Any]:
        if shadowfn.is_shadow():
            release.wait(10)
        result = {"alpha_2": alpha_2}
        returned.append(result)
        return result

    try:
        started = time.monotonic()
        result = lookup("DE")
        elapsed = time.monotonic() - started
    finally:
        release.set()

    assert result is returned[0]
    assert elapsed < 0.3
    assert shadowfn.drain(timeout=5)


def test_failing_noise_run_does_not_reach_caller() -> None:
    returned: list[dict[str, Any]] = []

    @shadow(describe, noise_rate=100, pure=True)
    def lookup(alpha_2: str) -> dict[str, Any]:
        if shadowfn.is_shadow():
            raise RuntimeError("second run failed")
        result = describe(alpha_2)
        returned.append(result)
        return result

    result = lookup("DE")

    assert result is returned[0]
    assert shadowfn.drain(timeout=5)
    evidence = lookup.shadow.noise
    assert evidence is not None
    assert evidence.noise_counts == {"ok": 1, "error": 1}


def test_noise_run_without_free_slot_is_skipped() -> None:
    release = threading.Event()

    def slow(alpha_2: str) -> str:
        release.wait(10)
        return alpha_2

    @shadow(slow, noise_rate=100, pure=True, max_pending=1)
    def lookup(alpha_2: str) -> str:
        return alpha_2

    try:
        assert lookup("DE") == "DE"
    finally:
        release.set()

    assert shadowfn.drain(timeout=5)
    evidence = lookup.shadow.noise
    assert evidence is not None
    assert evidence.skipped == 1
    assert evidence.noise_runs == 0


@pytest.mark.asyncio
async def test_async_primary_noise_run() -> None:
    async def candidate(alpha_2: str) -> dict[str, Any]:
        return describe(alpha_2)

    @shadow(candidate, noise_rate=100, pure=True)
    async def lookup(alpha_2: str) -> dict[str, Any]:
        await asyncio.sleep(0)
        return describe(alpha_2)

    for code in CODES[:6]:
        await lookup(code)
    assert await shadowfn.adrain(timeout=5)

    evidence = lookup.shadow.noise
    assert evidence is not None
    assert evidence.noise_runs == 6
    assert evidence.noisy_paths == ("body.request_id",)


@pytest.mark.asyncio
async def test_hanging_async_noise_run_does_not_delay_caller() -> None:
    release = asyncio.Event()

    async def candidate(alpha_2: str) -> str:
        return alpha_2

    @shadow(candidate, noise_rate=100, pure=True, timeout=0.2)
    async def lookup(alpha_2: str) -> str:
        if shadowfn.is_shadow():
            await release.wait()
        return alpha_2

    started = time.monotonic()
    result = await lookup("DE")

    assert result == "DE"
    assert time.monotonic() - started < 0.3
    assert await shadowfn.adrain(timeout=5)
    assert lookup.shadow.noise is not None
    assert lookup.shadow.noise.skipped == 1


def test_fold_path() -> None:
    assert fold_path("body.items[3].ts") == "body.items[*].ts"
    assert fold_path("body.rows[12][0]") == "body.rows[*][*]"
    assert fold_path("headers.etag") == "headers.etag"


def test_wilson_bounds_known_values() -> None:
    low, high = wilson_bounds(0, 10)
    assert low == 0.0
    assert high == pytest.approx(0.2775, abs=1e-4)
    low, high = wilson_bounds(10, 10)
    assert low == pytest.approx(0.7225, abs=1e-4)
    assert high == 1.0
    assert wilson_bounds(0, 0) == (0.0, 1.0)


@pytest.mark.parametrize(
    ("divergences", "compared", "noise_count", "noise_runs", "noisy"),
    [
        (10, 10, 10, 10, True),  # differs every time, in noise too
        (1, 1, 1, 1, True),  # little evidence either way: the noise explains it
        (50, 50, 0, 100, False),  # never seen in noise
        (50, 50, 30, 100, False),  # 100% divergence, clearly above 30% noise
        (35, 100, 30, 100, True),  # 35% divergence within the margin of 30% noise
        (80, 100, 30, 100, False),  # 80% divergence, clearly above 30% noise
        (5, 1000, 1, 20, True),  # rare in both
    ],
)
def test_noise_rule(divergences: int, compared: int, noise_count: int, noise_runs: int, noisy: bool) -> None:
    assert is_noisy(divergences, compared, noise_count, noise_runs) is noisy


def test_strict_message_marks_noisy_paths() -> None:
    @shadow(describe_v2, noise_rate=100, pure=True)
    def lookup(alpha_2: str) -> dict[str, Any]:
        return describe(alpha_2)

    for code in CODES:
        lookup(code)
    assert shadowfn.drain(timeout=5)

    with shadowfn.strict(), pytest.raises(shadowfn.DivergenceError) as caught:
        lookup("GB")

    message = str(caught.value)
    assert "body.name changed: 'United Kingdom' -> 'United_Kingdom'" in message
    assert "noisy paths (the primary also differs from itself there): body.request_id" in message
