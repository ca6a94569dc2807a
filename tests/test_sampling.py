"""Sticky sampling: ``shadowfn.should_shadow`` and the bucket it is built on."""

from __future__ import annotations

import hashlib
import types
from collections.abc import Callable
from typing import Any

import pytest

import shadowfn
import shadowfn._sampling as sampling_module
from shadowfn import shadow
from shadowfn._sampling import bucket_of

KEYS = [f"request-{i}".encode() for i in range(5000)]


class CountingSha256:
    """Stands in for the ``hashlib`` module inside ``shadowfn._sampling`` and counts SHA-256 calls."""

    def __init__(self) -> None:
        self.calls = 0

    def sha256(self, data: bytes = b"") -> Any:
        self.calls += 1
        return hashlib.sha256(data)


@pytest.fixture
def counting_hashlib(monkeypatch: pytest.MonkeyPatch) -> CountingSha256:
    counter = CountingSha256()
    monkeypatch.setattr(sampling_module, "hashlib", types.SimpleNamespace(sha256=counter.sha256))
    return counter


def request_shadow_bucket(key: bytes) -> int:
    """The bucket as the Rust crate request-shadow computes it: first 4 SHA-256 bytes, big-endian, mod 100."""
    return int.from_bytes(hashlib.sha256(key).digest()[:4], "big") % 100


@pytest.mark.parametrize(
    ("key", "bucket", "shadowed"),
    [
        (b"req-key-1", 52, False),
        (b"hello", 14, False),
        (b"", 10, False),
        (b"req-30", 7, True),
    ],
)
def test_worked_cases_at_rate_10(key: bytes, bucket: int, shadowed: bool) -> None:
    assert bucket_of(key) == bucket
    assert shadowfn.should_shadow(key, 10) is shadowed


def test_integer_rates_match_request_shadow() -> None:
    for rate in (1, 10, 37, 50, 99):
        for key in KEYS[:500]:
            assert shadowfn.should_shadow(key, rate) is (request_shadow_bucket(key) < rate)


def test_same_key_gets_same_decision() -> None:
    first = [shadowfn.should_shadow(key, 33.3) for key in KEYS]
    second = [shadowfn.should_shadow(bytes(key), 33.3) for key in KEYS]

    assert first == second


def test_bytes_like_keys_decide_like_bytes() -> None:
    for key in KEYS[:200]:
        expected = shadowfn.should_shadow(key, 42.5)
        assert shadowfn.should_shadow(bytearray(key), 42.5) is expected
        assert shadowfn.should_shadow(memoryview(key), 42.5) is expected


def test_rate_zero_decides_without_hashing(counting_hashlib: CountingSha256) -> None:
    for key in KEYS[:100]:
        assert shadowfn.should_shadow(key, 0) is False
        assert shadowfn.should_shadow(key, 0.0) is False

    assert counting_hashlib.calls == 0


def test_rate_hundred_decides_without_hashing(counting_hashlib: CountingSha256) -> None:
    for key in KEYS[:100]:
        assert shadowfn.should_shadow(key, 100) is True
        assert shadowfn.should_shadow(key, 100.0) is True

    assert counting_hashlib.calls == 0


def test_intermediate_rate_hashes_each_key(counting_hashlib: CountingSha256) -> None:
    # The instrument works: a rate strictly between 0 and 100 hashes every key.
    for key in KEYS[:100]:
        shadowfn.should_shadow(key, 10)

    assert counting_hashlib.calls == 100


def test_decorated_function_at_rate_zero_skips_hashing(counting_hashlib: CountingSha256) -> None:
    ran: list[int] = []

    @shadow(lambda x: ran.append(x), rate=0)
    def primary(x: int) -> int:
        return x

    for value in range(50):
        assert primary(value) == value
    assert shadowfn.drain(timeout=5)

    assert counting_hashlib.calls == 0
    assert ran == []
    assert primary.shadow.stats.calls == 0


def test_decorated_function_at_rate_hundred_skips_hashing(counting_hashlib: CountingSha256) -> None:
    ran: list[int] = []

    @shadow(lambda x: ran.append(x), rate=100)
    def primary(x: int) -> int:
        return x

    for value in range(20):
        assert primary(value) == value
    assert shadowfn.drain(timeout=5)

    assert counting_hashlib.calls == 0
    assert sorted(ran) == list(range(20))
    assert primary.shadow.stats.sampled == 20


def test_raising_rate_only_adds_keys() -> None:
    rates = [0, 0.001, 0.5, 1, 1.25, 9.99, 10, 10.5, 33.3, 50, 50.0001, 75.75, 99.9, 100]
    for key in KEYS:
        decisions = [shadowfn.should_shadow(key, rate) for rate in rates]
        first_true = decisions.index(True) if True in decisions else len(decisions)
        assert decisions == [False] * first_true + [True] * (len(decisions) - first_true), key


def test_fractional_rate_splits_boundary_bucket() -> None:
    boundary = [key for key in KEYS if bucket_of(key) == 10]
    at_ten = [key for key in boundary if shadowfn.should_shadow(key, 10)]
    at_ten_and_half = [key for key in boundary if shadowfn.should_shadow(key, 10.5)]
    at_eleven = [key for key in boundary if shadowfn.should_shadow(key, 11)]

    assert at_ten == []
    assert 0 < len(at_ten_and_half) < len(boundary)
    assert at_eleven == boundary


@pytest.mark.parametrize(("rate", "low", "high"), [(0.5, 10, 45), (2.5, 90, 170), (50, 2300, 2700)])
def test_rate_is_percent_of_keys(rate: float, low: int, high: int) -> None:
    shadowed = sum(shadowfn.should_shadow(key, rate) for key in KEYS)

    assert low <= shadowed <= high


@pytest.mark.parametrize("key", ["text", 12, None, ["a"]])
def test_non_bytes_key_is_rejected(key: Any) -> None:
    with pytest.raises(TypeError, match="key must be bytes") as info:
        shadowfn.should_shadow(key, 10)

    assert type(key).__name__ in str(info.value)


@pytest.mark.parametrize("rate", [-1, 100.5, 150, float("nan"), float("inf"), "10", True, None])
def test_invalid_rate_is_rejected(rate: Any) -> None:
    with pytest.raises((TypeError, ValueError)) as info:
        shadowfn.should_shadow(b"key", rate)

    message = str(info.value)
    assert "rate" in message
    assert "[0, 100]" in message
    assert repr(rate) in message


def test_sampling_decides_which_calls_run_the_candidate() -> None:
    seen: list[str] = []
    key_of: Callable[[str], bytes] = str.encode

    @shadow(lambda request_id: seen.append(request_id), rate=10, key=key_of)
    def handle(request_id: str) -> str:
        return request_id

    request_ids = [f"req-{i}" for i in range(300)]
    for request_id in request_ids:
        handle(request_id)
    assert shadowfn.drain(timeout=5)

    expected = [r for r in request_ids if shadowfn.should_shadow(r.encode(), 10)]
    assert sorted(seen) == sorted(expected)
    assert "req-30" in seen
    assert handle.shadow.stats.sampled == len(expected)
