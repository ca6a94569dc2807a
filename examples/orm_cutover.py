"""Cut a hand-written SQL query over to the SQLAlchemy ORM, with shadowfn watching.

The database is a SQLite file built with the standard library's ``sqlite3`` from
the ISO 3166 countries and subdivisions that ``pycountry`` ships. The production
function (the primary) runs hand-written SQL; the candidate is its SQLAlchemy 2.x
ORM port, and an async port runs through SQLAlchemy's async engine on the
``aiosqlite`` driver. Every divergence printed below comes from the data: the two
queries really do differ in collation and NULL handling.

    python examples/orm_cutover.py                 # every country, a temporary file
    python examples/orm_cutover.py --db /tmp/iso.db --limit 40

Needs the ``examples`` extra: ``pip install -e '.[examples]'``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import sqlite3
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiosqlite
import pycountry
import structlog
from sqlalchemy import ForeignKey, create_engine, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.pool import NullPool

import shadowfn
from shadowfn import shadow

SCHEMA = """
CREATE TABLE country (
    alpha_2 TEXT PRIMARY KEY,
    alpha_3 TEXT NOT NULL,
    name TEXT NOT NULL,
    official_name TEXT
);
CREATE TABLE subdivision (
    code TEXT PRIMARY KEY,
    country_code TEXT NOT NULL REFERENCES country (alpha_2),
    name TEXT NOT NULL,
    type TEXT NOT NULL,
    parent_code TEXT
);
CREATE INDEX subdivision_by_country ON subdivision (country_code, type);
CREATE TABLE lookup_log (
    id INTEGER PRIMARY KEY,
    country_code TEXT NOT NULL,
    type TEXT NOT NULL
);
"""

# The legacy query: case-insensitive order, and '' for a top-level subdivision.
SUBDIVISIONS_SQL = """
SELECT code, name, COALESCE(parent_code, '') AS parent
FROM subdivision
WHERE country_code = ? AND type = ?
ORDER BY name COLLATE NOCASE
"""


def build_database(path: Path) -> tuple[int, int]:
    """Write the ISO 3166 countries and subdivisions to a new SQLite file; return both row counts."""
    path.unlink(missing_ok=True)
    countries = [
        (c.alpha_2, c.alpha_3, c.name, getattr(c, "official_name", None)) for c in pycountry.countries
    ]
    subdivisions = [(s.code, s.country_code, s.name, s.type, s.parent_code) for s in pycountry.subdivisions]
    with sqlite3.connect(path) as conn:
        conn.executescript(SCHEMA)
        conn.executemany("INSERT INTO country VALUES (?, ?, ?, ?)", countries)
        conn.executemany("INSERT INTO subdivision VALUES (?, ?, ?, ?, ?)", subdivisions)
    conn.close()

    return len(countries), len(subdivisions)


def subdivision_groups(path: Path, limit: int | None) -> list[tuple[str, str]]:
    """Return (country, subdivision type) pairs for the first ``limit`` countries that have subdivisions."""
    with sqlite3.connect(path) as conn:
        countries = [
            row[0] for row in conn.execute("SELECT DISTINCT country_code FROM subdivision ORDER BY 1")
        ]
        if limit is not None:
            countries = countries[:limit]
        groups = conn.execute("SELECT DISTINCT country_code, type FROM subdivision ORDER BY 1, 2").fetchall()
    conn.close()
    chosen = set(countries)

    return [(country, kind) for country, kind in groups if country in chosen]


# The ORM model ------------------------------------------------------------------


class Base(DeclarativeBase):
    pass


class Subdivision(Base):
    __tablename__ = "subdivision"

    code: Mapped[str] = mapped_column(primary_key=True)
    country_code: Mapped[str] = mapped_column(ForeignKey("country.alpha_2"))
    name: Mapped[str]
    type: Mapped[str]
    parent_code: Mapped[str | None]


class LookupLog(Base):
    __tablename__ = "lookup_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    country_code: Mapped[str]
    type: Mapped[str]


# The primary and its ports ---------------------------------------------------------


def subdivisions_sql(conn: sqlite3.Connection, country_code: str, type: str) -> list[dict[str, str]]:
    """Return one country's subdivisions of one type, by hand-written SQL, and log the lookup."""
    rows = conn.execute(SUBDIVISIONS_SQL, (country_code, type)).fetchall()
    conn.execute("INSERT INTO lookup_log (country_code, type) VALUES (?, ?)", (country_code, type))
    conn.commit()

    return [{"code": code, "name": name, "parent": parent} for code, name, parent in rows]


