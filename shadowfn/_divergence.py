"""Divergences: the typed, structured difference between two records."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ._jsontext import NOT_JSON, leaf_tokens, parse_json_text
from ._paths import Key, Path, PathSet, format_path
from ._preview import preview
from ._records import ResponseRecord
from ._redact import NO_PATTERNS, Redactor
from ._tolerance import Tolerance

__all__ = ["BodyDiff", "Change", "Divergence", "HeaderDiff", "diff_records"]

MAX_CHANGES = 50
# Elements of an unordered list without an exact twin on the other side are
# paired by a rule-aware comparison, which costs one walk per pair tried.
MAX_UNORDERED_PAIRING = 200
CHANGE_KINDS = ("changed", "added", "removed", "type_changed", "format")
_EXCERPT = 40


@dataclass(frozen=True)
class Change:
    """One difference inside a body.

    ``kind`` is ``changed``, ``added`` (only the candidate has the path),
    ``removed`` (only the primary has it), ``type_changed``, or ``format`` (the
    same JSON value written as different text). ``primary`` and ``candidate``
    are previews of the values, cut to a bounded size.
    """

    path: str
    kind: str
    primary: Any = None
    candidate: Any = None

    def __str__(self) -> str:
        if self.kind == "added":
            return f"{self.path} added: {self.candidate!r}"
        if self.kind == "removed":
            return f"{self.path} removed: {self.primary!r}"
        return f"{self.path} {self.kind}: {self.primary!r} -> {self.candidate!r}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "kind": self.kind,
            "primary": self.primary,
            "candidate": self.candidate,
        }


@dataclass(frozen=True)
class HeaderDiff:
    """Header names only: values are not kept, because headers often carry secrets."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    def to_dict(self) -> dict[str, Any]:
        return {"added": list(self.added), "removed": list(self.removed), "changed": list(self.changed)}


@dataclass(frozen=True)
class BodyDiff:
    """The difference between two bodies.

    For bytes and str bodies, ``primary_len`` and ``candidate_len`` are the
    lengths and ``prefix_equal`` the length of the common prefix (the offset of
    the first difference). ``changes`` lists at most 50 changes by path, and
    ``total_changes`` counts them all.
    """

    changes: tuple[Change, ...] = ()
    total_changes: int = 0
    primary_len: int | None = None
    candidate_len: int | None = None
    prefix_equal: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "changes": [c.to_dict() for c in self.changes],
            "total_changes": self.total_changes,
            "primary_len": self.primary_len,
            "candidate_len": self.candidate_len,
            "prefix_equal": self.prefix_equal,
        }


@dataclass(frozen=True)
class Divergence:
    """The difference between the primary's and the candidate's records.

    Each part is None when it matches or is ignored: ``ok`` and ``status`` hold
    ``(primary, candidate)`` pairs, ``error`` the two error texts when they differ,
    each cut to 120 characters.
    """

    ok: tuple[bool, bool] | None = None
    status: tuple[int | None, int | None] | None = None
    headers: HeaderDiff | None = None
    body: BodyDiff | None = None
    error: tuple[str | None, str | None] | None = None
    note: str | None = field(default=None, compare=False)

    def paths(self) -> list[str]:
        """Return the diverging paths: ``ok``, ``status``, ``headers.<name>`` and body paths."""
        found: list[str] = []
        if self.ok is not None:
            found.append("ok")
        if self.error is not None:
            found.append("error")
        if self.status is not None:
            found.append("status")
        if self.headers is not None:
            names = self.headers.added + self.headers.removed + self.headers.changed
            found.extend(f"headers.{name}" for name in names)
        if self.body is not None:
            found.extend(change.path for change in self.body.changes)
        return found

    def summary(self) -> str:
        """Return a one-line description, such as ``status 200 -> 500; body: 2 changes (body.id changed)``."""
        parts: list[str] = []
        if self.ok is not None:
            side = "candidate" if self.ok[0] else "primary"
            parts.append(f"only the {side} raised")
        if self.error is not None:
            parts.append(f"error {self.error[0]!r} -> {self.error[1]!r}")
        if self.status is not None:
            parts.append(f"status {self.status[0]} -> {self.status[1]}")
        if self.headers is not None:
            marks = (
                [f"+{n}" for n in self.headers.added]
                + [f"-{n}" for n in self.headers.removed]
                + [f"~{n}" for n in self.headers.changed]
            )
            parts.append("headers " + " ".join(marks))
        if self.body is not None:
            parts.append(_body_summary(self.body))
        if self.note:
            parts.append(self.note)
        return "; ".join(parts) if parts else "no difference"

    def to_dict(self) -> dict[str, Any]:
        """Return the divergence as JSON-safe data."""
        return {
            "ok": list(self.ok) if self.ok is not None else None,
            "status": list(self.status) if self.status is not None else None,
            "headers": self.headers.to_dict() if self.headers is not None else None,
            "body": self.body.to_dict() if self.body is not None else None,
            "error": list(self.error) if self.error is not None else None,
            "note": self.note,
            "summary": self.summary(),
        }


