"""The codec migration example, run on the ISO 3166 data that pycountry ships.

The expected divergences are derived from the records themselves. The legacy
codec escapes every non-ASCII character (``json.dumps`` with ``ensure_ascii``),
and orjson writes UTF-8. orjson 3.13 never pads a float's exponent with a zero,
so floats that ``repr`` writes as ``1e-05`` through ``9e-09`` come out as
``0.00001`` or ``1e-7``. Every other leaf is written the same way.
"""

from __future__ import annotations

import collections
import importlib.util
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pycountry
import pytest
import structlog
from structlog.testing import capture_logs

import shadowfn

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "codec_migration.py"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("codec_migration", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses look the module up in sys.modules while the class body runs.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def expected_paths(value: Any, path: str = "body") -> set[str]:
    """Return the paths of leaves that json and orjson write as different text."""
    if isinstance(value, dict):
        found: set[str] = set()
        for key, item in value.items():
            found |= expected_paths(item, f"{path}.{key}")
        return found
    if isinstance(value, list):
        found = set()
        for index, item in enumerate(value):
            found |= expected_paths(item, f"{path}[{index}]")
        return found
    if isinstance(value, str) and not value.isascii():
        return {path}
    if isinstance(value, float) and "e-0" in repr(value):
        return {path}
    return set()


def is_name_path(path: str) -> bool:
    return path == "body.name" or path.endswith(".name")


class Runs:
    def __init__(self, example: ModuleType) -> None:
        self.example = example
        self.records = example.build_records()
        capacity = shadowfn.log.capacity
        try:
            with capture_logs() as events:
                self.full, self.ignoring = example.run_both(self.records, io.StringIO())
        finally:
            shadowfn.configure(log_capacity=capacity)
        self.events = events
        self.paths = [expected_paths(record) for record in self.records]


@pytest.fixture(scope="module")
def example() -> Iterator[ModuleType]:
    module = load_example()
    yield module
    sys.modules.pop("codec_migration", None)


@pytest.fixture(scope="module")
def runs(example: ModuleType) -> Runs:
    return Runs(example)


def test_records_cover_all_pycountry_data(runs: Runs) -> None:
    countries = [r for r in runs.records if "alpha_2" in r]
    subdivisions = [r for r in runs.records if "code" in r]
    assert len(countries) == len(pycountry.countries)
    assert len(subdivisions) == len(pycountry.subdivisions)
    assert len(runs.records) == len(countries) + len(subdivisions)
    assert sum(r["subdivisions"] for r in countries) == len(pycountry.subdivisions)


def test_data_has_non_ascii_records(runs: Runs) -> None:
    # Without non-ASCII text the example would show no divergence at all.
    assert any(runs.paths)
    assert not all(runs.paths)


def test_every_record_is_compared(runs: Runs) -> None:
    for result in (runs.full, runs.ignoring):
        stats = result.stats
        assert stats.calls == len(runs.records)
        assert stats.sampled == stats.calls
        assert stats.pending == 0
        assert stats.outcomes == stats.sampled
        assert stats.matched + stats.diverged == stats.calls
        assert stats.shed == 0
        assert stats.timeouts == 0
        assert stats.compare_errors == 0
        assert stats.internal_errors == 0


def test_divergent_records_match_data(runs: Runs) -> None:
    expected = sum(1 for paths in runs.paths if paths)
    assert runs.full.stats.diverged == expected
    assert len(runs.full.entries) == expected


def test_divergences_grouped_by_path(runs: Runs) -> None:
    expected = collections.Counter(path for paths in runs.paths for path in paths)
    groups = runs.example.group_by_path(runs.full.entries)
    found = {(group.path, group.kind): group.records for group in groups}
    assert found == {(path, "format"): count for path, count in expected.items()}


def test_format_changes_are_escaping(runs: Runs) -> None:
    for entry in runs.full.entries:
        body = entry.divergence.body
        assert body is not None
        assert body.total_changes == len(body.changes)
        for change in body.changes:
            assert change.kind == "format"
            assert json.loads(change.primary) == json.loads(change.candidate)
            assert change.primary.isascii()
            assert not change.candidate.isascii()


def test_ignore_silences_name_paths(runs: Runs) -> None:
    kept = [{p for p in paths if not is_name_path(p)} for paths in runs.paths]
    expected_diverged = sum(1 for paths in kept if paths)
    assert runs.ignoring.stats.diverged == expected_diverged
    assert len(runs.ignoring.entries) == expected_diverged

    expected_groups = collections.Counter(path for paths in kept for path in paths)
    groups = runs.example.group_by_path(runs.ignoring.entries)
    found = {(group.path, group.kind): group.records for group in groups}
    assert found == {(path, "format"): count for path, count in expected_groups.items()}


def test_ignore_moves_silenced_records_to_matched(runs: Runs) -> None:
    silenced = runs.full.stats.diverged - runs.ignoring.stats.diverged
    names_only = sum(1 for paths in runs.paths if paths and all(is_name_path(p) for p in paths))
    assert names_only > 0
    assert silenced == names_only
    assert runs.ignoring.stats.matched - runs.full.stats.matched == silenced


def test_divergence_events_match_counters(runs: Runs) -> None:
    for result in (runs.full, runs.ignoring):
        events = [
            e for e in runs.events if e["event"] == "shadow.divergence" and e["function"] == result.function
        ]
        assert len(events) == result.stats.diverged
    warnings = [e for e in runs.events if e["log_level"] in ("warning", "error")]
    assert {e["event"] for e in warnings} <= {"shadow.divergence"}


def test_encode_returns_legacy_text(example: ModuleType) -> None:
    records = example.build_records(40)
    legacy = [json.dumps(record, separators=(",", ":")) for record in records]
    candidate = [example.encode_with_orjson(record) for record in records]
    assert legacy != candidate

    returned = [example.encode(record) for record in records]
    assert shadowfn.drain(timeout=10)
    assert returned == legacy


def test_script_prints_summary(example: ModuleType) -> None:
    limit = 40
    records = example.build_records(limit)
    diverged = sum(1 for record in records if expected_paths(record))
    completed = subprocess.run(
        [sys.executable, str(EXAMPLE), "--limit", str(limit)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert f"codec.encode: {len(records)}/{len(records)} records encoded" in completed.stdout
    assert f"codec.encode: {diverged} of {len(records)} records diverged" in completed.stdout
    assert "ignore=('body.**.name',) silenced" in completed.stdout
    # Match and divergence events are filtered out, and nothing else was logged.
    assert completed.stderr == ""


def test_main_rejects_zero_limit(example: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    saved = structlog.get_config()
    try:
        with pytest.raises(SystemExit) as raised:
            example.main(["--limit", "0"])
    finally:
        structlog.configure(**saved)
    assert raised.value.code == 2
    assert "--limit: must be a positive integer, got 0" in capsys.readouterr().err
