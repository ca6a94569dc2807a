"""Shadow a legacy ``json`` codec with an ``orjson`` candidate over the ISO 3166 data in pycountry.

The legacy codec encodes one record as compact JSON text with the standard
library. The candidate is meant as a drop-in replacement built on orjson, so it
decodes orjson's bytes to ``str`` and both sides return the same type. Every
country (ISO 3166-1) and every subdivision (ISO 3166-2) that pycountry ships
goes through the shadowed codec, then the script prints the divergences grouped
by JSON path from ``shadowfn.log`` and the counters from ``shadowfn.stats()``.
A second run shadows the same legacy codec with ``ignore=("body.**.name",)``
and shows which divergences that pattern silences.

Run it with ``python examples/codec_migration.py`` (``--help`` lists the options).
It needs the ``examples`` extra: ``pip install -e '.[examples]'``.
"""

from __future__ import annotations

import argparse
import collections
import importlib.metadata
import inspect
import json
import logging
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

import orjson
import pycountry
import structlog

import shadowfn
from shadowfn import shadow

Record = dict[str, Any]

ENCODE_NAME = "codec.encode"
ENCODE_IGNORING_NAMES_NAME = "codec.encode_ignoring_names"
IGNORED_PATHS = ("body.**.name",)

# Far more than encoding one small record takes, so only a hung candidate reaches it.
CANDIDATE_TIMEOUT_S = 1.0
DRAIN_TIMEOUT_S = 10.0

# Calls past the pending bound are shed (counted, not compared). The example
# sets the bound to this size and waits for each batch, so nothing is shed.
BATCH_SIZE = 32


def encode_with_orjson(record: Record) -> str:
    """Encode ``record`` with orjson: the drop-in replacement under test."""
    return orjson.dumps(record).decode("utf-8")


@shadow(encode_with_orjson, timeout=CANDIDATE_TIMEOUT_S, name=ENCODE_NAME)
def encode(record: Record) -> str:
    """Encode ``record`` as compact JSON text with the standard library (the legacy codec)."""
    return json.dumps(record, separators=(",", ":"))


# The same legacy codec, shadowed a second time with every ``name`` field left
# out of the comparison, wherever it sits in the record.
encode_ignoring_names = shadow(
    encode_with_orjson,
    timeout=CANDIDATE_TIMEOUT_S,
    ignore=IGNORED_PATHS,
    name=ENCODE_IGNORING_NAMES_NAME,
)(inspect.unwrap(encode))


# Records ---------------------------------------------------------------------


def country_records() -> list[Record]:
    """Return one record per ISO 3166-1 country, with its number of ISO 3166-2 subdivisions.

    ``subdivision_share`` is that number divided by the number of subdivisions
    in the whole data set.
    """
    per_country = collections.Counter(sub.country_code for sub in pycountry.subdivisions)
    total = len(pycountry.subdivisions)
    records = []
    for country in pycountry.countries:
        record: Record = {
            "alpha_2": country.alpha_2,
            "alpha_3": country.alpha_3,
            "numeric": country.numeric,
            "name": country.name,
        }
        for optional in ("official_name", "common_name"):
            value = getattr(country, optional, None)
            if value is not None:
                record[optional] = value
        record["flag"] = country.flag
        record["subdivisions"] = per_country[country.alpha_2]
        record["subdivision_share"] = per_country[country.alpha_2] / total
        records.append(record)
    return records


def subdivision_records() -> list[Record]:
    """Return one record per ISO 3166-2 subdivision, with the code and name of its country."""
    countries = {country.alpha_2: country.name for country in pycountry.countries}
    records = []
    for subdivision in pycountry.subdivisions:
        records.append(
            {
                "code": subdivision.code,
                "name": subdivision.name,
                "type": subdivision.type,
                "parent_code": subdivision.parent_code,
                "country": {
                    "alpha_2": subdivision.country_code,
                    "name": countries.get(subdivision.country_code),
                },
            }
        )
    return records