def _body_summary(body: BodyDiff) -> str:
    count = body.total_changes
    noun = "change" if count == 1 else "changes"
    shown = "; ".join(str(change) for change in body.changes[:2])
    more = f" (+{count - 2} more)" if count > 2 else ""
    return f"body: {count} {noun}: {shown}{more}"


def diff_records(
    primary: ResponseRecord,
    candidate: ResponseRecord,
    ignore: PathSet | None = None,
    *,
    tolerance: Tolerance | None = None,
    unordered: PathSet | None = None,
    redactor: Redactor | None = None,
) -> Divergence | None:
    """Return how ``candidate`` differs from ``primary``, or None when every difference is ignored.

    Callers compare the records with ``==`` first; this walk runs only on a
    mismatch. Inside containers it skips equal subtrees with ``==``, so the cost
    is linear in the size of the body for a fixed nesting depth. ``tolerance``
    lets body floats differ within its bounds, and lists at ``unordered`` paths
    match when they hold the same elements in any order (see :func:`diff_bodies`).
    ``redactor`` replaces the values of redacted paths in the changes and error
    texts; it never hides that a path differs.
    """
    rules = ignore if ignore is not None else PathSet()
    redactor = redactor if redactor is not None else NO_PATTERNS

    def kept(*path: Any) -> bool:
        return not (rules and rules.covers(path))

    ok = None
    if primary.ok != candidate.ok and kept("ok"):
        ok = (primary.ok, candidate.ok)
    error = None
    if primary.error != candidate.error and kept("error"):
        # Cut like every logged value: an exception message can be any size.
        error = (preview(redactor.error(primary.error)), preview(redactor.error(candidate.error)))
    status = None
    if primary.status != candidate.status and kept("status"):
        status = (primary.status, candidate.status)
    headers = _diff_headers(primary.headers, candidate.headers, kept)
    body = None
    if primary.ok and candidate.ok and kept("body"):
        body = diff_bodies(
            primary.body, candidate.body, rules, tolerance=tolerance, unordered=unordered, redactor=redactor
        )

    if ok is None and error is None and status is None and headers is None and body is None:
        return None
    return Divergence(ok=ok, status=status, headers=headers, body=body, error=error)


def _diff_headers(primary: Any, candidate: Any, kept: Any) -> HeaderDiff | None:
    if primary == candidate:
        return None
    added = tuple(sorted(n for n in candidate if n not in primary and kept("headers", n)))
    removed = tuple(sorted(n for n in primary if n not in candidate and kept("headers", n)))
    changed = tuple(
        sorted(n for n in primary if n in candidate and primary[n] != candidate[n] and kept("headers", n))
    )
    headers = HeaderDiff(added=added, removed=removed, changed=changed)
    return headers if headers else None


class _Collector:
    def __init__(
        self, rules: PathSet, tolerance: Tolerance | None, unordered: PathSet | None, redactor: Redactor
    ) -> None:
        self.rules = rules
        self.tolerance = tolerance
        self.unordered = unordered if unordered else None
        self.redactor = redactor
        self.changes: list[Change] = []
        self.total = 0
        # Set when a tolerance or an unordered path accepted a difference that ``==`` saw.
        self.relaxed = False

    def scratch(self) -> _Collector:
        """Return an empty collector with the same rules, to test whether two subtrees match."""
        return _Collector(self.rules, self.tolerance, self.unordered, self.redactor)

    def ignored(self, path: Path) -> bool:
        return bool(self.rules) and self.rules.matches(path)

    def add(self, path: Path, kind: str, primary: Any, candidate: Any, *, excerpt: bool = False) -> None:
        """Count one change and keep it, with redacted previews, while fewer than 50 are kept.

        ``excerpt`` marks raw pieces of a str or bytes body, which may hold a
        secret that no path can select.
        """
        self.total += 1
        if len(self.changes) >= MAX_CHANGES:
            return
        redactor = self.redactor
        if excerpt:
            shown = (
                preview(redactor.text_excerpt(path, primary)),
                preview(redactor.text_excerpt(path, candidate)),
            )
        else:
            shown = (
                None if primary is None else preview(primary, path=path, redactor=redactor),
                None if candidate is None else preview(candidate, path=path, redactor=redactor),
            )
        self.changes.append(Change(format_path(path), kind, shown[0], shown[1]))


