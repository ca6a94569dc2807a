"""Records: snapshots of return values, exceptions and HTTP-style responses."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import json
import pathlib
import subprocess
import sys
import time
import uuid
import weakref
from collections.abc import Iterator
from typing import Any, NamedTuple

import pycountry
import pytest
import sqlalchemy
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import shadowfn
from shadowfn import ResponseRecord, shadow
from shadowfn._records import CYCLE_MARK, DEPTH_MARK, normalize, snapshot, snapshot_exception


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclasses.dataclass
class Address:
    city: str
    tags: set[str]


@dataclasses.dataclass
class User:
    name: str
    address: Address
    color: Color


class Point(NamedTuple):
    x: int
    y: int


class PaymentDeclined(Exception):
    pass


@dataclasses.dataclass
class HttpResponse:
    """The shape of a requests or httpx response: status_code, headers and content."""

    status_code: int
    headers: dict[str, str]
    content: bytes


@dataclasses.dataclass
class AsgiStyleResponse:
    """The shape of a Starlette-style response: status, headers and body."""

    status: int
    headers: dict[str, str]
    body: bytes


def test_plain_values_are_kept() -> None:
    for value in ("text", 3, 2.5, True, None, b"raw"):
        assert snapshot(value) == ResponseRecord(ok=True, body=value)


def test_dataclass_becomes_dict() -> None:
    user = User("Ada", Address("London", {"b", "a"}), Color.RED)

    assert normalize(user) == {
        "name": "Ada",
        "address": {"city": "London", "tags": ["a", "b"]},
        "color": "Color.RED",
    }


def test_named_tuple_becomes_dict() -> None:
    assert normalize(Point(1, 2)) == {"x": 1, "y": 2}
    assert normalize([Point(1, 2), (3, 4)]) == [{"x": 1, "y": 2}, [3, 4]]


def test_sets_become_sorted_lists() -> None:
    assert normalize({"b", "c", "a"}) == ["a", "b", "c"]
    assert normalize(frozenset({3, 1, 2})) == [1, 2, 3]
    assert normalize({"c", "a", "b"}) == normalize({"a", "b", "c"})


def test_enums_become_type_and_name() -> None:
    assert normalize(Color.BLUE) == "Color.BLUE"
    assert normalize({Color.RED: 1}) == {"Color.RED": 1}


def test_library_scalars_become_strings() -> None:
    value = {
        "when": datetime.datetime(2024, 5, 6, 7, 8, 9),
        "day": datetime.date(2024, 5, 6),
        "price": decimal.Decimal("9.90"),
        "id": uuid.UUID(int=1),
        "span": datetime.timedelta(seconds=90),
    }

    assert normalize(value) == {
        "when": "2024-05-06T07:08:09",
        "day": "2024-05-06",
        "price": "9.90",
        "id": "00000000-0000-0000-0000-000000000001",
        "span": "0:01:30",
    }


def test_nested_containers_become_plain_data() -> None:
    value = {"rows": ({"id": 1, "points": [Point(0, 1)]},), "flags": frozenset({True})}

    assert normalize(value) == {"rows": [{"id": 1, "points": [{"x": 0, "y": 1}]}], "flags": [True]}


def test_subclasses_of_basic_types_become_base_types() -> None:
    class Label(str):
        pass

    class Count(int):
        pass

    normalized = normalize([Label("a"), Count(3)])

    assert normalized == ["a", 3]
    assert type(normalized[0]) is str
    assert type(normalized[1]) is int


def test_cycles_are_marked_not_followed() -> None:
    node: dict[str, Any] = {"name": "root"}
    node["self"] = node
    items: list[Any] = [1]
    items.append(items)

    assert normalize(node) == {"name": "root", "self": CYCLE_MARK}
    assert normalize(items) == [1, CYCLE_MARK]


def test_shared_objects_are_not_cycles() -> None:
    shared = [1, 2]

    assert normalize({"a": shared, "b": shared}) == {"a": [1, 2], "b": [1, 2]}


def test_excess_depth_is_marked() -> None:
    value: Any = "leaf"
    for _ in range(200):
        value = [value]

    normalized = normalize(value)
    depth = 0
    while isinstance(normalized, list):
        normalized = normalized[0]
        depth += 1

    assert normalized == DEPTH_MARK
    assert depth == 64


def test_snapshot_is_independent_of_later_mutation() -> None:
    value = {"items": [1, 2], "meta": {"page": 1}}

    record = snapshot(value)
    value["items"].append(3)
    value["meta"]["page"] = 2

    assert record.body == {"items": [1, 2], "meta": {"page": 1}}


def test_plain_object_becomes_its_attributes() -> None:
    class Invoice:
        def __init__(self) -> None:
            self.total = 10
            self._cents = 1000

    assert normalize(Invoice()) == {"total": 10, "_cents": 1000}


def test_objects_with_private_state_differ() -> None:
    germany = pycountry.countries.get(alpha_2="DE")
    france = pycountry.countries.get(alpha_2="FR")

    assert normalize(germany) != normalize(france)
    assert normalize(germany) == normalize(pycountry.countries.get(alpha_3="DEU"))


class Lookup:
    """A result that keeps a module on a private attribute, as clients keep their DB-API module."""

    def __init__(self, code: str) -> None:
        self.code = code
        self._platform = sys


def test_snapshot_records_module_by_repr() -> None:
    body = normalize(Lookup("DE"))

    assert body["code"] == "DE"
    assert isinstance(body["_platform"], str)
    assert body["_platform"].startswith("<module 'sys'")


def test_object_holding_module_matches_quickly() -> None:
    # Walking a module's namespace reaches sys.modules, the whole interpreter: it took
    # seconds on the caller's thread and differed between the two snapshots.
    @shadow(Lookup, timeout=5.0)
    def lookup(code: str) -> Lookup:
        return Lookup(code)

    started = time.perf_counter()
    result = lookup("DE")
    elapsed = time.perf_counter() - started

    assert result.code == "DE"
    assert elapsed < 0.5
    assert shadowfn.drain(timeout=30)
    assert lookup.shadow.stats.matched == 1


def test_exception_record_has_qualified_type_and_message() -> None:
    record = snapshot_exception(PaymentDeclined("card expired"))

    assert record.ok is False
    assert record.body is None
    assert record.error == f"{__name__}.PaymentDeclined: card expired"
    assert snapshot_exception(ValueError("bad")).error == "ValueError: bad"


def test_exception_with_failing_str_is_recorded() -> None:
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    record = snapshot_exception(Unprintable())

    assert record.error == f"{__name__}.{Unprintable.__qualname__}: <str() failed>"


def test_http_response_becomes_record_parts() -> None:
    response = HttpResponse(
        status_code=201,
        headers={"Content-Type": "application/json; charset=utf-8", "ETag": '"v1"'},
        content=json.dumps({"user": {"name": "Åsa"}}).encode(),
    )

    record = snapshot(response)

    assert record.status == 201
    assert record.headers == {"content-type": "application/json; charset=utf-8", "etag": '"v1"'}
    assert record.body == {"user": {"name": "Åsa"}}
    assert record.ok is True


def test_http_response_with_status_and_body_attributes() -> None:
    response = AsgiStyleResponse(status=404, headers={"X-Trace": "t"}, body=b"not found")

    record = snapshot(response)

    assert record.status == 404
    assert record.headers == {"x-trace": "t"}
    assert record.body == b"not found"


def test_http_response_with_invalid_json_keeps_bytes() -> None:
    response = HttpResponse(200, {"content-type": "application/json"}, b"{not json")

    assert snapshot(response).body == b"{not json"


def test_record_is_taken_as_its_values() -> None:
    record = ResponseRecord(ok=True, status=204, headers={"ETag": "x"}, body={"tags": {"b", "a"}})

    assert snapshot(record) == ResponseRecord(
        ok=True, status=204, headers={"etag": "x"}, body={"tags": ["a", "b"]}
    )


def test_adapter_builds_the_record() -> None:
    def adapter(value: dict[str, Any]) -> ResponseRecord:
        return ResponseRecord(status=value["code"], body=value["payload"])

    record = snapshot({"code": 202, "payload": [1]}, adapter)

    assert record == ResponseRecord(status=202, body=[1])


def test_adapter_must_return_a_record() -> None:
    with pytest.raises(TypeError, match="adapter must return a ResponseRecord, got dict"):
        snapshot(1, lambda value: {"body": value})  # type: ignore[arg-type, return-value]


def test_adapter_decides_what_is_compared() -> None:
    def adapter(value: dict[str, Any]) -> ResponseRecord:
        return ResponseRecord(status=value["status"], body=value["data"])

    @shadow(lambda: {"status": 200, "data": "same", "elapsed": 9}, adapter=adapter)
    def primary() -> dict[str, Any]:
        return {"status": 200, "data": "same", "elapsed": 1}

    primary()
    assert shadowfn.drain(timeout=5)

    assert primary.shadow.stats.matched == 1


def test_records_compare_by_value_and_are_unhashable() -> None:
    assert ResponseRecord(body=[1]) == ResponseRecord(body=[1])
    assert ResponseRecord(body=[1]) != ResponseRecord(body=[2])
    with pytest.raises(TypeError):
        hash(ResponseRecord())


def test_set_results_match_whatever_their_order() -> None:
    @shadow(lambda: {"delta", "alpha", "charlie", "bravo"})
    def primary() -> set[str]:
        return {"alpha", "bravo", "charlie", "delta"}

    primary()
    assert shadowfn.drain(timeout=5)

    assert primary.shadow.stats.matched == 1


def test_import_loads_no_optional_library() -> None:
    script = "import shadowfn, sys; print(sorted(m for m in ('sqlalchemy', 'pydantic', 'attr', 'orjson') if m in sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=30
    )

    assert done.stdout.strip() == "[]"


class Base(DeclarativeBase):
    pass


class Country(Base):
    __tablename__ = "country"

    code: Mapped[str] = mapped_column(sqlalchemy.String(2), primary_key=True)
    name: Mapped[str] = mapped_column(sqlalchemy.String(100))
    numeric: Mapped[int] = mapped_column(sqlalchemy.Integer)


@pytest.fixture
def country_db(tmp_path: pathlib.Path) -> Iterator[sqlalchemy.Engine]:
    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'countries.db'}")
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        session.add_all(
            [
                Country(code="AX", name="Åland Islands", numeric=248),
                Country(code="CI", name="Côte d'Ivoire", numeric=384),
                Country(code="SE", name="Sweden", numeric=752),
            ]
        )
        session.commit()
    yield engine
    engine.dispose()


def test_sqlalchemy_rows_become_dicts(country_db: sqlalchemy.Engine) -> None:
    with country_db.connect() as connection:
        rows = connection.execute(sqlalchemy.text("SELECT code, name FROM country ORDER BY code")).all()

    assert normalize(rows) == [
        {"code": "AX", "name": "Åland Islands"},
        {"code": "CI", "name": "Côte d'Ivoire"},
        {"code": "SE", "name": "Sweden"},
    ]


def test_sqlalchemy_mapped_objects_become_column_dicts(country_db: sqlalchemy.Engine) -> None:
    with Session(country_db) as session:
        sweden = session.get(Country, "SE")

        assert normalize(sweden) == {"code": "SE", "name": "Sweden", "numeric": 752}


def test_sqlalchemy_query_migration_reports_row_paths(country_db: sqlalchemy.Engine) -> None:
    def names_v2(prefix: str) -> list[Any]:
        with country_db.connect() as connection:
            query = sqlalchemy.text(
                "SELECT code, upper(name) AS name FROM country WHERE code >= :p ORDER BY code"
            )
            return list(connection.execute(query, {"p": prefix}).all())

    @shadow(names_v2)
    def names(prefix: str) -> list[Any]:
        with Session(country_db) as session:
            query = sqlalchemy.select(Country.code, Country.name).where(Country.code >= prefix)
            return list(session.execute(query.order_by(Country.code)).all())

    rows = names("B")
    assert [row.code for row in rows] == ["CI", "SE"]
    assert shadowfn.drain(timeout=5)

    entries = shadowfn.log.recent()
    assert len(entries) == 1
    assert entries[0].divergence.paths() == ["body[0].name", "body[1].name"]


def test_slotted_object_becomes_its_slots() -> None:
    class Money:
        __slots__ = ("_cache", "amount", "currency")

        def __init__(self, amount: int, currency: str) -> None:
            self.amount = amount
            self.currency = currency
            self._cache = "cached"

    class Tagged(Money):
        __slots__ = "tag"

    tagged = Tagged(5, "EUR")

    slots = {"_cache": "cached", "amount": 5, "currency": "EUR"}
    assert normalize(Money(5, "EUR")) == slots
    assert normalize(tagged) == slots
    tagged.tag = "x"
    assert normalize(tagged) == {"tag": "x", **slots}


def test_default_repr_leaves_out_memory_address() -> None:
    class Token:
        __slots__ = ()

    first = normalize(Token())

    assert first == normalize(Token())
    assert "0x" not in normalize([object()])[0]


def test_fresh_objects_without_state_match() -> None:
    class Sentinel:
        __slots__ = ()

    @shadow(lambda: Sentinel())
    def primary() -> Sentinel:
        return Sentinel()

    primary()
    assert shadowfn.drain(timeout=5)

    assert primary.shadow.stats.matched == 1


def test_weakref_repr_leaves_out_addresses() -> None:
    class Target:
        pass

    first, second = Target(), Target()
    held = [weakref.ref(first), weakref.ref(second)]

    assert normalize(held[0]) == normalize(held[1])
    assert "0x" not in str(normalize(held[0]))