def build_records(limit: int | None = None) -> list[Record]:
    """Return the country records, then the subdivision records, at most ``limit`` of each kind."""
    countries = country_records()
    subdivisions = subdivision_records()
    if limit is not None:
        countries = countries[:limit]
        subdivisions = subdivisions[:limit]
    return countries + subdivisions


# Running ---------------------------------------------------------------------


@dataclass(frozen=True)
class RunResult:
    """The ``shadowfn.log`` entries and ``shadowfn.stats()`` counters of one pass over the records."""

    function: str
    records: int
    entries: tuple[shadowfn.DivergenceEntry, ...]
    stats: shadowfn.FunctionStats


def run_codec(
    encode_record: Callable[[Record], str],
    function: str,
    records: Sequence[Record],
    out: TextIO,
    progress_every: int = 1000,
) -> RunResult:
    """Encode every record with a shadowed codec, wait for the comparisons and collect the results.

    The records go through in batches of ``BATCH_SIZE``, the pending bound that
    ``main`` sets, with a drain after each batch, so no call is shed and every
    record gets compared.
    """
    done = 0
    for start in range(0, len(records), BATCH_SIZE):
        for record in records[start : start + BATCH_SIZE]:
            encode_record(record)
        if not shadowfn.drain(timeout=DRAIN_TIMEOUT_S):
            print(f"{function}: shadow work still pending after {DRAIN_TIMEOUT_S} s", file=out)
        previous, done = done, min(start + BATCH_SIZE, len(records))
        if done // progress_every > previous // progress_every or done == len(records):
            print(f"{function}: {done}/{len(records)} records encoded", file=out)

    entries = shadowfn.log.recent(n=shadowfn.log.capacity, function=function)
    return RunResult(function, len(records), tuple(reversed(entries)), shadowfn.stats()[function])


# Reporting -------------------------------------------------------------------


@dataclass(frozen=True)
class PathGroup:
    """The divergent records that share one path and kind, with the first of them as an example."""

    path: str
    kind: str
    records: int
    primary: Any
    candidate: Any


def group_by_path(entries: Iterable[shadowfn.DivergenceEntry]) -> list[PathGroup]:
    """Count the records that diverge at each ``(path, kind)``, most frequent first.

    A record counts once per path. Differences outside the body (the ``ok``,
    ``error`` and ``status`` parts) are grouped by their part name with the kind ``-``.
    """
    counts: collections.Counter[tuple[str, str]] = collections.Counter()
    examples: dict[tuple[str, str], tuple[Any, Any]] = {}
    for entry in entries:
        divergence = entry.divergence
        found: dict[tuple[str, str], tuple[Any, Any]] = {}
        if divergence.body is not None:
            for change in divergence.body.changes:
                found.setdefault((change.path, change.kind), (change.primary, change.candidate))
        for part in ("ok", "error", "status"):
            pair = getattr(divergence, part)
            if pair is not None:
                found.setdefault((part, "-"), pair)
        for group, example in found.items():
            counts[group] += 1
            examples.setdefault(group, example)
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [PathGroup(path, kind, n, *examples[(path, kind)]) for (path, kind), n in ordered]


def truncated_entries(entries: Iterable[shadowfn.DivergenceEntry]) -> int:
    """Return how many entries list fewer changes than they count (the list is capped)."""
    return sum(
        1
        for entry in entries
        if entry.divergence.body is not None
        and entry.divergence.body.total_changes > len(entry.divergence.body.changes)
    )


