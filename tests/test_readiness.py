"""Promotion readiness: ``wrapped.shadow.report()``, the Wilson interval and the distinct-key sketch."""

from __future__ import annotations

import hashlib
import threading
import time
from typing import Any

import pycountry
import pytest

import shadowfn
from shadowfn import ReadinessReport, shadow
from shadowfn._readiness import EXACT_LIMIT, STANDARD_ERROR, KeySketch, key_hash, wilson_interval


def country_record(alpha_2: str) -> dict[str, Any]:
    country = pycountry.countries.get(alpha_2=alpha_2)
    return {"code": country.alpha_2, "name": country.name, "numeric": country.numeric}


def common_name_record(alpha_2: str) -> dict[str, Any]:
    record = country_record(alpha_2)
    country = pycountry.countries.get(alpha_2=alpha_2)
    record["name"] = getattr(country, "common_name", country.name)
    return record


def run_all_countries(function: Any, rounds: int = 1) -> list[Any]:
    results = []
    for _ in range(rounds):
        for country in pycountry.countries:
            results.append(function(country.alpha_2))
            # Waiting keeps pending candidates under the bound, so none are shed.
            assert shadowfn.drain(timeout=30)
    return results


# Wilson score interval -----------------------------------------------------------


@pytest.mark.parametrize(
    ("successes", "trials", "low", "high"),
    [
        # Newcombe, "Two-sided confidence intervals for the single proportion",
        # Statistics in Medicine 17 (1998), Table I, score method.
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_interval_published_values(successes: int, trials: int, low: float, high: float) -> None:
    found = wilson_interval(successes, trials)

    assert found[0] == pytest.approx(low, abs=5e-5)
    assert found[1] == pytest.approx(high, abs=5e-5)


def test_wilson_interval_without_trials() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_wilson_interval_narrows_with_samples() -> None:
    widths = [high - low for low, high in (wilson_interval(n // 100, n) for n in (100, 1000, 10_000))]

    assert widths == sorted(widths, reverse=True)


# Distinct-key sketch --------------------------------------------------------------


def test_sketch_exact_for_few_keys() -> None:
    sketch = KeySketch()
    for country in pycountry.countries:
        sketch.add(key_hash(country.alpha_2.encode()))
        sketch.add(key_hash(country.alpha_2.encode()))

    assert sketch.exact is True
    assert sketch.estimate() == len(pycountry.countries)


def test_sketch_estimate_within_error() -> None:
    sketch = KeySketch()
    names = [s.code for s in pycountry.subdivisions] * 2
    for name in names:
        sketch.add(key_hash(name.encode()))
    distinct = len(set(names))

    assert distinct > EXACT_LIMIT
    assert sketch.exact is False
    assert abs(sketch.estimate() - distinct) <= 4 * STANDARD_ERROR * distinct


def test_sketch_merge_counts_shared_keys_once() -> None:
    codes = [s.code.encode() for s in pycountry.subdivisions]
    first, second, whole = KeySketch(), KeySketch(), KeySketch()
    for code in codes[:3000]:
        first.add(key_hash(code))
    for code in codes[2000:]:
        second.add(key_hash(code))
    for code in codes:
        whole.add(key_hash(code))

    first.merge(second)

    assert first.estimate() == whole.estimate()


def test_key_hash_matches_logged_key() -> None:
    key = b"req-30"

    assert f"{key_hash(key):016x}" == hashlib.sha256(key).hexdigest()[:16]


# wrapped.shadow.report() ------------------------------------------------------------


def test_report_counts_distinct_keys() -> None:
    @shadow(common_name_record, rate=100, name="codec.record")
    def record(alpha_2: str) -> dict[str, Any]:
        return country_record(alpha_2)

    run_all_countries(record, rounds=2)
    report = record.shadow.report()
    stats = record.shadow.stats

    assert report.function == "codec.record"
    assert report.compared == stats.matched + stats.diverged == 2 * len(pycountry.countries)
    assert report.diverged == stats.diverged
    assert report.diverged == 2 * sum(1 for c in pycountry.countries if hasattr(c, "common_name"))
    assert report.distinct_keys == len(pycountry.countries)
    assert report.distinct_keys_exact is True
    assert report.divergence_rate == pytest.approx(report.diverged / report.compared)
    assert report.interval == wilson_interval(report.diverged, report.compared)


def test_report_ready_for_identical_candidate() -> None:
    @shadow(country_record, rate=100)
    def record(alpha_2: str) -> dict[str, Any]:
        return country_record(alpha_2)

    run_all_countries(record, rounds=2)
    report = record.shadow.report()

    assert report.diverged == 0
    assert report.ready(max_divergence_rate=0.01, min_samples=400) is True
    assert report.unmet(max_divergence_rate=0.01, min_samples=400) == []
    # 498 calls cannot bound the rate below 0.1% at 95% confidence.
    assert report.ready(max_divergence_rate=0.001, min_samples=400) is False
    assert report.ready() is False


def test_report_not_ready_for_diverging_candidate() -> None:
    @shadow(common_name_record, rate=100)
    def record(alpha_2: str) -> dict[str, Any]:
        return country_record(alpha_2)

    run_all_countries(record)
    report = record.shadow.report()
    unmet = report.unmet(max_divergence_rate=0.01, min_samples=100)

    assert report.ready(max_divergence_rate=0.01, min_samples=100) is False
    assert len(unmet) == 1
    assert "upper 95% bound" in unmet[0]
    assert report.ready(max_divergence_rate=0.5, min_samples=100) is True


def test_report_needs_min_samples() -> None:
    @shadow(country_record, rate=100)
    def record(alpha_2: str) -> dict[str, Any]:
        return country_record(alpha_2)

    run_all_countries(record)
    report = record.shadow.report()

    assert report.ready(max_divergence_rate=1.0, min_samples=len(pycountry.countries)) is True
    assert report.ready(max_divergence_rate=1.0, min_samples=len(pycountry.countries) + 1) is False
    assert report.unmet(max_divergence_rate=1.0, min_samples=10_000) == [
        f"{len(pycountry.countries)} compared calls, fewer than the 10000 required"
    ]


def test_report_before_any_call() -> None:
    @shadow(country_record, rate=100)
    def record(alpha_2: str) -> dict[str, Any]:
        return country_record(alpha_2)

    report = record.shadow.report()

    assert isinstance(report, ReadinessReport)
    assert report.compared == 0
    assert report.divergence_rate is None
    assert report.interval == (0.0, 1.0)
    assert report.ready(max_divergence_rate=1.0, min_samples=0) is True
    assert report.ready(max_divergence_rate=0.5, min_samples=0) is False


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"max_divergence_rate": 1.5}, "max_divergence_rate must be a number in [0, 1]"),
        ({"max_divergence_rate": "0.1"}, "got '0.1'"),
        ({"max_divergence_rate": True}, "max_divergence_rate must be a number in [0, 1]"),
        ({"min_samples": -1}, "min_samples must be an int >= 0, got -1"),
        ({"min_samples": 10.5}, "min_samples must be an int >= 0, got 10.5"),
    ],
)
def test_ready_rejects_bad_thresholds(arguments: dict[str, Any], message: str) -> None:
    @shadow(country_record, rate=100)
    def record(alpha_2: str) -> dict[str, Any]:
        return country_record(alpha_2)

    with pytest.raises(ValueError) as raised:
        record.shadow.report().ready(**arguments)

    assert message in str(raised.value)


def test_report_to_dict_is_json_safe() -> None:
    @shadow(common_name_record, rate=100)
    def record(alpha_2: str) -> dict[str, Any]:
        return country_record(alpha_2)

    run_all_countries(record)
    data = record.shadow.report().to_dict()

    assert data["compared"] == len(pycountry.countries)
    assert data["interval"] == list(record.shadow.report().interval)


# The caller still gets the primary's result ----------------------------------------


def test_raising_candidate_counts_as_compared() -> None:
    def candidate(alpha_2: str) -> dict[str, Any]:
        raise LookupError(alpha_2)

    @shadow(candidate, rate=100)
    def record(alpha_2: str) -> dict[str, Any]:
        return country_record(alpha_2)

    values = run_all_countries(record)
    report = record.shadow.report()

    assert values == [country_record(c.alpha_2) for c in pycountry.countries]
    assert report.compared == len(pycountry.countries)
    assert report.diverged == len(pycountry.countries)
    assert report.distinct_keys == len(pycountry.countries)


def test_primary_result_is_same_object_while_counting() -> None:
    returned: list[dict[str, Any]] = []

    def candidate(alpha_2: str) -> dict[str, Any]:
        raise SystemExit(3)

    @shadow(candidate, rate=100)
    def record(alpha_2: str) -> dict[str, Any]:
        value = country_record(alpha_2)
        returned.append(value)
        return value

    for country in list(pycountry.countries)[:20]:
        assert record(country.alpha_2) is returned[-1]
    assert shadowfn.drain(timeout=10)

    assert record.shadow.report().compared == 20


def test_hung_candidate_is_not_compared() -> None:
    release = threading.Event()

    def candidate(alpha_2: str) -> dict[str, Any]:
        release.wait(10)
        return country_record(alpha_2)

    @shadow(candidate, rate=100, timeout=0.05)
    def record(alpha_2: str) -> dict[str, Any]:
        return country_record(alpha_2)

    try:
        started = time.perf_counter()
        value = record("BE")
        elapsed = time.perf_counter() - started
        assert shadowfn.drain(timeout=5)
        report = record.shadow.report()
    finally:
        release.set()

    assert value == country_record("BE")
    assert elapsed < 1.0
    assert report.timeouts == 1
    assert report.compared == 0
    assert report.distinct_keys == 0