def orm_port(sessions: sessionmaker[Session], *, collate: bool) -> Callable[..., list[dict[str, Any]]]:
    """Build the ORM port of ``subdivisions_sql``; ``collate=False`` is the first, naive port.

    The port receives the caller's own ``sqlite3`` connection (``copy_args=False``)
    and does not use it, because a ``sqlite3`` connection may only be used in the
    thread that created it and the candidate runs on a worker thread. The port
    opens its own session instead.
    """

    def subdivisions_orm(conn: sqlite3.Connection, country_code: str, type: str) -> list[dict[str, Any]]:
        ordering = Subdivision.name.collate("NOCASE") if collate else Subdivision.name
        query = (
            select(Subdivision)
            .where(Subdivision.country_code == country_code, Subdivision.type == type)
            .order_by(ordering)
        )
        with sessions() as session:
            found = [
                {"code": s.code, "name": s.name, "parent": s.parent_code} for s in session.scalars(query)
            ]
            # The write belongs to the primary: a shadow run must not log the lookup twice.
            if not shadowfn.is_shadow():
                session.add(LookupLog(country_code=country_code, type=type))
                session.commit()

        return found

    return subdivisions_orm


def async_orm_port(engine: AsyncEngine) -> Callable[..., Any]:
    """Build the async ORM port, reading through SQLAlchemy's async engine on ``aiosqlite``."""

    async def subdivisions_async_orm(conn: Any, country_code: str, type: str) -> list[dict[str, Any]]:
        query = (
            select(Subdivision)
            .where(Subdivision.country_code == country_code, Subdivision.type == type)
            .order_by(Subdivision.name.collate("NOCASE"))
        )
        async with AsyncSession(engine) as session:
            found = [
                {"code": s.code, "name": s.name, "parent": s.parent_code}
                for s in await session.scalars(query)
            ]
            if not shadowfn.is_shadow():
                session.add(LookupLog(country_code=country_code, type=type))
                await session.commit()

        return found

    return subdivisions_async_orm


async def subdivisions_aiosqlite(
    conn: aiosqlite.Connection, country_code: str, type: str
) -> list[dict[str, str]]:
    """Return the same rows as ``subdivisions_sql``, by the same SQL, through ``aiosqlite``."""
    async with conn.execute(SUBDIVISIONS_SQL, (country_code, type)) as cursor:
        rows = await cursor.fetchall()
    await conn.execute("INSERT INTO lookup_log (country_code, type) VALUES (?, ?)", (country_code, type))
    await conn.commit()

    return [{"code": code, "name": name, "parent": parent} for code, name, parent in rows]


def parent_blank_is_null(primary: list[dict[str, Any]], candidate: list[dict[str, Any]]) -> bool:
    """Compare two results, treating the legacy query's '' parent as the ORM's None."""

    def normalized(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{**row, "parent": row["parent"] or None} for row in rows]

    return normalized(primary) == normalized(candidate)


# Running the cutover ------------------------------------------------------------------


@dataclass
class Stage:
    """The outcome of one pass over every (country, type) group."""

    title: str
    stats: shadowfn.FunctionStats
    diverged: list[tuple[str, str]] = field(default_factory=list)
    changed_fields: collections.Counter[str] = field(default_factory=collections.Counter)
    examples: list[str] = field(default_factory=list)


class EventTally:
    """A structlog processor that counts shadowfn's events and keeps the warnings about misuse."""

    def __init__(self) -> None:
        self.counts: collections.Counter[str] = collections.Counter()
        self.misuse: list[str] = []

    def __call__(self, logger: Any, method_name: str, event_dict: Any) -> Any:
        event = str(event_dict.get("event"))
        self.counts[event] += 1
        if event in ("shadow.uncopyable", "shadow.unkeyable"):
            self.misuse.append(f"{event}: {event_dict.get('reason')}; fix: {event_dict.get('fix')}")
        raise structlog.DropEvent


@dataclass
class Report:
    """Everything ``main`` prints, for tests to check against the database."""

    countries: int
    subdivisions: int
    groups: list[tuple[str, str]]
    stages: list[Stage] = field(default_factory=list)
    lookups_logged: int = 0
    primary_calls: int = 0
    events: EventTally = field(default_factory=EventTally)


