"""Aggregate shadowfn's structlog events, read back from JSON-lines logs, into a report.

The reader streams: it holds one line at a time and keeps bounded state per
function (counters, a distinct-key sketch, at most ``MAX_PATHS`` diverging paths
with at most ``MAX_EXAMPLES`` examples each, and at most ``MAX_BUCKETS`` time
buckets), so memory does not grow with the size of the logs.
"""

from __future__ import annotations

import datetime
import gzip
import json
import math
import re
import sys
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeGuard

from ._preview import preview
from ._readiness import KeySketch, ReadinessReport

__all__ = ["LogReport", "normalize_path"]

MAX_LINE_BYTES = 8 * 1024 * 1024
MAX_FUNCTIONS = 1000
MAX_PATHS = 500
MAX_EXAMPLES = 5
MAX_BUCKETS = 240
MAX_MALFORMED_LISTED = 100

_INDEX = re.compile(r"\[-?\d+\]")
_KEY = re.compile(r"[0-9a-f]{16}\Z")

_COUNTED_EVENTS = {
    "shadow.match": "matched",
    "shadow.divergence": "diverged",
    "shadow.candidate_timeout": "timeouts",
    "shadow.shed": "shed",
    "shadow.compare_failed": "compare_failed",
    "shadow.internal_error": "internal_errors",
    "shadow.cancelled": "cancelled",
    "shadow.unkeyable": "unkeyable_warnings",
    "shadow.uncopyable": "uncopyable_warnings",
}
_WARNINGS_ONLY = ("unkeyable_warnings", "uncopyable_warnings")
# Rate-limited warnings carry how many events were suppressed since the last one.
_RATE_LIMITED = {"shadow.candidate_timeout", "shadow.shed"}


class _Readable(Protocol):
    def readline(self, size: int = -1, /) -> bytes: ...


def normalize_path(path: str) -> str:
    """Replace every list index in a divergence path by ``[*]``: ``body.items[3].price`` -> ``body.items[*].price``."""
    return _INDEX.sub("[*]", path)


@dataclass
class _PathTally:
    count: int = 0
    kinds: dict[str, int] = field(default_factory=dict)
    examples: list[dict[str, Any]] = field(default_factory=list)

    def add(self, kind: str, primary: Any, candidate: Any, key: str, path: str) -> None:
        self.count += 1
        if kind in self.kinds or len(self.kinds) < 8:
            self.kinds[kind] = self.kinds.get(kind, 0) + 1
        if len(self.examples) >= MAX_EXAMPLES:
            return
        example = {"path": path, "kind": kind, "primary": preview(primary), "candidate": preview(candidate)}
        if any(
            e["primary"] == example["primary"] and e["candidate"] == example["candidate"]
            for e in self.examples
        ):
            return
        example["key"] = key
        self.examples.append(example)


