"""The ORM cutover example, checked against its own SQLite file."""

from __future__ import annotations

import importlib.util
import sqlite3
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pycountry
import pytest

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "orm_cutover.py"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("orm_cutover", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["orm_cutover"] = module
    spec.loader.exec_module(module)
    return module


orm_cutover = load_example()


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    path = tmp_path_factory.mktemp("orm") / "iso3166.db"
    report = orm_cutover.run(path, None)
    return path, report


def codes(conn: sqlite3.Connection, group: tuple[str, str], order: str) -> list[str]:
    query = f"SELECT code FROM subdivision WHERE country_code = ? AND type = ? ORDER BY {order}"
    return [row[0] for row in conn.execute(query, group)]


def expected_groups(path: Path) -> tuple[list[tuple[str, str]], set[tuple[str, str]], set[tuple[str, str]]]:
    """Return every group, those whose binary and NOCASE orders differ, and those with a NULL parent."""
    with sqlite3.connect(path) as conn:
        groups = [tuple(row) for row in conn.execute("SELECT DISTINCT country_code, type FROM subdivision")]
        reordered = {g for g in groups if codes(conn, g, "name") != codes(conn, g, "name COLLATE NOCASE")}
        with_null_parent = {
            g
            for g in groups
            if conn.execute(
                "SELECT count(*) FROM subdivision WHERE country_code = ? AND type = ? AND parent_code IS NULL",
                g,
            ).fetchone()[0]
        }
    conn.close()
    return groups, reordered, with_null_parent


def stage(report: Any, title: str) -> Any:
    found = [s for s in report.stages if s.title == title]
    assert len(found) == 1, title
    return found[0]


def test_database_holds_pycountry_data(database: tuple[Path, Any]) -> None:
    path, report = database
    with sqlite3.connect(path) as conn:
        countries = conn.execute("SELECT count(*) FROM country").fetchone()[0]
        subdivisions = conn.execute("SELECT count(*) FROM subdivision").fetchone()[0]
        null_official = conn.execute("SELECT count(*) FROM country WHERE official_name IS NULL").fetchone()[0]
    conn.close()

    assert countries == len(pycountry.countries) == report.countries
    assert subdivisions == len(pycountry.subdivisions) == report.subdivisions
    assert null_official == sum(1 for c in pycountry.countries if not hasattr(c, "official_name"))


def test_connection_argument_is_uncopyable(database: tuple[Path, Any]) -> None:
    path, report = database
    groups, _, _ = expected_groups(path)
    stats = stage(report, "copy_args=True (default)").stats

    assert stats.uncopyable == len(groups)
    assert stats.matched + stats.diverged == 0
    assert any("sqlite3.Connection" in w and "copy_args=False" in w for w in report.events.misuse)


def test_naive_port_diverges_on_order_and_null(database: tuple[Path, Any]) -> None:
    path, report = database
    groups, reordered, with_null_parent = expected_groups(path)
    naive = stage(report, "naive ORM port")

    assert reordered, "the data has names whose binary and case-insensitive orders differ"
    assert set(naive.diverged) == reordered | with_null_parent
    assert naive.stats.diverged == len(reordered | with_null_parent)
    assert naive.stats.matched == len(groups) - naive.stats.diverged


def test_compare_leaves_only_order_divergences(database: tuple[Path, Any]) -> None:
    path, report = database
    _, reordered, _ = expected_groups(path)
    lenient = stage(report, "naive ORM port, compare=")

    assert set(lenient.diverged) == reordered
    assert lenient.changed_fields["name"] == len(reordered)


@pytest.mark.parametrize(
    "title",
    [
        "ORM port with COLLATE NOCASE, ignore=",
        "sync primary, async ORM candidate",
        "async primary, async ORM candidate",
    ],
)
def test_fixed_ports_match_everywhere(database: tuple[Path, Any], title: str) -> None:
    path, report = database
    groups, _, _ = expected_groups(path)
    stats = stage(report, title).stats

    assert stats.matched == len(groups)
    assert stats.sampled == stats.outcomes == len(groups)


def test_candidates_skip_the_write(database: tuple[Path, Any]) -> None:
    path, report = database
    groups, _, _ = expected_groups(path)
    with sqlite3.connect(path) as conn:
        logged = conn.execute("SELECT count(*) FROM lookup_log").fetchone()[0]
    conn.close()

    # One row per primary call; a candidate that wrote as well would double it.
    assert logged == report.primary_calls == len(report.stages) * len(groups)


def test_main_with_limit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "limited.db"

    assert orm_cutover.main(["--db", str(path), "--limit", "3"]) == 0

    output = capsys.readouterr().out
    with sqlite3.connect(path) as conn:
        first = [
            r[0] for r in conn.execute("SELECT DISTINCT country_code FROM subdivision ORDER BY 1 LIMIT 3")
        ]
        groups = conn.execute(
            "SELECT count(DISTINCT country_code || '/' || type) FROM subdivision WHERE country_code IN (?, ?, ?)",
            first,
        ).fetchone()[0]
    conn.close()
    assert f"groups queried per stage: {groups} " in output
    assert "lookup_log rows" in output


def test_main_rejects_bad_limit(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        orm_cutover.main(["--limit", "0"])

    assert exited.value.code == 2
    assert "--limit must be a positive number of countries, got 0" in capsys.readouterr().err


def test_main_keeps_foreign_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not a database\n")

    with pytest.raises(SystemExit) as exited:
        orm_cutover.main(["--db", str(path)])

    assert exited.value.code == 2
    assert "is not a database built by this program" in capsys.readouterr().err
    assert path.read_text() == "not a database\n"