def field_of(path: str) -> str:
    """Return the field that a change path names: ``body[3].name`` becomes ``name``."""
    return path.rsplit(".", 1)[-1]


def run_pass(title: str, function: Any, conn: Any, groups: list[tuple[str, str]], report: Report) -> Stage:
    """Call ``function`` once per group and collect what its shadow reported.

    The pass waits for each call's shadow work before the next call, so that each
    divergence can be attached to its group. A service would not wait.
    """
    name = function.shadow.name
    stage = Stage(title=title, stats=function.shadow.stats)
    for group in groups:
        diverged = function.shadow.stats.diverged
        function(conn, *group)
        report.primary_calls += 1
        shadowfn.drain(timeout=30)
        if function.shadow.stats.diverged > diverged:
            stage.diverged.append(group)
            add_divergence(stage, shadowfn.log.recent(1, function=name)[0])
    stage.stats = function.shadow.stats

    return stage


async def run_async_pass(
    title: str, function: Any, conn: Any, groups: list[tuple[str, str]], report: Report
) -> Stage:
    """Await ``function`` once per group, as ``run_pass`` does for a sync function."""
    name = function.shadow.name
    stage = Stage(title=title, stats=function.shadow.stats)
    for group in groups:
        diverged = function.shadow.stats.diverged
        await function(conn, *group)
        report.primary_calls += 1
        await shadowfn.adrain(timeout=30)
        if function.shadow.stats.diverged > diverged:
            stage.diverged.append(group)
            add_divergence(stage, shadowfn.log.recent(1, function=name)[0])
    stage.stats = function.shadow.stats

    return stage


def add_divergence(stage: Stage, entry: shadowfn.DivergenceEntry) -> None:
    body = entry.divergence.body
    changes = body.changes if body is not None and body.changes else []
    stage.changed_fields.update({field_of(change.path) for change in changes})
    # Show a changed name first, because it shows the order; the known '' against None parent last.
    ranked = sorted(changes, key=lambda c: {"name": 0, "parent": 2}.get(field_of(c.path), 1))
    if ranked:
        shown = ranked[0]
        example = f"{shown.path} {shown.kind}: {shown.primary!r} -> {shown.candidate!r}"
    else:
        example = entry.divergence.summary()
    if len(stage.examples) < 4 and example not in stage.examples:
        stage.examples.append(example)


def run_sync_stages(path: Path, groups: list[tuple[str, str]], report: Report) -> None:
    """Shadow the SQL primary with the ORM ports, from the naive port to the fixed one."""
    engine = create_engine(f"sqlite:///{path}")
    sessions = sessionmaker(engine)
    naive = orm_port(sessions, collate=False)
    fixed = orm_port(sessions, collate=True)
    # A connection is not keyable either: the sticky key covers the query's own arguments.
    key = ("country_code", "type")
    conn = sqlite3.connect(path)
    try:
        # 1. With the default copy_args=True, shadowfn tries to deep-copy the
        #    connection for the candidate, cannot, and runs the call unshadowed.
        copying = shadow(naive, key=key, name="subdivisions.copy_args")(subdivisions_sql)
        report.stages.append(run_pass("copy_args=True (default)", copying, conn, groups, report))

        # 2. copy_args=False hands the candidate the caller's connection itself.
        plain = shadow(naive, key=key, copy_args=False, name="subdivisions.orm")(subdivisions_sql)
        report.stages.append(run_pass("naive ORM port", plain, conn, groups, report))

        # 3. '' against None for a top-level parent is a known, benign difference.
        lenient = shadow(
            naive, key=key, copy_args=False, compare=parent_blank_is_null, name="subdivisions.orm_compare"
        )(subdivisions_sql)
        report.stages.append(run_pass("naive ORM port, compare=", lenient, conn, groups, report))

        # 4. The same difference left out of the comparison by path instead.
        ignoring = shadow(
            fixed, key=key, copy_args=False, ignore=("body[*].parent",), name="subdivisions.orm_fixed"
        )(subdivisions_sql)
        report.stages.append(
            run_pass("ORM port with COLLATE NOCASE, ignore=", ignoring, conn, groups, report)
        )

        # 5. A coroutine candidate of this sync primary runs on shadowfn's own loop thread.
        async_engine = create_async_engine(f"sqlite+aiosqlite:///{path}", poolclass=NullPool)
        to_async = shadow(
            async_orm_port(async_engine),
            key=key,
            copy_args=False,
            ignore=("body[*].parent",),
            name="subdivisions.sync_to_async",
        )(subdivisions_sql)
        report.stages.append(run_pass("sync primary, async ORM candidate", to_async, conn, groups, report))
    finally:
        conn.close()
        engine.dispose()


