"""Float tolerance and unordered lists in the comparison and in the decorator's settings."""

from __future__ import annotations

import json
import math
import statistics
from typing import Any

import orjson
import pycountry
import pytest

import shadowfn
from shadowfn import ResponseRecord, ShadowConfig, Tolerance, shadow
from shadowfn._divergence import diff_records
from shadowfn._paths import PathSet

EUROPE = ["DE", "FR", "IT", "ES", "PT", "NL", "BE", "AT", "PL", "SE", "FI", "DK", "IE", "GR"]


def numeric_codes(alphas: list[str]) -> list[int]:
    return [int(pycountry.countries.get(alpha_2=code).numeric) for code in alphas]


def mean_by_sum(alphas: list[str]) -> dict[str, Any]:
    codes = [value / 7 for value in numeric_codes(alphas)]
    # A plain running total: sum() itself compensates rounding from Python 3.12 on.
    total = 0.0
    for code in codes:
        total += code
    return {"mean": total / len(codes), "count": len(codes)}


def mean_by_fsum(alphas: list[str]) -> dict[str, Any]:
    codes = [value / 7 for value in reversed(numeric_codes(alphas))]
    return {"mean": math.fsum(codes) / len(codes), "count": len(codes)}


def record(body: Any) -> ResponseRecord:
    return ResponseRecord(body=body)


def test_summation_order_really_differs() -> None:
    # The premise of the tolerance tests below: the two means are not ==.
    assert mean_by_sum(EUROPE)["mean"] != mean_by_fsum(EUROPE)["mean"]


def test_float_within_absolute_tolerance_matches() -> None:
    @shadow(mean_by_fsum, tolerance=1e-9)
    def mean(alphas: list[str]) -> dict[str, Any]:
        return mean_by_sum(alphas)

    mean(EUROPE)

    assert shadowfn.drain(timeout=5)
    counters = mean.shadow.stats
    assert counters.matched == 1
    assert counters.diverged == 0


def test_float_without_tolerance_diverges() -> None:
    @shadow(mean_by_fsum)
    def mean(alphas: list[str]) -> dict[str, Any]:
        return mean_by_sum(alphas)

    mean(EUROPE)

    assert shadowfn.drain(timeout=5)
    assert mean.shadow.stats.diverged == 1
    assert shadowfn.log.recent()[0].divergence.paths() == ["body.mean"]


def test_float_outside_tolerance_diverges() -> None:
    found = diff_records(record({"mean": 1.0}), record({"mean": 1.001}), tolerance=Tolerance(abs=1e-6))

    assert found is not None
    assert found.paths() == ["body.mean"]


@pytest.mark.parametrize(
    ("primary", "candidate", "tolerance", "matches"),
    [
        (1000.0, 1000.5, Tolerance(rel=1e-3), True),
        (1000.0, 1002.0, Tolerance(rel=1e-3), False),
        (0.0, 1e-12, Tolerance(rel=1e-3), False),
        (0.0, 1e-12, Tolerance(abs=1e-9, rel=1e-3), True),
        (1, 1.0000000001, Tolerance(abs=1e-9), True),
        (1, 2, Tolerance(abs=5.0), False),
        (float("inf"), float("inf"), Tolerance(abs=1e-9), True),
        ("1.0", 1.0, Tolerance(abs=1.0), False),
    ],
)
def test_tolerance_rule(primary: Any, candidate: Any, tolerance: Tolerance, matches: bool) -> None:
    found = diff_records(record({"x": primary}), record({"x": candidate}), tolerance=tolerance)

    assert (found is None) is matches


def test_tolerance_applies_in_nested_lists_and_json_text() -> None:
    primary = orjson.dumps({"rates": [{"eur": 1.1}, {"eur": 0.3}]})
    candidate = json.dumps({"rates": [{"eur": 1.1 + 1e-13}, {"eur": 0.1 + 0.2}]}).encode()

    assert diff_records(record(primary), record(candidate), tolerance=Tolerance(abs=1e-9)) is None
    assert diff_records(record(primary), record(candidate)) is not None


def test_tolerance_does_not_apply_to_status() -> None:
    primary = ResponseRecord(status=200, body={"x": 1.0})
    candidate = ResponseRecord(status=201, body={"x": 1.0 + 1e-12})

    found = diff_records(primary, candidate, tolerance=Tolerance(abs=5.0))

    assert found is not None
    assert found.paths() == ["status"]


def country_names(alphas: list[str]) -> dict[str, Any]:
    names = [pycountry.countries.get(alpha_2=code).name for code in alphas]
    return {"names": names, "count": len(names)}


def country_names_sorted(alphas: list[str]) -> dict[str, Any]:
    found = country_names(alphas)
    found["names"] = sorted(found["names"])
    return found


def test_unordered_list_with_other_order_matches() -> None:
    @shadow(country_names_sorted, unordered="body.names")
    def names(alphas: list[str]) -> dict[str, Any]:
        return country_names(alphas)

    names(EUROPE)

    assert shadowfn.drain(timeout=5)
    assert names.shadow.stats.matched == 1


def test_ordered_list_with_other_order_diverges() -> None:
    @shadow(country_names_sorted)
    def names(alphas: list[str]) -> dict[str, Any]:
        return country_names(alphas)

    names(EUROPE)

    assert shadowfn.drain(timeout=5)
    assert names.shadow.stats.diverged == 1


