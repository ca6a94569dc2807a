"""Sticky keys: canonical argument encoding, ``key=`` and unkeyable calls."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import hashlib
import inspect
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from typing import Any, NamedTuple

import pytest
from structlog.testing import capture_logs

import shadowfn
from shadowfn import shadow
from shadowfn._keys import KeyBuilder, UnencodableError, canonical_bytes


class Color(enum.Enum):
    RED = 1
    GREEN = 2


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Pair(NamedTuple):
    left: int
    right: int


class Opaque:
    """A type the canonical encoding does not cover."""


class AlsoOpaque:
    """A second type the canonical encoding does not cover."""


def key_of(function: Callable[..., Any], *args: Any, skip_first: bool = False, **kwargs: Any) -> bytes:
    builder = KeyBuilder(inspect.signature(function), None, skip_first=skip_first)
    return builder.build(args, kwargs)


def digest(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:16]


def diverging_candidate(*args: Any, **kwargs: Any) -> str:
    return "candidate"


def logged_keys() -> list[str]:
    assert shadowfn.drain(timeout=5)
    return [entry.key for entry in shadowfn.log.recent(100)]


def test_positional_and_keyword_calls_share_key() -> None:
    def f(x: int, y: int) -> None: ...

    expected = key_of(f, 1, 2)
    assert key_of(f, 1, y=2) == expected
    assert key_of(f, x=1, y=2) == expected
    assert key_of(f, y=2, x=1) == expected


def test_defaults_are_part_of_key() -> None:
    def f(x: int, y: int = 5, *, z: str = "z") -> None: ...

    assert key_of(f, 1) == key_of(f, 1, 5, z="z")
    assert key_of(f, 1) != key_of(f, 1, 6)
    assert key_of(f, 1) != key_of(f, 1, z="other")


def test_variadic_arguments_bind_to_signature() -> None:
    def f(a: int, /, *rest: int, flag: bool = False, **extra: int) -> None: ...

    assert key_of(f, 1, 2, 3) == key_of(f, 1, 2, 3, flag=False)
    assert key_of(f, 1, 2, 3) != key_of(f, 1, 3, 2)
    assert key_of(f, 1, b=2, c=3) == key_of(f, 1, c=3, b=2)


def test_different_arguments_give_different_keys() -> None:
    def f(x: Any) -> None: ...

    keys = {key_of(f, value) for value in (1, True, 1.0, "1", b"1", [1], (1,), {1}, None)}

    assert len(keys) == 9


def test_decorated_calls_share_key_however_bound() -> None:
    @shadow(diverging_candidate)
    def f(x: int, y: int = 0) -> str:
        return "primary"

    f(1, y=2)
    f(1, 2)
    f(x=1, y=2)

    keys = logged_keys()
    assert len(keys) == 3
    assert len(set(keys)) == 1


def test_self_is_left_out_of_method_key() -> None:
    class Service:
        def __init__(self, label: str) -> None:
            self.label = label

        @shadow(diverging_candidate)
        def lookup(self, item: int) -> str:
            return "primary"

    Service("a").lookup(7)
    Service("b").lookup(7)
    Service("c").lookup(item=7)

    keys = logged_keys()
    assert len(keys) == 3
    assert len(set(keys)) == 1


def test_cls_is_left_out_of_classmethod_key() -> None:
    class Base:
        @shadow(diverging_candidate)
        @classmethod
        def build(cls, item: int) -> str:
            return "primary"

    class Derived(Base):
        pass

    Base.build(7)
    Derived.build(7)
    Base().build(item=7)

    keys = logged_keys()
    assert len(keys) == 3
    assert len(set(keys)) == 1


def test_method_key_matches_function_key_without_self() -> None:
    def plain(item: int) -> None: ...

    def method(self: object, item: int) -> None: ...

    assert key_of(method, 7, skip_first=True) == key_of(plain, 7)


def test_key_parameter_name_selects_that_argument() -> None:
    @shadow(diverging_candidate, key="user_id")
    def fetch(user_id: int, trace: Opaque) -> str:
        return "primary"

    fetch(42, Opaque())
    fetch(42, Opaque())
    fetch(43, Opaque())

    keys = logged_keys()
    assert len(keys) == 3
    assert keys[1] == keys[2]
    assert keys[0] != keys[1]
    assert fetch.shadow.stats.unkeyable == 0


def test_key_tuple_selects_those_arguments() -> None:
    def f(a: int, b: int, c: int) -> None: ...

    builder = KeyBuilder(inspect.signature(f), ("a", "c"), skip_first=False)

    assert builder.build((1, 2, 3), {}) == builder.build((1, 99, 3), {})
    assert builder.build((1, 2, 3), {}) == builder.build((), {"c": 3, "a": 1, "b": 0})
    assert builder.build((1, 2, 3), {}) != builder.build((1, 2, 4), {})


def test_callable_key_bytes_are_hashed_as_is() -> None:
    @shadow(diverging_candidate, key=lambda request: request["id"].encode() + b"-raw")
    def handle(request: dict[str, str]) -> str:
        return "primary"

    handle({"id": "abc"})

    assert logged_keys() == [digest(b"abc-raw")]


@pytest.mark.parametrize("wrap", [bytearray, memoryview])
def test_callable_key_bytearray_is_hashed_as_bytes(wrap: Callable[[bytes], Any]) -> None:
    @shadow(diverging_candidate, key=lambda request_id: wrap(request_id.encode()))
    def handle(request_id: str) -> str:
        return "primary"

    handle("req-30")

    assert logged_keys() == [digest(b"req-30")]


def test_callable_key_str_is_hashed_as_utf8() -> None:
    @shadow(diverging_candidate, key=lambda request: request["id"])
    def handle(request: dict[str, str]) -> str:
        return "primary"

    handle({"id": "Åland"})

    assert logged_keys() == [digest("Åland".encode())]


def test_callable_key_other_value_is_encoded_canonically() -> None:
    @shadow(diverging_candidate, key=lambda request: (request["tenant"], request["id"]))
    def handle(request: dict[str, Any]) -> str:
        return "primary"

    handle({"tenant": "t1", "id": 5, "noise": 1})
    handle({"tenant": "t1", "id": 5, "noise": 2})

    assert logged_keys() == [digest(canonical_bytes(("t1", 5)))] * 2


def test_callable_key_decides_sampling() -> None:
    ran: list[str] = []

    @shadow(lambda request_id: ran.append(request_id), rate=10, key=lambda request_id: request_id)
    def handle(request_id: str) -> str:
        return request_id

    handle("req-30")
    handle("req-key-1")
    assert shadowfn.drain(timeout=5)

    assert ran == ["req-30"]


def test_dict_insertion_order_does_not_change_key() -> None:
    forward = {"a": 1, "b": [1, 2], "c": {"x": None, "y": 2.5}}
    backward = {"c": {"y": 2.5, "x": None}, "b": [1, 2], "a": 1}

    assert canonical_bytes(forward) == canonical_bytes(backward)
    assert canonical_bytes({"a": 1, "b": 2}) != canonical_bytes({"a": 2, "b": 1})


def test_set_order_does_not_change_key() -> None:
    assert canonical_bytes({"x", "y", "z"}) == canonical_bytes({"z", "y", "x"})
    assert canonical_bytes(frozenset({3, 1, 2})) == canonical_bytes(frozenset({1, 2, 3}))


ENCODABLE = [
    None,
    True,
    False,
    0,
    -(2**80),
    1.5,
    float("nan"),
    float("-inf"),
    "Åland",
    b"\x00\xff",
    bytearray(b"xy"),
    [1, "a"],
    (1, "a"),
    {"k": [1, {"n": None}]},
    {1, 2},
    frozenset({"a"}),
    Point(1, 2),
    Color.RED,
    datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc),
    datetime.date(2024, 1, 2),
    datetime.time(3, 4, 5),
    datetime.timedelta(days=1, seconds=2),
    decimal.Decimal("1.10"),
    uuid.UUID("12345678-1234-5678-1234-567812345678"),
    Pair(1, 2),
]


@pytest.mark.parametrize("value", ENCODABLE, ids=lambda value: type(value).__name__)
def test_listed_types_encode_deterministically(value: Any) -> None:
    encoded = canonical_bytes(value)

    assert isinstance(encoded, bytes)
    assert encoded
    assert canonical_bytes(value) == encoded


def test_listed_types_encode_distinctly() -> None:
    encoded = [canonical_bytes(value) for value in ENCODABLE]

    assert len(set(encoded)) == len(ENCODABLE)


def test_equal_looking_values_of_different_types_differ() -> None:
    assert canonical_bytes(Pair(1, 2)) != canonical_bytes((1, 2))
    assert canonical_bytes(Point(1, 2)) != canonical_bytes({"x": 1, "y": 2})
    assert canonical_bytes(decimal.Decimal("1.10")) != canonical_bytes(decimal.Decimal("1.1"))
    assert canonical_bytes([1, 2]) != canonical_bytes((1, 2))


def test_unknown_type_is_unencodable() -> None:
    with pytest.raises(UnencodableError) as info:
        canonical_bytes({"nested": [Opaque()]})

    assert info.value.value_type is Opaque
    assert "Opaque" in str(info.value)


def test_key_is_the_same_in_another_process() -> None:
    value = {"names": {"alpha", "beta", "gamma"}, "when": datetime.date(2024, 5, 6), "n": (1, 2.5)}
    script = (
        "import datetime, sys\n"
        "from shadowfn._keys import canonical_bytes\n"
        "value = {'n': (1, 2.5), 'when': datetime.date(2024, 5, 6), 'names': {'gamma', 'beta', 'alpha'}}\n"
        "sys.stdout.write(canonical_bytes(value).hex())\n"
    )
    outputs = set()
    for seed in ("1", "2"):
        environment = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, env=environment, check=True
        )
        outputs.add(done.stdout)

    assert outputs == {canonical_bytes(value).hex()}


def test_unencodable_argument_runs_unshadowed() -> None:
    ran: list[object] = []
    argument = Opaque()

    @shadow(lambda value: ran.append(value), rate=50)
    def primary(value: object) -> object:
        return value

    assert primary(argument) is argument
    assert shadowfn.drain(timeout=5)

    stats = primary.shadow.stats
    assert ran == []
    assert stats.calls == 1
    assert stats.sampled == 1
    assert stats.unkeyable == 1


def test_unkeyable_warns_once_per_function_and_type() -> None:
    @shadow(diverging_candidate, rate=50)
    def first(value: object) -> str:
        return "primary"

    @shadow(diverging_candidate, rate=50)
    def second(value: object) -> str:
        return "primary"

    with capture_logs() as logs:
        for _ in range(3):
            first(Opaque())
            first([AlsoOpaque()])
            second(Opaque())
        assert shadowfn.drain(timeout=5)

    warnings = [entry for entry in logs if entry["event"] == "shadow.unkeyable"]
    assert len(warnings) == 3
    assert all(entry["log_level"] == "warning" for entry in warnings)
    assert sorted((entry["function"], "AlsoOpaque" in entry["reason"]) for entry in warnings) == sorted(
        [(first.shadow.name, False), (first.shadow.name, True), (second.shadow.name, False)]
    )
    assert all("key=" in entry["fix"] for entry in warnings)
    assert first.shadow.stats.unkeyable == 6
    assert second.shadow.stats.unkeyable == 3


def test_unkeyable_warning_omits_argument_values() -> None:
    class Secretive:
        def __repr__(self) -> str:
            return "password=hunter2"

    @shadow(diverging_candidate, rate=50)
    def login(credentials: object) -> str:
        return "primary"

    with capture_logs() as logs:
        login(Secretive())
        assert shadowfn.drain(timeout=5)

    assert logs
    assert all("hunter2" not in repr(entry) for entry in logs)


def test_unkeyable_warns_once_under_concurrent_calls() -> None:
    barrier = threading.Barrier(16)

    @shadow(diverging_candidate, rate=50)
    def primary(value: object) -> str:
        return "primary"

    def caller() -> None:
        barrier.wait()
        for _ in range(20):
            primary(Opaque())

    with capture_logs() as logs:
        threads = [threading.Thread(target=caller) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert shadowfn.drain(timeout=5)

    assert len([entry for entry in logs if entry["event"] == "shadow.unkeyable"]) == 1
    assert primary.shadow.stats.unkeyable == 320