def diff_bodies(
    primary: Any,
    candidate: Any,
    rules: PathSet,
    *,
    tolerance: Tolerance | None = None,
    unordered: PathSet | None = None,
    redactor: Redactor | None = None,
) -> BodyDiff | None:
    """Diff two bodies below the ``body`` path; None when nothing but ignored paths differ.

    With ``tolerance``, two numbers (at least one a float) within its bounds
    match. A list whose path an ``unordered`` pattern matches is compared as a
    multiset: elements are paired first by exact equality, then by the same
    rule-aware comparison, and the elements left without a partner are reported
    as ``removed`` (primary's index) and ``added`` (candidate's index).
    ``redactor`` replaces the values of redacted paths in the changes.
    """
    collector = _Collector(rules, tolerance, unordered, redactor if redactor is not None else NO_PATTERNS)
    root: Path = ("body",)
    text_types = (str, bytes)
    if isinstance(primary, text_types) and isinstance(candidate, text_types):
        if primary == candidate:
            return None
        return _diff_texts(primary, candidate, collector, root)

    _walk(primary, candidate, root, collector)
    if collector.total == 0:
        return None
    return BodyDiff(changes=tuple(collector.changes), total_changes=collector.total)


def _diff_texts(
    primary: str | bytes, candidate: str | bytes, collector: _Collector, root: Path
) -> BodyDiff | None:
    lengths = {"primary_len": len(primary), "candidate_len": len(candidate)}
    prefix = _common_prefix(primary, candidate) if type(primary) is type(candidate) else 0

    parsed_primary = parse_json_text(primary)
    parsed_candidate = parse_json_text(candidate) if parsed_primary is not NOT_JSON else NOT_JSON
    if parsed_candidate is not NOT_JSON:
        _walk(parsed_primary, parsed_candidate, root, collector)
        # NOTE: when a tolerance or an unordered path made the parsed values match,
        # differences in how the JSON text is written are not reported.
        if collector.total == 0 and not collector.relaxed:
            same_values = _count_changes(parsed_primary, parsed_candidate) == 0
            _diff_json_format(primary, candidate, collector, root, same_values)
        if collector.total == 0:
            return None
    elif not collector.ignored(root):
        collector.add(
            root,
            _text_kind(primary, candidate),
            _excerpt(primary, prefix),
            _excerpt(candidate, prefix),
            excerpt=True,
        )
    else:
        return None
    return BodyDiff(
        changes=tuple(collector.changes),
        total_changes=collector.total,
        prefix_equal=prefix,
        **lengths,
    )


def _count_changes(primary: Any, candidate: Any) -> int:
    """Count the differences between two parsed values, ignoring nothing."""
    collector = _Collector(PathSet(), None, None, NO_PATTERNS)
    _walk(primary, candidate, (), collector)
    return collector.total


def _diff_json_format(
    primary: str | bytes, candidate: str | bytes, collector: _Collector, root: Path, same_values: bool
) -> None:
    """Pair the leaves of two JSON texts by path and report those written differently.

    The whole body counts as one ``format`` change only when ``same_values`` is true (the
    parsed values are equal) and no leaf is written differently.
    """
    try:
        primary_leaves = list(leaf_tokens(primary))
        candidate_leaves = dict(leaf_tokens(candidate))
    except (ValueError, RecursionError):
        primary_leaves, candidate_leaves = [], {}
    leaf_differs = False
    for path, raw in primary_leaves:
        other = candidate_leaves.get(path)
        if other is None or other == raw:
            continue
        # An ignored leaf still explains the text difference, so it must not
        # lead to the whole-body change below.
        leaf_differs = True
        full = root + path
        if not _any_prefix_ignored(collector, full):
            collector.add(full, "format", raw, other)
    # NOTE: whitespace, separator and key-order differences go unreported when
    # any leaf is also written differently, reported or ignored.
    if same_values and not leaf_differs and not collector.ignored(root):
        # Same leaves, different text: whitespace, separators or key order.
        # NOTE: when leaves differ only at ignored paths, such layout differences go unreported.
        prefix = _common_prefix(primary, candidate) if type(primary) is type(candidate) else 0
        collector.add(root, "format", _excerpt(primary, prefix), _excerpt(candidate, prefix), excerpt=True)


def _any_prefix_ignored(collector: _Collector, path: Path) -> bool:
    return bool(collector.rules) and collector.rules.covers(path)


def _text_kind(primary: Any, candidate: Any) -> str:
    return "changed" if type(primary) is type(candidate) else "type_changed"


def _common_prefix(a: str | bytes, b: str | bytes) -> int:
    limit = min(len(a), len(b))
    if a[:limit] == b[:limit]:
        return limit
    low, high = 0, limit
    # Binary search on slices keeps the comparison in C.
    while low < high:
        middle = (low + high + 1) // 2
        if a[:middle] == b[:middle]:
            low = middle
        else:
            high = middle - 1
    return low