def print_run(result: RunResult, out: TextIO) -> None:
    """Print one run's divergences grouped by path, then its counters."""
    print(f"\n{result.function}: {result.stats.diverged} of {result.records} records diverged", file=out)
    groups = group_by_path(result.entries)
    if groups:
        print(f"  {'path':<22} {'kind':<7} {'records':>7}  first example: primary -> candidate", file=out)
    for group in groups:
        example = f"{_show(group.primary, group.kind)} -> {_show(group.candidate, group.kind)}"
        print(f"  {group.path:<22} {group.kind:<7} {group.records:>7}  {example}", file=out)
    truncated = truncated_entries(result.entries)
    if truncated:
        print(f"  {truncated} entries list only their first changes", file=out)
    if len(result.entries) != result.stats.diverged:
        print(
            f"  the log kept {len(result.entries)} of {result.stats.diverged} divergences: "
            "raise shadowfn.configure(log_capacity=...)",
            file=out,
        )
    counters = " ".join(f"{name}={value}" for name, value in result.stats.as_dict().items())
    print(f"  counters: {counters}", file=out)


def _show(value: Any, kind: str, limit: int = 40) -> str:
    # A format change contains the two JSON tokens as written, which read best unquoted.
    text = value if kind == "format" and isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def counters_add_up(stats: shadowfn.FunctionStats) -> bool:
    """Return whether every call was sampled and every sampled call reached exactly one outcome."""
    return stats.pending == 0 and stats.sampled == stats.calls == stats.outcomes


# Logging ---------------------------------------------------------------------


def _drop_divergence_events(logger: Any, method_name: str, event_dict: Any) -> Any:
    # Divergences are printed through the summary that reads shadowfn.log.
    if event_dict.get("event") == "shadow.divergence":
        raise structlog.DropEvent
    return event_dict


def configure_logging(stream: TextIO) -> None:
    """Send structlog events at INFO and above to ``stream``, except the divergence events.

    The level filter drops ``shadow.match`` (one debug event per matching call).
    Warnings and errors, such as ``shadow.candidate_timeout``, still print.
    """
    structlog.configure(
        processors=[
            _drop_divergence_events,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.dev.ConsoleRenderer(colors=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.PrintLoggerFactory(stream),
    )


# Command line ----------------------------------------------------------------


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--limit",
        type=_positive_int,
        default=None,
        metavar="N",
        help="encode at most N countries and N subdivisions (default: all of them)",
    )
    parser.add_argument(
        "--progress-every",
        type=_positive_int,
        default=1000,
        metavar="N",
        help="print a progress line every N records (default: 1000)",
    )
    return parser.parse_args(argv)


def run_both(
    records: Sequence[Record], out: TextIO, progress_every: int = 1000
) -> tuple[RunResult, RunResult]:
    """Encode the records with both shadowed codecs, one after the other."""
    shadowfn.configure(max_pending=BATCH_SIZE, log_capacity=max(1, 2 * len(records)))
    full = run_codec(encode, ENCODE_NAME, records, out, progress_every)
    ignoring = run_codec(encode_ignoring_names, ENCODE_IGNORING_NAMES_NAME, records, out, progress_every)
    return full, ignoring


def main(argv: Sequence[str] | None = None) -> int:
    """Run the example; return 0 when every record was compared, else 1."""
    args = parse_args(argv)
    out = sys.stdout
    configure_logging(sys.stderr)

    records = build_records(args.limit)
    countries = sum(1 for record in records if "alpha_2" in record)
    print(
        f"pycountry {importlib.metadata.version('pycountry')}: "
        f"{countries} countries, {len(records) - countries} subdivisions",
        file=out,
    )
    full, ignoring = run_both(records, out, args.progress_every)

    print_run(full, out)
    print_run(ignoring, out)
    silenced = full.stats.diverged - ignoring.stats.diverged
    print(
        f"\nignore={IGNORED_PATHS!r} silenced {silenced} of {full.stats.diverged} divergent records "
        f"(diverged {full.stats.diverged} -> {ignoring.stats.diverged}, "
        f"matched {full.stats.matched} -> {ignoring.stats.matched})",
        file=out,
    )

    complete = all(
        counters_add_up(result.stats) and len(result.entries) == result.stats.diverged
        for result in (full, ignoring)
    )
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