def test_unordered_reports_unpaired_elements() -> None:
    primary = {"names": ["Germany", "France", "Italy", "France"]}
    candidate = {"names": ["Italy", "France", "Spain", "Germany"]}

    found = diff_records(record(primary), record(candidate), unordered=PathSet(["body.names"]))

    assert found is not None and found.body is not None
    changes = [(change.path, change.kind, change.primary, change.candidate) for change in found.body.changes]
    assert changes == [
        ("body.names[3]", "removed", "France", None),
        ("body.names[2]", "added", None, "Spain"),
    ]


def test_unordered_duplicates_are_counted() -> None:
    primary = {"tags": ["eu", "eu", "nato"]}
    candidate = {"tags": ["eu", "nato", "nato"]}

    found = diff_records(record(primary), record(candidate), unordered=PathSet(["body.tags"]))

    assert found is not None
    assert found.paths() == ["body.tags[1]", "body.tags[2]"]


def test_unordered_deep_pattern_with_objects() -> None:
    def countries(codes: list[str], tags_order: list[int]) -> list[dict[str, Any]]:
        found = []
        for code in codes:
            tags = ["eu", code.lower(), "schengen"]
            found.append({"alpha_2": code, "tags": [tags[index] for index in tags_order]})
        return found

    primary = {"page": {"countries": countries(EUROPE, [0, 1, 2])}}
    candidate = {"page": {"countries": countries(list(reversed(EUROPE)), [2, 0, 1])}}
    rules = PathSet(["body.page.countries", "body.**.tags"])

    assert diff_records(record(primary), record(candidate), unordered=rules) is None
    assert diff_records(record(primary), record(candidate), unordered=PathSet(["body.**.tags"])) is not None


def test_unordered_pairs_elements_under_ignore_and_tolerance() -> None:
    primary = {"rows": [{"code": "DE", "share": 0.1 + 0.2, "id": 1}, {"code": "FR", "share": 0.5, "id": 2}]}
    candidate = {"rows": [{"code": "FR", "share": 0.5, "id": 7}, {"code": "DE", "share": 0.3, "id": 8}]}

    found = diff_records(
        record(primary),
        record(candidate),
        PathSet(["body.rows[*].id"]),
        tolerance=Tolerance(abs=1e-9),
        unordered=PathSet(["body.rows"]),
    )

    assert found is None


def test_unordered_json_text_body_matches() -> None:
    primary = orjson.dumps({"codes": numeric_codes(EUROPE)})
    candidate = orjson.dumps({"codes": sorted(numeric_codes(EUROPE))})

    assert diff_records(record(primary), record(candidate), unordered=PathSet(["body.codes"])) is None


def test_unordered_top_level_body() -> None:
    assert diff_records(record([3, 1, 2]), record([1, 2, 3]), unordered=PathSet(["body"])) is None


def test_config_normalizes_tolerance_forms() -> None:
    assert ShadowConfig(tolerance=1e-9).tolerance == Tolerance(abs=1e-9)  # type: ignore[arg-type]
    assert ShadowConfig(tolerance={"rel": 1e-6}).tolerance == Tolerance(rel=1e-6)  # type: ignore[arg-type]
    assert ShadowConfig(tolerance=Tolerance(1e-9, 1e-6)).tolerance == Tolerance(abs=1e-9, rel=1e-6)
    assert ShadowConfig().tolerance is None
    assert ShadowConfig(unordered="body.items").unordered == ("body.items",)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "error", "shown"),
    [
        ("1e-9", TypeError, "got '1e-9' (str)"),
        (-1, ValueError, "got -1 (int)"),
        (math.inf, ValueError, "got inf (float)"),
        (True, TypeError, "got True (bool)"),
        ({"absolute": 1e-9}, ValueError, "got {'absolute': 1e-09} (dict)"),
        ({}, ValueError, "got {} (dict)"),
    ],
)
def test_invalid_tolerance_rejected(value: Any, error: type[Exception], shown: str) -> None:
    with pytest.raises(error) as caught:
        shadow(mean_by_fsum, tolerance=value)

    message = str(caught.value)
    assert message.startswith("tolerance must be a number >= 0")
    assert "a dict with the keys 'abs' and/or 'rel'" in message
    assert shown in message


def test_invalid_tolerance_bound_rejected() -> None:
    with pytest.raises(ValueError, match=r"tolerance 'rel' must be a finite number >= 0, got -0.5 \(float\)"):
        shadow(mean_by_fsum, tolerance={"rel": -0.5})


@pytest.mark.parametrize(
    ("value", "error", "fragment"),
    [
        (5, TypeError, "unordered must be a tuple of path patterns of lists, such as 'body.items'"),
        ("body..items", ValueError, "unordered has an invalid path: invalid path pattern 'body..items'"),
        (("body.items", ""), ValueError, "unordered has an invalid path"),
    ],
)
def test_invalid_unordered_rejected(value: Any, error: type[Exception], fragment: str) -> None:
    with pytest.raises(error) as caught:
        shadow(mean_by_fsum, unordered=value)

    assert fragment in str(caught.value)


def test_tolerance_used_with_statistics_mean() -> None:
    values = [pycountry.countries.get(alpha_2=code).numeric for code in EUROPE]

    def mean_v2(codes: list[str]) -> float:
        return statistics.fmean(float(code) / 3 for code in reversed(codes))

    @shadow(mean_v2, tolerance={"abs": 0, "rel": 1e-12})
    def mean_v1(codes: list[str]) -> float:
        return sum(float(code) / 3 for code in codes) / len(codes)

    mean_v1(values)

    assert shadowfn.drain(timeout=5)
    assert mean_v1.shadow.stats.matched == 1
