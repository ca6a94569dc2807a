"""JSON text bodies that parse to equal values but are written differently."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pycountry

import shadowfn
from shadowfn import shadow
from shadowfn._divergence import diff_records
from shadowfn._jsontext import leaf_tokens
from shadowfn._paths import PathSet


def legacy(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def modern(value: Any) -> str:
    return orjson.dumps(value).decode("utf-8")


def text_record(text: str) -> shadowfn.ResponseRecord:
    return shadowfn.ResponseRecord(body=text)


def aland() -> dict[str, Any]:
    country = pycountry.countries.get(alpha_2="AX")
    assert country is not None
    return {"alpha_2": country.alpha_2, "name": country.name, "flag": country.flag}


def test_leaf_tokens_keep_escapes() -> None:
    record = aland()
    leaves = dict(leaf_tokens(legacy(record)))
    assert leaves[("name",)] == json.dumps(record["name"])
    assert leaves[("flag",)] == json.dumps(record["flag"])
    assert leaves[("alpha_2",)] == '"AX"'


def test_escaping_reported_per_path() -> None:
    record = aland()
    divergence = diff_records(text_record(legacy(record)), text_record(modern(record)))
    assert divergence is not None
    assert divergence.body is not None
    changes = {change.path: change for change in divergence.body.changes}
    assert set(changes) == {"body.name", "body.flag"}
    assert changes["body.name"].kind == "format"
    assert changes["body.name"].primary == json.dumps(record["name"])
    assert changes["body.name"].candidate == json.dumps(record["name"], ensure_ascii=False)


def test_float_format_reported_per_path() -> None:
    value = {"share": 1e-05, "count": 3}
    divergence = diff_records(text_record(legacy(value)), text_record(modern(value)))
    assert divergence is not None
    assert divergence.body is not None
    assert [(c.path, c.kind) for c in divergence.body.changes] == [("body.share", "format")]
    change = divergence.body.changes[0]
    assert change.primary == json.dumps(1e-05)
    assert change.candidate == orjson.dumps(1e-05).decode()
    assert change.primary != change.candidate


def test_ignored_leaves_leave_no_divergence() -> None:
    record = aland()
    rules = PathSet(["body.name", "body.flag"])
    divergence = diff_records(text_record(legacy(record)), text_record(modern(record)), rules)
    assert divergence is None


def test_ignored_leaf_keeps_other_leaves() -> None:
    record = aland()
    rules = PathSet(["body.**.name"])
    divergence = diff_records(text_record(legacy(record)), text_record(modern(record)), rules)
    assert divergence is not None
    assert divergence.body is not None
    assert [(c.path, c.kind) for c in divergence.body.changes] == [("body.flag", "format")]


def test_whitespace_reported_at_body() -> None:
    record = {"alpha_2": "AX", "numeric": "248"}
    divergence = diff_records(text_record(json.dumps(record)), text_record(legacy(record)))
    assert divergence is not None
    assert divergence.body is not None
    assert [(c.path, c.kind) for c in divergence.body.changes] == [("body", "format")]


def test_shadow_ignore_turns_escaping_into_match() -> None:
    @shadow(modern, ignore=("body.**.name",), name="jsontext.ignore_names")
    def encode(value: Any) -> str:
        return legacy(value)

    subdivision = pycountry.subdivisions.get(code="TR-34")
    country = pycountry.countries.get(alpha_2="TR")
    assert subdivision is not None and country is not None
    record = {"code": subdivision.code, "name": subdivision.name, "country": {"name": country.name}}
    assert not record["country"]["name"].isascii()

    result = encode(record)
    assert shadowfn.drain(timeout=5)

    assert result == legacy(record)
    stats = shadowfn.stats()["jsontext.ignore_names"]
    assert stats.matched == 1
    assert stats.diverged == 0
    assert shadowfn.log.recent(function="jsontext.ignore_names") == []