async def run_async_stage(path: Path, groups: list[tuple[str, str]], report: Report) -> None:
    """Shadow an async primary (SQL through ``aiosqlite``) with the async ORM port."""
    engine = create_async_engine(f"sqlite+aiosqlite:///{path}")
    both_async = shadow(
        async_orm_port(engine),
        key=("country_code", "type"),
        copy_args=False,
        ignore=("body[*].parent",),
        name="subdivisions.async",
    )(subdivisions_aiosqlite)
    try:
        async with aiosqlite.connect(path) as conn:
            stage = await run_async_pass(
                "async primary, async ORM candidate", both_async, conn, groups, report
            )
        report.stages.append(stage)
    finally:
        await engine.dispose()


def run(path: Path, limit: int | None) -> Report:
    """Build the database at ``path`` and run every stage over the first ``limit`` countries."""
    countries, subdivisions = build_database(path)
    groups = subdivision_groups(path, limit)
    report = Report(countries=countries, subdivisions=subdivisions, groups=groups)

    # shadowfn never configures structlog; this program does, to tally the events
    # instead of printing one line for each of them, and restores the settings after.
    previous = structlog.get_config()
    structlog.configure(processors=[report.events])
    try:
        run_sync_stages(path, groups, report)
        asyncio.run(run_async_stage(path, groups, report))
        shadowfn.drain(timeout=30)
    finally:
        structlog.configure(**previous)
    with sqlite3.connect(path) as conn:
        report.lookups_logged = conn.execute("SELECT count(*) FROM lookup_log").fetchone()[0]
    conn.close()

    return report


def print_report(report: Report) -> None:
    print(f"database: {report.countries} countries, {report.subdivisions} subdivisions")
    print(f"groups queried per stage: {len(report.groups)} (country, subdivision type) pairs")
    for stage in report.stages:
        stats = stage.stats
        print()
        print(f"== {stage.title}")
        print(
            f"   sampled {stats.sampled}: matched {stats.matched}, diverged {stats.diverged}, "
            f"uncopyable {stats.uncopyable}, shed {stats.shed}, timeouts {stats.timeouts}"
        )
        if stage.changed_fields:
            fields = ", ".join(f"{name} in {count}" for name, count in stage.changed_fields.most_common())
            print(f"   fields that differ (groups): {fields}")
        if stage.diverged and len(stage.diverged) <= 10:
            print("   diverged groups: " + "; ".join(f"{c} {t}" for c, t in stage.diverged))
        for example in stage.examples:
            print(f"   e.g. {example}")
    print()
    print("structlog events: " + ", ".join(f"{name} {n}" for name, n in sorted(report.events.counts.items())))
    for warning in report.events.misuse:
        print(f"   {warning}")
    print(f"lookup_log rows: {report.lookups_logged} for {report.primary_calls} primary calls")


def is_replaceable(path: Path) -> bool:
    """Return whether ``path`` is missing, empty, or a database this program built."""
    if not path.exists() or path.stat().st_size == 0:
        return True
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        conn.close()
    except sqlite3.DatabaseError:
        return False

    return tables == {"country", "subdivision", "lookup_log"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--db",
        type=Path,
        help="SQLite file to build, replacing one that this program built before; a temporary file by default",
    )
    parser.add_argument(
        "--limit", type=int, default=None, help="query only the first N countries with subdivisions"
    )
    options = parser.parse_args(argv)
    if options.limit is not None and options.limit < 1:
        parser.error(f"--limit must be a positive number of countries, got {options.limit}")

    if options.db is not None:
        if not is_replaceable(options.db):
            parser.error(f"--db {options.db} exists and is not a database built by this program")
        print_report(run(options.db, options.limit))
        return 0
    with tempfile.TemporaryDirectory() as folder:
        print_report(run(Path(folder) / "iso3166.db", options.limit))

    return 0


if __name__ == "__main__":
    sys.exit(main())
