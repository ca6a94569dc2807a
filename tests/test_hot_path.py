"""The caller-side fast paths: key building without Signature.bind, the sampling decision, counting."""

from __future__ import annotations

import hashlib
import inspect
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import shadowfn
from shadowfn import shadow
from shadowfn._events import RateLimiter
from shadowfn._keys import KeyBuilder, _encode, _encode_items, _encode_str
from shadowfn._sampling import decide, split_rate


def reference_key(function: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
    """Encode the arguments as bound by ``inspect.Signature.bind``, defaults applied."""
    bound = inspect.signature(function).bind(*args, **kwargs)
    bound.apply_defaults()
    parts = []
    for name, value in bound.arguments.items():
        parts.append(_encode_str(name))
        parts.append(_encode(value))
    return _encode_items(b"A", parts)


def one(x: Any) -> Any:
    return x


def two_with_default(x: Any, y: Any = 7) -> Any:
    return x


def keyword_only(x: Any, *, flag: Any = None, limit: Any) -> Any:
    return x


def three(a: Any, b: Any, c: Any = "c") -> Any:
    return a


CALLS: list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = [
    (one, (1,), {}),
    (one, (), {"x": 1}),
    (two_with_default, (1,), {}),
    (two_with_default, (1, 2), {}),
    (two_with_default, (1,), {"y": 2}),
    (two_with_default, (), {"y": 2, "x": 1}),
    (keyword_only, (1,), {"limit": 3}),
    (keyword_only, (1,), {"limit": 3, "flag": True}),
    (keyword_only, (), {"x": 1, "limit": [1, 2]}),
    (three, ("a", "b"), {}),
    (three, ("a",), {"c": None, "b": {"k": (1, 2)}}),
]


@pytest.mark.parametrize(("function", "args", "kwargs"), CALLS)
def test_key_matches_signature_bind(
    function: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    builder = KeyBuilder(inspect.signature(function), None, skip_first=False)

    assert builder.build(args, kwargs) == reference_key(function, args, kwargs)


def test_key_shared_by_call_shapes() -> None:
    builder = KeyBuilder(inspect.signature(two_with_default), None, skip_first=False)

    positional = builder.build((1, 2), {})
    assert builder.build((1,), {"y": 2}) == positional
    assert builder.build((), {"x": 1, "y": 2}) == positional


def test_selected_key_names_match_slow_path() -> None:
    builder = KeyBuilder(inspect.signature(three), ("c", "a"), skip_first=False)
    expected = _encode_items(b"A", [_encode_str("c"), _encode("z"), _encode_str("a"), _encode(1)])

    assert builder.build((1, 2), {"c": "z"}) == expected
    assert builder.build((1, 2, "z"), {}) == expected


def test_invalid_call_keys_on_arguments_as_given() -> None:
    builder = KeyBuilder(inspect.signature(two_with_default), None, skip_first=False)
    expected = _encode_items(
        b"A", [_encode_str("*args"), _encode([1]), _encode_str("**kwargs"), _encode({"x": 2})]
    )

    # x given twice: the primary raises TypeError too, and the key covers the arguments as passed.
    assert builder.build((1,), {"x": 2}) == expected


@given(
    x=st.one_of(st.integers(), st.text(), st.none(), st.lists(st.integers(), max_size=3)),
    y=st.one_of(st.integers(), st.floats(allow_nan=False), st.binary(max_size=8)),
    by_keyword=st.booleans(),
)
def test_key_fast_path_property(x: Any, y: Any, by_keyword: bool) -> None:
    builder = KeyBuilder(inspect.signature(two_with_default), None, skip_first=False)
    args, kwargs = ((x,), {"y": y}) if by_keyword else ((x, y), {})

    assert builder.build(args, kwargs) == reference_key(two_with_default, args, kwargs)


@pytest.mark.parametrize(
    ("key", "expected"),
    [(b"req-key-1", False), (b"hello", False), (b"", False), (b"req-30", True)],
)
def test_decide_worked_cases_at_rate_10(key: bytes, expected: bool) -> None:
    assert decide(key, 10, 0.0) is expected


@given(key=st.binary(max_size=32), rate=st.floats(min_value=0.001, max_value=99.999))
def test_decide_matches_digest_definition(key: bytes, rate: float) -> None:
    digest = hashlib.sha256(key).digest()
    bucket = int.from_bytes(digest[:4], "big") % 100
    whole, fraction = split_rate(rate)
    below = int.from_bytes(digest[4:8], "big") / 2**32 < fraction
    expected = bucket < whole or (bucket == whole and below)

    assert decide(key, whole, fraction) is expected


def test_unsampled_calls_counted_in_calls() -> None:
    def candidate(x: int) -> int:
        return x + 1

    @shadow(candidate, rate=1, name="hot_path.counting")
    def primary(x: int) -> int:
        return x + 1

    builder = KeyBuilder(inspect.signature(primary.__wrapped__), None, skip_first=False)
    expected_sampled = sum(shadowfn.should_shadow(builder.build((i,), {}), 1) for i in range(2000))

    threads = [
        threading.Thread(target=lambda start=start: [primary(i) for i in range(start, start + 500)])
        for start in range(0, 2000, 500)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert shadowfn.drain(timeout=10)

    stats = primary.shadow.stats
    assert stats.calls == 2000
    assert stats.sampled == expected_sampled
    assert stats.outcomes == stats.sampled
    assert stats.pending == 0


def test_failing_key_function_returns_primary_result() -> None:
    result = {"exact": "object"}

    def broken_key(x: int) -> bytes:
        raise RuntimeError("key function failed")

    def candidate(x: int) -> dict[str, str]:
        return {"exact": "object"}

    @shadow(candidate, rate=50, key=broken_key, name="hot_path.broken_key")
    def primary(x: int) -> dict[str, str]:
        return result

    assert primary(1) is result
    assert shadowfn.drain(timeout=5)
    assert primary.shadow.stats.unkeyable == 1


def test_unencodable_argument_returns_primary_result() -> None:
    result = object()
    lock = threading.Lock()

    def candidate(value: Any) -> object:
        return result

    @shadow(candidate, rate=50, name="hot_path.unencodable")
    def primary(value: Any) -> object:
        return result

    assert primary(lock) is result
    assert primary.shadow.stats.unkeyable == 1
    assert primary.shadow.stats.calls == 1


def test_invalid_call_raises_primary_type_error() -> None:
    def candidate(x: int, y: int = 7) -> int:
        return x

    @shadow(candidate, rate=50, name="hot_path.invalid_call")
    def primary(x: int, y: int = 7) -> int:
        return x

    with pytest.raises(TypeError, match="multiple values for argument 'x'"):
        primary(1, x=2)  # type: ignore[misc]
    assert shadowfn.drain(timeout=5)
    assert primary.shadow.stats.internal_errors == 0


def test_rate_limiter_accounts_every_event_across_threads() -> None:
    limiter = RateLimiter(interval=0.05)
    results: list[int | None] = []
    results_lock = threading.Lock()
    start = threading.Barrier(16)

    def call_many() -> None:
        start.wait()
        local = [limiter.allow("shed") for _ in range(2000)]
        with results_lock:
            results.extend(local)

    threads = [threading.Thread(target=call_many) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Past the interval, one more event is allowed and reports the rest.
    time.sleep(0.06)
    results.append(limiter.allow("shed"))

    allowed = [value for value in results if value is not None]
    assert len(results) == 16 * 2000 + 1
    assert sum(allowed) + len(allowed) == len(results)


def test_shed_burst_returns_primary_results() -> None:
    release = threading.Event()
    results = [object() for _ in range(16)]

    def hung(index: int) -> object:
        release.wait(10)
        return None

    @shadow(hung, rate=100, timeout=0.05, max_pending=1, name="hot_path.shed_burst")
    def primary(index: int) -> object:
        return results[index]

    returned: list[object] = [None] * 16
    start = threading.Barrier(16)

    def call(index: int) -> None:
        start.wait()
        for _ in range(200):
            returned[index] = primary(index)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    release.set()
    assert shadowfn.drain(timeout=10)

    assert all(returned[i] is results[i] for i in range(16))
    stats = primary.shadow.stats
    assert stats.calls == 16 * 200
    assert stats.shed == 16 * 200 - 1
    assert stats.outcomes == stats.calls