def _excerpt(text: str | bytes, offset: int) -> str | bytes:
    start = max(0, offset - _EXCERPT // 2)
    piece = text[start : start + _EXCERPT]
    return piece


def _same_leaf(primary: Any, candidate: Any) -> bool:
    try:
        if primary == candidate:
            return True
    except Exception:
        return False
    return (
        isinstance(primary, float)
        and isinstance(candidate, float)
        and math.isnan(primary)
        and math.isnan(candidate)
    )


def _kind_of(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if value is None:
        return "null"
    return type(value).__name__


def _walk(primary: Any, candidate: Any, path: Path, out: _Collector) -> None:
    if primary is candidate or out.ignored(path):
        return
    if isinstance(primary, dict) and isinstance(candidate, dict):
        if _same_leaf(primary, candidate):
            return
        for key, value in primary.items():
            child = (*path, key if isinstance(key, str) else Key(key))
            if key in candidate:
                _walk(value, candidate[key], child, out)
            elif not out.ignored(child):
                out.add(child, "removed", value, None)
        for key, value in candidate.items():
            if key not in primary:
                child = (*path, key if isinstance(key, str) else Key(key))
                if not out.ignored(child):
                    out.add(child, "added", None, value)
        return
    if isinstance(primary, list) and isinstance(candidate, list):
        if _same_leaf(primary, candidate):
            return
        if out.unordered is not None and out.unordered.matches(path):
            _walk_unordered(primary, candidate, path, out)
            return
        shared = min(len(primary), len(candidate))
        for index in range(shared):
            _walk(primary[index], candidate[index], (*path, index), out)
        for index in range(shared, len(primary)):
            if not out.ignored((*path, index)):
                out.add((*path, index), "removed", primary[index], None)
        for index in range(shared, len(candidate)):
            if not out.ignored((*path, index)):
                out.add((*path, index), "added", None, candidate[index])
        return
    if _same_leaf(primary, candidate):
        return
    if out.tolerance is not None and out.tolerance.close(primary, candidate):
        out.relaxed = True
        return
    kind = "changed" if _kind_of(primary) == _kind_of(candidate) else "type_changed"
    out.add(path, kind, primary, candidate)


def _walk_unordered(primary: list[Any], candidate: list[Any], path: Path, out: _Collector) -> None:
    """Compare two lists as multisets; report the elements left without a partner."""
    # 1. Exact twins, paired through a hashable fingerprint in linear time.
    waiting: dict[Any, list[int]] = {}
    for index, item in enumerate(candidate):
        waiting.setdefault(_fingerprint(item), []).append(index)
    primary_left: list[int] = []
    for index, item in enumerate(primary):
        twins = waiting.get(_fingerprint(item))
        if twins:
            twins.pop(0)
        else:
            primary_left.append(index)
    candidate_left = sorted(index for indexes in waiting.values() for index in indexes)
    # The lists differ (the caller checked ``==``), so whatever matches here matches
    # only because order is not compared.
    out.relaxed = True

    # 2. Pairs that match only under ignore rules, tolerance or nested unordered lists.
    # NOTE: the pairing is greedy, so with a loose tolerance an element can take
    # a partner that a later element needed, and report a difference.
    if (
        primary_left
        and candidate_left
        and len(primary_left) * len(candidate_left) <= MAX_UNORDERED_PAIRING**2
    ):
        unpaired: list[int] = []
        for index in primary_left:
            element_path = (*path, index)
            partner = next(
                (c for c in candidate_left if _matches(primary[index], candidate[c], element_path, out)),
                None,
            )
            if partner is None:
                unpaired.append(index)
            else:
                candidate_left.remove(partner)
        primary_left = unpaired

    # 3. What is left differs.
    for index in primary_left:
        if not out.ignored((*path, index)):
            out.add((*path, index), "removed", primary[index], None)
    for index in candidate_left:
        if not out.ignored((*path, index)):
            out.add((*path, index), "added", None, candidate[index])


def _matches(primary: Any, candidate: Any, path: Path, out: _Collector) -> bool:
    trial = out.scratch()
    _walk(primary, candidate, path, trial)
    return trial.total == 0


def _fingerprint(value: Any) -> Any:
    """Return a hashable stand-in for plain data, equal for values that ``==`` finds equal."""
    if isinstance(value, dict):
        return ("dict", frozenset((_fingerprint(k), _fingerprint(v)) for k, v in value.items()))
    if isinstance(value, list):
        return ("list", tuple(_fingerprint(item) for item in value))
    if isinstance(value, float) and math.isnan(value):
        return ("nan",)
    try:
        hash(value)
    except TypeError:
        return ("repr", repr(value))
    return value