class _Timeline:
    """Compared and diverged calls per time bucket; the bucket width doubles to stay within ``MAX_BUCKETS``."""

    def __init__(self) -> None:
        self.width = 1.0
        self.buckets: dict[int, list[int]] = {}

    def add(self, at: float, diverged: bool) -> None:
        index = int(at // self.width)
        bucket = self.buckets.get(index)
        if bucket is None:
            bucket = self.buckets[index] = [0, 0]
            if len(self.buckets) > MAX_BUCKETS:
                self._widen()
                bucket = self.buckets[int(at // self.width)]
        bucket[0] += 1
        if diverged:
            bucket[1] += 1

    def _widen(self) -> None:
        while len(self.buckets) > MAX_BUCKETS:
            self.width *= 2
            merged: dict[int, list[int]] = {}
            for index, (compared, diverged) in self.buckets.items():
                target = merged.setdefault(index // 2, [0, 0])
                target[0] += compared
                target[1] += diverged
            self.buckets = merged

    def points(self) -> list[dict[str, Any]]:
        found = []
        for index in sorted(self.buckets):
            compared, diverged = self.buckets[index]
            found.append(
                {
                    "start": _iso(index * self.width),
                    "start_unix": index * self.width,
                    "seconds": self.width,
                    "compared": compared,
                    "diverged": diverged,
                    "rate": diverged / compared if compared else None,
                }
            )
        return found


class _FunctionTally:
    def __init__(self, name: str) -> None:
        self.name = name
        self.counts = dict.fromkeys(_COUNTED_EVENTS.values(), 0)
        self.keys = KeySketch()
        self.paths: dict[str, _PathTally] = {}
        self.untracked_paths = 0
        self.timeline = _Timeline()
        self.primary_ms = 0.0
        self.candidate_ms = 0.0
        self.timed = 0

    def add(self, name: str, event: dict[str, Any], at: float | None) -> None:
        counter = _COUNTED_EVENTS[name]
        amount = 1
        if name in _RATE_LIMITED:
            # NOTE: a lower bound. Each warning carries the count suppressed before it,
            # so events suppressed after a process's last warning are not in the log.
            suppressed = event.get("suppressed")
            if isinstance(suppressed, int) and not isinstance(suppressed, bool) and suppressed > 0:
                amount += suppressed
        self.counts[counter] += amount
        if counter not in ("matched", "diverged"):
            return

        diverged = counter == "diverged"
        key = event.get("key")
        if isinstance(key, str) and _KEY.match(key):
            self.keys.add(int(key, 16))
        if at is not None:
            self.timeline.add(at, diverged)
        primary_ms, candidate_ms = event.get("primary_ms"), event.get("candidate_ms")
        if _finite(primary_ms) and _finite(candidate_ms):
            self.primary_ms += primary_ms
            self.candidate_ms += candidate_ms
            self.timed += 1
        if diverged:
            self._add_paths(event.get("diff"), key if isinstance(key, str) else "-")

    def _add_paths(self, diff: Any, key: str) -> None:
        seen: set[str] = set()
        for path, kind, primary, candidate in _diff_changes(diff):
            normalized = normalize_path(path)
            if normalized in seen:
                # A path counts once per divergence, however many list items differ.
                continue
            seen.add(normalized)
            tally = self.paths.get(normalized)
            if tally is None:
                if len(self.paths) >= MAX_PATHS:
                    self.untracked_paths += 1
                    continue
                tally = self.paths[normalized] = _PathTally()
            tally.add(kind, primary, candidate, key, path)

    def readiness(self) -> ReadinessReport:
        return ReadinessReport.build(
            self.name,
            matched=self.counts["matched"],
            diverged=self.counts["diverged"],
            keys=self.keys,
            timeouts=self.counts["timeouts"],
            errors=self.counts["compare_failed"] + self.counts["internal_errors"],
        )

    def to_dict(self, thresholds: tuple[float, int] | None) -> dict[str, Any]:
        counts = self.counts
        readiness = self.readiness()
        diverged = counts["diverged"]
        paths = sorted(self.paths.items(), key=lambda item: (-item[1].count, item[0]))
        result: dict[str, Any] = {
            "function": self.name,
            "sampled": sum(v for k, v in counts.items() if k not in _WARNINGS_ONLY),
            **counts,
            "matches_logged": counts["matched"] > 0,
            "compared": readiness.compared,
            "divergence_rate": readiness.divergence_rate,
            "interval": list(readiness.interval),
            "distinct_keys": readiness.distinct_keys,
            "distinct_keys_exact": readiness.distinct_keys_exact,
            "primary_ms_mean": self.primary_ms / self.timed if self.timed else None,
            "candidate_ms_mean": self.candidate_ms / self.timed if self.timed else None,
            "paths": [
                {
                    "path": path,
                    "count": tally.count,
                    "share": tally.count / diverged if diverged else None,
                    "kinds": dict(tally.kinds),
                    "examples": list(tally.examples),
                }
                for path, tally in paths
            ],
            "untracked_paths": self.untracked_paths,
            "timeline": self.timeline.points(),
            "readiness": None,
        }
        if thresholds is not None:
            unmet = readiness.unmet(*thresholds)
            result["readiness"] = {"ready": not unmet, "unmet": unmet}
        return result


def _diff_changes(diff: Any) -> Iterator[tuple[str, str, Any, Any]]:
    """Yield ``(path, kind, primary, candidate)`` for every difference in a logged ``Divergence.to_dict()``."""
    if not isinstance(diff, dict):
        return
    for part in ("ok", "error", "status"):
        pair = diff.get(part)
        if isinstance(pair, list) and len(pair) == 2:
            yield part, "changed", pair[0], pair[1]
    headers = diff.get("headers")
    if isinstance(headers, dict):
        for kind in ("added", "removed", "changed"):
            names = headers.get(kind)
            if isinstance(names, list):
                for name in names:
                    yield f"headers.{name}", kind, None, None
    body = diff.get("body")
    if isinstance(body, dict) and isinstance(body.get("changes"), list):
        for change in body["changes"]:
            if isinstance(change, dict) and isinstance(change.get("path"), str):
                change_kind = change.get("kind")
                yield (
                    change["path"],
                    change_kind if isinstance(change_kind, str) else "changed",
                    change.get("primary"),
                    change.get("candidate"),
                )
    if not any(diff.get(part) for part in ("ok", "error", "status", "headers", "body")):
        note = diff.get("note")
        if isinstance(note, str):
            # compare() returned False but the structural diff found nothing.
            yield "(compare)", "changed", None, None


def _finite(value: Any) -> TypeGuard[int | float]:
    """Return whether ``value`` is an int or a finite float, not a bool (JSON ``true``, ``NaN``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return math.isfinite(value)


_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
# Unix seconds of the first and last second ``datetime`` can show, years 1 to 9999 in UTC.
_FIRST_SECOND = (datetime.datetime(1, 1, 1, tzinfo=datetime.timezone.utc) - _EPOCH).total_seconds()
_LAST_SECOND = (
    datetime.datetime(9999, 12, 31, 23, 59, 59, tzinfo=datetime.timezone.utc) - _EPOCH
).total_seconds()


def _parse_time(value: Any) -> float | None:
    """Return a structlog ``TimeStamper`` value as Unix seconds: ISO 8601 text or a number.

    Returns None for anything else, and for a time outside the years 1 to 9999
    in UTC (``NaN``, epoch milliseconds read as seconds), so the event counts
    as untimed.
    """
    if isinstance(value, str):
        text = value[:-1] + "+00:00" if value.endswith("Z") else value
        try:
            parsed = datetime.datetime.fromisoformat(text)
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=datetime.timezone.utc)
        seconds = (parsed - _EPOCH).total_seconds()
    elif _finite(value):
        seconds = float(value)
    else:
        return None

    return seconds if _FIRST_SECOND <= seconds <= _LAST_SECOND else None


def _iso(seconds: float) -> str:
    # A widened timeline bucket can start up to its width before year 1.
    seconds = min(max(seconds, _FIRST_SECOND), _LAST_SECOND)
    moment = _EPOCH + datetime.timedelta(seconds=seconds)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


class LogReport:
    """The running aggregate of one or more logs; feed it files, then read ``to_dict()``."""

    def __init__(self) -> None:
        self.files: list[str] = []
        self.lines = 0
        self.events = 0
        self.other_lines = 0
        self.untimed_events = 0
        self.untracked_function_events = 0
        self.malformed = 0
        self.malformed_listed: list[dict[str, Any]] = []
        self.first: float | None = None
        self.last: float | None = None
        self._functions: dict[str, _FunctionTally] = {}

    # Reading -----------------------------------------------------------------

    def read_path(self, path: str) -> None:
        """Read one log file: ``-`` is standard input, a name ending in ``.gz`` is gunzipped.

        Raises:
            OSError: the file cannot be opened or read.
        """
        if path == "-":
            self.read_stream(sys.stdin.buffer, "<stdin>")
            return
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as compressed:
                self.read_stream(compressed, path)
        else:
            with open(path, "rb") as plain:
                self.read_stream(plain, path)

    def read_stream(self, stream: _Readable, source: str) -> None:
        """Read JSON lines from a binary stream, one line in memory at a time."""
        self.files.append(source)
        number = 0
        while True:
            try:
                line = stream.readline(MAX_LINE_BYTES + 1)
            except (EOFError, zlib.error) as exc:
                # A gzip file cut off or damaged: keep what was read before it.
                self._malformed(source, number + 1, f"unreadable compressed data: {exc}")
                break
            if not line:
                break
            number += 1
            self.lines += 1
            if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
                _skip_rest_of_line(stream)
                self._malformed(source, number, f"line longer than {MAX_LINE_BYTES} bytes")
                continue
            self.read_line(line, source, number)

    def read_lines(self, lines: Iterable[bytes | str], source: str) -> None:
        """Read JSON lines from an iterable (text or bytes), numbering them from 1."""
        self.files.append(source)
        for number, line in enumerate(lines, start=1):
            self.lines += 1
            self.read_line(line, source, number)

    def read_line(self, line: bytes | str, source: str, number: int) -> None:
        """Count one line of a log; a malformed line is recorded, never raised."""
        if not line.strip():
            return
        try:
            event = json.loads(line)
        except UnicodeDecodeError:
            self._malformed(source, number, "invalid UTF-8")
            return
        except (ValueError, RecursionError) as exc:
            self._malformed(source, number, f"invalid JSON: {exc}")
            return
        if not isinstance(event, dict):
            self._malformed(source, number, f"a JSON {type(event).__name__}, not an object")
            return
        name = event.get("event")
        if not isinstance(name, str) or name not in _COUNTED_EVENTS:
            self.other_lines += 1
            return
        function = event.get("function")
        if not isinstance(function, str) or not function:
            self._malformed(source, number, f"{name} event without a function name")
            return
        self._add(function, name, event)

    def _add(self, function: str, name: str, event: dict[str, Any]) -> None:
        self.events += 1
        at = _parse_time(event.get("timestamp"))
        if at is None:
            self.untimed_events += 1
        else:
            self.first = at if self.first is None else min(self.first, at)
            self.last = at if self.last is None else max(self.last, at)
        tally = self._functions.get(function)
        if tally is None:
            if len(self._functions) >= MAX_FUNCTIONS:
                self.untracked_function_events += 1
                return
            tally = self._functions[function] = _FunctionTally(function)
        tally.add(name, event, at)

    def _malformed(self, source: str, number: int, reason: str) -> None:
        self.malformed += 1
        if len(self.malformed_listed) < MAX_MALFORMED_LISTED:
            self.malformed_listed.append({"file": source, "line": number, "reason": reason[:200]})

    # Results -------------------------------------------------------------------

    def readiness(self, function: str) -> ReadinessReport:
        """Return the readiness report of one function found in the logs.

        Raises:
            KeyError: no shadowfn event of ``function`` was read.
        """
        return self._functions[function].readiness()

    def to_dict(self, thresholds: tuple[float, int] | None = None) -> dict[str, Any]:
        """Return the report as JSON-safe data, functions with the most divergences first.

        ``thresholds`` is ``(max_divergence_rate, min_samples)``; with it each
        function gets a readiness verdict.
        """
        functions = sorted(
            self._functions.values(), key=lambda tally: (-tally.counts["diverged"], tally.name)
        )
        return {
            "files": list(self.files),
            "lines": self.lines,
            "events": self.events,
            "other_lines": self.other_lines,
            "untimed_events": self.untimed_events,
            "untracked_function_events": self.untracked_function_events,
            "time_range": None
            if self.first is None or self.last is None
            else [_iso(self.first), _iso(self.last)],
            "malformed": {"count": self.malformed, "lines": list(self.malformed_listed)},
            "thresholds": None
            if thresholds is None
            else {"max_divergence_rate": thresholds[0], "min_samples": thresholds[1]},
            "functions": [tally.to_dict(thresholds) for tally in functions],
        }


def _skip_rest_of_line(stream: _Readable) -> None:
    while True:
        chunk = stream.readline(MAX_LINE_BYTES)
        if not chunk or chunk.endswith(b"\n"):
            return
