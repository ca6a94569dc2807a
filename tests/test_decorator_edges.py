"""The decorator on callables other than plain functions: partials, callable objects, async objects."""

from __future__ import annotations

import asyncio
import copy
import functools
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pycountry
import pytest

import shadowfn
from shadowfn import Shadower, shadow


def country_field(field: str, alpha_2: str) -> str:
    value: str = getattr(pycountry.countries.get(alpha_2=alpha_2), field)
    return value


class CountryLookup:
    """A callable object, as a client library or a service class might expose."""

    def __init__(self, field: str) -> None:
        self.field = field

    def __call__(self, alpha_2: str) -> str:
        return country_field(self.field, alpha_2)


class AsyncCountryLookup:
    """A callable object whose ``__call__`` is a coroutine function."""

    async def __call__(self, alpha_2: str) -> dict[str, Any]:
        await asyncio.sleep(0)
        country = pycountry.countries.get(alpha_2=alpha_2)
        return {"alpha_3": country.alpha_3, "name": country.name}


async def country_v2(alpha_2: str) -> dict[str, Any]:
    country = pycountry.countries.get(alpha_2=alpha_2)
    return {"alpha_3": country.alpha_3, "name": country.name}


@pytest.mark.asyncio
async def test_async_callable_object_primary_matches() -> None:
    lookup = shadow(country_v2, timeout=1.0, name="async_object")(AsyncCountryLookup())

    result = await lookup("NO")

    assert result == {"alpha_3": "NOR", "name": "Norway"}
    assert await shadowfn.adrain(timeout=5)
    stats = lookup.shadow.stats
    assert stats.matched == 1
    assert stats.diverged == 0
    assert len(shadowfn.log) == 0


@pytest.mark.asyncio
async def test_async_callable_object_primary_exception() -> None:
    class Failing:
        async def __call__(self, alpha_2: str) -> dict[str, Any]:
            raise LookupError(alpha_2)

    async def candidate(alpha_2: str) -> dict[str, Any]:
        raise LookupError(alpha_2)

    lookup = shadow(candidate, timeout=1.0, name="async_object_raises")(Failing())

    with pytest.raises(LookupError):
        await lookup("XX")

    assert await shadowfn.adrain(timeout=5)
    assert lookup.shadow.stats.matched == 1


def _default_name_in_child(kind: str) -> str:
    script = (
        "import functools, sys, shadowfn\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        f"from {__name__} import CountryLookup, country_field\n"
        f"kind = {kind!r}\n"
        "primary = CountryLookup('name') if kind == 'object' else functools.partial(country_field, 'name')\n"
        "print(shadowfn.shadow(primary)(primary).shadow.name)\n"
    )
    finished = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    return finished.stdout.strip()


def test_callable_object_default_name_has_no_address() -> None:
    primary = CountryLookup("name")

    name = shadow(CountryLookup("official_name"))(primary).shadow.name

    assert name == f"{__name__}.CountryLookup"
    assert "0x" not in name
    assert _default_name_in_child("object") == name


def test_partial_default_name_has_no_address() -> None:
    primary = functools.partial(country_field, "name")

    name = shadow(functools.partial(country_field, "official_name"))(primary).shadow.name

    assert name == f"functools.partial({__name__}.country_field)"
    assert "0x" not in name
    assert _default_name_in_child("partial") == name


def test_shadower_default_name_has_no_address() -> None:
    shadower = Shadower(CountryLookup("name"), CountryLookup("name"))

    assert shadower.name == f"{__name__}.CountryLookup"


def _official_name(alpha_2: str) -> str:
    country = pycountry.countries.get(alpha_2=alpha_2)
    official: str = getattr(country, "official_name", country.name)
    return official


class CountryRepository:
    """Shadowed methods of every kind, at module level so pickle can find them by name."""

    def __init__(self, field: str) -> None:
        self.field = field

    def lookup_v2(self, alpha_2: str) -> str:
        return country_field(self.field, alpha_2)

    @shadow("lookup_v2", timeout=1.0)
    def lookup(self, alpha_2: str) -> str:
        return country_field(self.field, alpha_2)

    @shadow(lambda cls, alpha_2: _official_name(alpha_2), timeout=1.0)
    @classmethod
    def official(cls, alpha_2: str) -> str:
        return _official_name(alpha_2)

    @shadow(_official_name, timeout=1.0)
    @staticmethod
    def official_static(alpha_2: str) -> str:
        return _official_name(alpha_2)


def test_bound_method_deepcopy_copies_instance() -> None:
    repository = CountryRepository("name")

    copied = copy.deepcopy(repository.lookup)
    repository.field = "alpha_3"

    assert copied("DE") == "Germany"
    assert repository.lookup("DE") == "DEU"
    assert copy.copy(repository.lookup)("DE") == "DEU"
    assert copied.shadow is CountryRepository.lookup.shadow


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        (lambda: CountryRepository("name").lookup, "Germany"),
        (lambda: CountryRepository.official, "Federal Republic of Germany"),
        (lambda: CountryRepository("name").official, "Federal Republic of Germany"),
        (lambda: CountryRepository.official_static, "Federal Republic of Germany"),
    ],
    ids=["bound", "classmethod", "classmethod-instance", "staticmethod"],
)
def test_shadowed_methods_pickle(method: Any, expected: str) -> None:
    restored = pickle.loads(pickle.dumps(method()))

    assert restored("DE") == expected
    assert restored.shadow.name == method().shadow.name


def test_bound_method_argument_is_copied() -> None:
    def apply_v2(lookup: Any, alpha_2: str) -> str:
        result: str = lookup(alpha_2)
        return result

    @shadow(apply_v2, timeout=1.0)
    def apply(lookup: Any, alpha_2: str) -> str:
        result: str = lookup(alpha_2)
        return result

    assert apply(CountryRepository("name").lookup, "FR") == "France"

    assert shadowfn.drain(timeout=5)
    assert apply.shadow.stats.uncopyable == 0
    assert apply.shadow.stats.matched == 1


class CountryRecord:
    """Shadowed getters under property and functools.cached_property, which call them unbound."""

    def __init__(self, alpha_2: str) -> None:
        self.alpha_2 = alpha_2

    def name_v2(self) -> str:
        return country_field("name", self.alpha_2)

    @property
    @shadow("name_v2", timeout=1.0)
    def name(self) -> str:
        return country_field("name", self.alpha_2)

    def alpha_3_v2(self) -> str:
        return country_field("alpha_3", self.alpha_2)

    @functools.cached_property
    @shadow("alpha_3_v2", timeout=1.0)
    def alpha_3(self) -> str:
        return country_field("alpha_3", self.alpha_2)


def test_method_name_candidate_under_property() -> None:
    records = [CountryRecord(code) for code in ("DE", "FR", "JP")]

    names = [record.name for record in records]
    alpha_3 = [record.alpha_3 for record in records]

    assert names == ["Germany", "France", "Japan"]
    assert alpha_3 == ["DEU", "FRA", "JPN"]
    assert shadowfn.drain(timeout=5)
    for function in ("CountryRecord.name", "CountryRecord.alpha_3"):
        stats = shadowfn.stats()[f"{__name__}.{function}"]
        assert stats.internal_errors == 0
        assert stats.matched == 3
