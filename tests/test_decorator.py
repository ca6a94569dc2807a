"""The ``@shadow`` decorator on functions and methods: wrapping, ``.shadow`` and validation."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import math
import pickle
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

import shadowfn
from shadowfn import ShadowConfig, shadow


def double(x: int) -> int:
    return x * 2


def settle() -> None:
    assert shadowfn.drain(timeout=5)


def test_plain_function_runs_candidate_and_matches() -> None:
    seen: list[int] = []

    def candidate(x: int) -> int:
        seen.append(x)
        return x * 2

    @shadow(candidate)
    def primary(x: int) -> int:
        return x * 2

    assert primary(21) == 42
    settle()

    assert seen == [21]
    assert primary.shadow.stats.matched == 1


def test_plain_function_records_divergence() -> None:
    @shadow(lambda x: x * 3)
    def primary(x: int) -> int:
        return x * 2

    assert primary(5) == 10
    settle()

    entries = shadowfn.log.recent()
    assert len(entries) == 1
    assert entries[0].function == primary.shadow.name
    assert entries[0].divergence.paths() == ["body"]
    assert primary.shadow.stats.diverged == 1


def test_instance_method_with_method_name_candidate() -> None:
    class Pricing:
        def __init__(self, base: int) -> None:
            self.base = base

        def price_v2(self, quantity: int) -> int:
            return self.base * quantity + 1

        @shadow("price_v2")
        def price(self, quantity: int) -> int:
            return self.base * quantity

    assert Pricing(10).price(3) == 30
    settle()

    entries = shadowfn.log.recent()
    assert len(entries) == 1
    assert entries[0].candidate.body == 31


def test_method_name_candidate_resolves_per_instance() -> None:
    class Codec:
        def encode_v2(self, text: str) -> str:
            return text.upper()

        @shadow("encode_v2")
        def encode(self, text: str) -> str:
            return text.upper()

    class FixedCodec(Codec):
        def encode_v2(self, text: str) -> str:
            return text.lower()

    assert Codec().encode("ab") == "AB"
    settle()
    assert shadowfn.log.recent() == []

    assert FixedCodec().encode("ab") == "AB"
    settle()
    assert [entry.candidate.body for entry in shadowfn.log.recent()] == ["ab"]


def test_method_called_through_class_binds_instance() -> None:
    class Counter:
        def __init__(self) -> None:
            self.step = 2

        def add_v2(self, value: int) -> int:
            return value + self.step

        @shadow("add_v2")
        def add(self, value: int) -> int:
            return value + self.step

    counter = Counter()
    assert Counter.add(counter, 1) == 3
    settle()

    assert Counter.add.shadow.stats.matched == 1


def test_missing_candidate_method_is_internal_error() -> None:
    with pytest.warns(UserWarning, match="names no attribute"):

        class Service:
            @shadow("no_such_method")
            def run(self, x: int) -> int:
                return x

    assert Service().run(4) == 4
    settle()

    stats = Service.run.shadow.stats
    assert stats.internal_errors == 1
    assert stats.sampled == stats.outcomes


def test_function_candidate_of_method_receives_self() -> None:
    received: list[object] = []

    def lookup_v2(self: Store, item: str) -> str:
        received.append(self)
        return self.prefix + item

    class Store:
        prefix = "item:"

        @shadow(lookup_v2)
        def lookup(self, item: str) -> str:
            return self.prefix + item

    store = Store()
    assert store.lookup("a") == "item:a"
    settle()

    assert received == [store]
    assert Store.lookup.shadow.stats.matched == 1


def test_classmethod_under_decorator() -> None:
    class Factory:
        scale = 3

        @classmethod
        def make_v2(cls, x: int) -> int:
            return cls.scale * x

        @shadow("make_v2")
        @classmethod
        def make(cls, x: int) -> int:
            return cls.scale * x

    class BigFactory(Factory):
        scale = 10

    assert Factory.make(2) == 6
    assert BigFactory.make(2) == 20
    assert Factory().make(2) == 6
    settle()

    stats = Factory.make.shadow.stats
    assert stats.matched == 3
    assert stats.diverged == 0


def test_bound_method_candidate_of_method_is_called_as_is() -> None:
    class NewStore:
        prefix = "item:"

        def lookup(self, item: str) -> str:
            return self.prefix + item

    class Store:
        prefix = "item:"

        @shadow(NewStore().lookup)
        def lookup(self, item: str) -> str:
            return self.prefix + item

    assert Store().lookup("a") == "item:a"
    settle()

    assert Store.lookup.shadow.stats.matched == 1


def test_function_candidate_of_classmethod_receives_cls() -> None:
    received: list[object] = []

    def make_v2(cls: type, x: int) -> int:
        received.append(cls)
        return x

    class Factory:
        @shadow(make_v2)
        @classmethod
        def make(cls, x: int) -> int:
            return x

    assert Factory.make(2) == 2
    settle()

    assert received == [Factory]
    assert Factory.make.shadow.stats.matched == 1


def test_staticmethod_under_decorator() -> None:
    class Tools:
        @shadow(double)
        @staticmethod
        def twice(x: int) -> int:
            return x + x

    assert Tools.twice(4) == 8
    assert Tools().twice(5) == 10
    settle()

    assert Tools.twice.shadow.stats.matched == 2


def test_method_name_candidate_of_staticmethod_is_rejected() -> None:
    with pytest.raises(TypeError, match=r"candidate 'twice_v2' names a method, but .* is a staticmethod"):

        class Tools:
            @shadow("twice_v2")
            @staticmethod
            def twice(x: int) -> int:
                return x + x


def test_name_docstring_and_signature_are_kept() -> None:
    @shadow(double)
    def compute(x: int, *, scale: float = 1.0) -> float:
        """Compute the scaled value."""
        return x * scale

    def reference(x: int, *, scale: float = 1.0) -> float:
        return x * scale

    assert compute.__name__ == "compute"
    assert compute.__qualname__.endswith("test_name_docstring_and_signature_are_kept.<locals>.compute")
    assert compute.__doc__ == "Compute the scaled value."
    assert inspect.signature(compute) == inspect.signature(reference)
    assert compute.__wrapped__.__name__ == "compute"


def test_method_signatures_are_kept() -> None:
    class Service:
        @shadow("other")
        def method(self, x: int) -> int:
            """Method docstring."""
            return x

        @shadow(double)
        @classmethod
        def klass(cls, x: int) -> int:
            return x

        @shadow(double)
        @staticmethod
        def static(x: int) -> int:
            return x

        def other(self, x: int) -> int:
            return x

    assert str(inspect.signature(Service.method)) == "(self, x: 'int') -> 'int'"
    assert str(inspect.signature(Service().method)) == "(x: 'int') -> 'int'"
    assert str(inspect.signature(Service.klass)) == "(x: 'int') -> 'int'"
    assert str(inspect.signature(Service.static)) == "(x: 'int') -> 'int'"
    assert Service.method.__doc__ == "Method docstring."
    assert Service.method.__name__ == "method"


def test_name_defaults_to_module_and_qualname() -> None:
    @shadow(double)
    def primary(x: int) -> int:
        return x * 2

    expected = f"{__name__}.test_name_defaults_to_module_and_qualname.<locals>.primary"
    assert primary.shadow.name == expected
    primary(1)
    settle()
    assert expected in shadowfn.stats()


def test_method_name_defaults_to_class_qualname() -> None:
    class Service:
        @shadow(double)
        @staticmethod
        def run(x: int) -> int:
            return x * 2

    assert Service.run.shadow.name.endswith(".<locals>.Service.run")
    assert Service().run.shadow.name == Service.run.shadow.name


def test_explicit_name_labels_stats_and_log() -> None:
    @shadow(lambda x: -x, name="billing.total")
    def total(x: int) -> int:
        return x

    total(3)
    settle()

    assert total.shadow.name == "billing.total"
    assert shadowfn.stats()["billing.total"].diverged == 1
    assert [entry.function for entry in shadowfn.log.recent(function="total")] == ["billing.total"]


def test_rate_is_settable_at_runtime() -> None:
    ran: list[int] = []

    @shadow(lambda x: ran.append(x), rate=0)
    def primary(x: int) -> int:
        return x

    primary(1)
    primary.shadow.rate = 100
    primary(2)
    primary.shadow.rate = 0
    primary(3)
    settle()

    assert ran == [2]
    assert primary.shadow.rate == 0


@pytest.mark.parametrize("bad", [math.nan, "10", -1, 150, True, None])
def test_rate_setter_rejects_invalid_values(bad: Any) -> None:
    @shadow(double, rate=5)
    def primary(x: int) -> int:
        return x * 2

    with pytest.raises((TypeError, ValueError)) as info:
        primary.shadow.rate = bad

    assert "rate" in str(info.value)
    assert "[0, 100]" in str(info.value)
    assert primary.shadow.rate == 5


def test_enabled_is_settable_at_runtime() -> None:
    ran: list[int] = []

    @shadow(lambda x: ran.append(x), enabled=False)
    def primary(x: int) -> int:
        return x

    primary(1)
    primary.shadow.enabled = True
    primary(2)
    primary.shadow.enabled = False
    primary(3)
    settle()

    assert ran == [2]
    assert primary.shadow.enabled is False
    assert primary.shadow.stats.calls == 1


def test_enabled_setter_rejects_non_bool() -> None:
    @shadow(double)
    def primary(x: int) -> int:
        return x * 2

    with pytest.raises(TypeError, match=r"enabled must be True or False, got 'yes'"):
        primary.shadow.enabled = "yes"  # type: ignore[assignment]

    assert primary.shadow.enabled is True


def test_shadow_stats_counts_calls() -> None:
    @shadow(lambda x: x if x % 2 else x + 100)
    def primary(x: int) -> int:
        return x

    for value in range(6):
        primary(value)
    settle()

    stats = primary.shadow.stats
    assert stats.calls == 6
    assert stats.sampled == 6
    assert stats.matched == 3
    assert stats.diverged == 3


def test_shadow_exposes_timeout_and_repr() -> None:
    @shadow(double, rate=12.5, timeout=0.25, name="svc.op")
    def primary(x: int) -> int:
        return x * 2

    assert primary.shadow.timeout == 0.25
    assert repr(primary.shadow) == "<ShadowControl svc.op rate=12.5 enabled=True>"


def test_config_object_is_accepted() -> None:
    config = ShadowConfig(rate=100, timeout=0.5, ignore=("body.id",))

    @shadow(lambda: {"id": 2, "v": 1}, config=config)
    def primary() -> dict[str, int]:
        return {"id": 1, "v": 1}

    primary()
    settle()

    assert primary.shadow.stats.matched == 1


@pytest.mark.parametrize("bad", [math.nan, "10", -1, 150, True, math.inf])
def test_invalid_rate_is_rejected_at_decoration(bad: Any) -> None:
    with pytest.raises((TypeError, ValueError)) as info:
        shadow(double, rate=bad)

    message = str(info.value)
    assert message.startswith("rate must be a number in [0, 100]")
    assert f"got {bad!r}" in message


@pytest.mark.parametrize("bad", [0, -1, math.nan, math.inf, "1", None])
def test_invalid_timeout_is_rejected_at_decoration(bad: Any) -> None:
    with pytest.raises((TypeError, ValueError)) as info:
        shadow(double, timeout=bad)

    message = str(info.value)
    assert message.startswith("timeout must be a finite number of seconds > 0")
    assert f"got {bad!r}" in message


@pytest.mark.parametrize("bad", [42, None, 3.5, b"name"])
def test_non_callable_candidate_is_rejected(bad: Any) -> None:
    with pytest.raises(TypeError) as info:
        shadow(bad)

    message = str(info.value)
    assert message.startswith("candidate must be a callable or the name of a method")
    assert f"got {bad!r}" in message


@pytest.mark.parametrize("bad", ["", "two words", "1abc"])
def test_invalid_method_name_candidate_is_rejected(bad: str) -> None:
    with pytest.raises(ValueError, match="candidate must be a callable or a method name") as info:
        shadow(bad)

    assert repr(bad) in str(info.value)


def numbers(n: int) -> Iterator[int]:
    yield from range(n)


async def async_numbers(n: int) -> AsyncIterator[int]:
    for i in range(n):
        yield i


@pytest.mark.parametrize("generator", [numbers, async_numbers])
def test_generator_candidate_is_rejected(generator: Any) -> None:
    with pytest.raises(TypeError, match="candidate must be a function that returns its result") as info:
        shadow(generator)

    assert generator.__name__ in str(info.value)


@pytest.mark.parametrize("generator", [numbers, async_numbers])
def test_generator_primary_is_rejected(generator: Any) -> None:
    decorate = shadow(double)

    with pytest.raises(TypeError, match="decorated function must be a function that returns its result"):
        decorate(generator)


def test_generator_method_is_rejected() -> None:
    with pytest.raises(TypeError, match="generator function"):

        class Service:
            @shadow(double)
            @staticmethod
            def items(n: int) -> Iterator[int]:
                yield from range(n)


def test_key_naming_missing_parameter_is_rejected() -> None:
    decorate = shadow(double, key="user")

    def fetch(user_id: int) -> int:
        return user_id

    with pytest.raises(ValueError) as info:
        decorate(fetch)

    message = str(info.value)
    assert "key names parameter 'user'" in message
    assert "['user_id']" in message


def test_key_tuple_with_missing_name_is_rejected() -> None:
    def fetch(user_id: int, region: str) -> int:
        return user_id

    with pytest.raises(ValueError, match="key names parameter 'zone'"):
        shadow(double, key=("user_id", "zone"))(fetch)


@pytest.mark.parametrize(
    ("settings", "parameter"),
    [
        ({"key": 5}, "key"),
        ({"key": ()}, "key"),
        ({"ignore": 5}, "ignore"),
        ({"ignore": ("body..x",)}, "ignore"),
        ({"compare": "eq"}, "compare"),
        ({"adapter": 1}, "adapter"),
        ({"copy_args": "yes"}, "copy_args"),
        ({"max_pending": 0}, "max_pending"),
        ({"max_pending": True}, "max_pending"),
        ({"name": ""}, "name"),
        ({"enabled": 1}, "enabled"),
    ],
)
def test_other_invalid_settings_are_rejected(settings: dict[str, Any], parameter: str) -> None:
    with pytest.raises((TypeError, ValueError)) as info:
        shadow(double, **settings)

    assert str(info.value).startswith(parameter)


def test_decorating_a_non_callable_is_rejected() -> None:
    with pytest.raises(TypeError, match="@shadow must decorate a function or method"):
        shadow(double)(42)  # type: ignore[type-var]


def test_calls_inside_candidate_are_not_shadowed() -> None:
    calls: list[str] = []

    @shadow(lambda x: calls.append("outer-candidate") or inner(x))
    def outer(x: int) -> int:
        return inner(x)

    @shadow(lambda x: calls.append("inner-candidate") or x)
    def inner(x: int) -> int:
        return x

    outer(1)
    settle()

    assert sorted(calls) == ["inner-candidate", "outer-candidate"]
    assert inner.shadow.stats.calls == 1


@shadow(double)
def module_level_double(x: int) -> int:
    return x * 2


def test_shadowed_function_copies_as_itself() -> None:
    assert copy.copy(module_level_double) is module_level_double
    assert copy.deepcopy(module_level_double) is module_level_double
    assert copy.deepcopy([module_level_double])[0] is module_level_double


def test_shadowed_function_pickles_by_reference() -> None:
    restored = pickle.loads(pickle.dumps(module_level_double))

    assert restored is module_level_double


def test_shadowed_function_as_argument_keeps_call_shadowed() -> None:
    def apply_v2(function: Any, values: list[int]) -> list[int]:
        return [function(value) for value in values]

    @shadow(apply_v2)
    def apply(function: Any, values: list[int]) -> list[int]:
        return [function(value) for value in values]

    assert apply(module_level_double, [1, 2]) == [2, 4]
    settle()

    stats = apply.shadow.stats
    assert stats.uncopyable == 0
    assert stats.matched == 1


@dataclasses.dataclass
class Settings:
    region: str


def test_function_without_signature_is_shadowed() -> None:
    with pytest.raises(ValueError):
        inspect.signature(getattr)

    seen: list[tuple[Any, ...]] = []
    lookup = shadow(lambda *args: seen.append(args) or "eu", rate=99.9)(getattr)

    results = [lookup(Settings("eu"), "region") for _ in range(3)]
    settle()

    assert results == ["eu", "eu", "eu"]
    stats = lookup.shadow.stats
    assert stats.internal_errors == 0
    assert stats.matched == 3
    assert len(seen) == 3


def test_key_names_without_signature_are_rejected() -> None:
    with pytest.raises(ValueError, match="has no introspectable signature; pass key= a function"):
        shadow(double, key="name")(getattr)


def test_misspelled_method_candidate_warns_at_class_creation() -> None:
    with pytest.warns(
        shadowfn.CandidateNotFoundWarning,
        match=r"candidate='lookup_v3' on .*Directory.lookup names no attribute",
    ):

        class Directory:
            def lookup_v2(self, code: str) -> str:
                return code

            @shadow("lookup_v3")
            def lookup(self, code: str) -> str:
                return code
