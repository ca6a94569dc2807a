"""Paths into a record (``body.items[3].name``) and the patterns that select them.

A path is a tuple of segments: a ``str`` is a dict key or a record part, an ``int``
is a list index, and a :class:`Key` wraps any other dict key. Patterns add ``*``
(exactly one segment), ``[*]`` (one list index) and ``**`` (any number of segments,
including none).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Key", "PathPattern", "PathSet", "format_path", "parse_pattern"]


@dataclass(frozen=True)
class Key:
    """A dict key that is not a string, such as an int or None."""

    value: Any


Segment = str | int | Key
Path = tuple[Segment, ...]

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*\Z")


def format_path(path: Sequence[Segment]) -> str:
    """Render a path as divergences print it: ``body.user.name``, ``body.items[3]``."""
    parts: list[str] = []
    for segment in path:
        if isinstance(segment, int) and not isinstance(segment, bool):
            parts.append(f"[{segment}]")
        elif isinstance(segment, Key):
            parts.append(f"[{segment.value!r}]")
        elif isinstance(segment, str) and _IDENTIFIER.match(segment):
            parts.append(f".{segment}" if parts else segment)
        else:
            parts.append(f"[{json.dumps(segment, ensure_ascii=False)}]")
    return "".join(parts)


class _Wildcard:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


ANY = _Wildcard("*")
ANY_INDEX = _Wildcard("[*]")
DEEP = _Wildcard("**")

PatternElement = str | int | _Wildcard

_TOKEN = re.compile(
    r"""
    (?P<dot>\.)
    | \[(?P<index>-?\d+)\]
    | \[(?P<any_index>\*)\]
    | \[(?P<quoted>"(?:[^"\\]|\\.)*")\]
    | (?P<deep>\*\*)
    | (?P<any>\*)
    | (?P<name>[^.\[\]*]+)
    """,
    re.VERBOSE,
)


class PathPattern:
    """One compiled pattern, such as ``body.items[*].id`` or ``body.**.updated_at``."""

    def __init__(self, text: str, elements: tuple[PatternElement, ...]) -> None:
        self.text = text
        self.elements = elements
        self._has_deep = DEEP in elements

    def __repr__(self) -> str:
        return f"PathPattern({self.text!r})"

    def matches(self, path: Path) -> bool:
        """Return whether the pattern matches the whole of ``path``."""
        if not self._has_deep and len(path) != len(self.elements):
            return False
        return _match(self.elements, 0, path, 0)


def _segment_matches(element: PatternElement, segment: Segment) -> bool:
    if element is ANY:
        return True
    if element is ANY_INDEX:
        return isinstance(segment, int)
    if isinstance(segment, Key):
        return bool(element == segment.value)
    return type(element) is type(segment) and element == segment


def _match(elements: tuple[PatternElement, ...], ei: int, path: Path, si: int) -> bool:
    while ei < len(elements):
        element = elements[ei]
        if element is DEEP:
            return any(_match(elements, ei + 1, path, start) for start in range(si, len(path) + 1))
        if si >= len(path) or not _segment_matches(element, path[si]):
            return False
        ei += 1
        si += 1
    return si == len(path)


def parse_pattern(text: str) -> PathPattern:
    """Compile a path pattern.

    Raises:
        ValueError: ``text`` is not a valid pattern; the message shows the text.
    """
    if not isinstance(text, str) or not text:
        raise ValueError(f"a path pattern must be a non-empty string, got {text!r}")
    elements: list[PatternElement] = []
    position = 0
    expect_segment = True
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise ValueError(f"invalid path pattern {text!r} at character {position}")
        kind = match.lastgroup
        position = match.end()
        if kind == "dot":
            if expect_segment:
                raise ValueError(f"invalid path pattern {text!r}: empty segment before '.'")
            expect_segment = True
            continue
        if kind in ("name", "deep", "any") and not expect_segment:
            raise ValueError(f"invalid path pattern {text!r}: missing '.' at character {match.start()}")
        if kind == "name":
            elements.append(match.group("name"))
        elif kind == "deep":
            elements.append(DEEP)
        elif kind == "any":
            elements.append(ANY)
        elif kind == "index":
            elements.append(int(match.group("index")))
        elif kind == "any_index":
            elements.append(ANY_INDEX)
        else:
            elements.append(json.loads(match.group("quoted")))
        expect_segment = False
    if expect_segment:
        raise ValueError(f"invalid path pattern {text!r}: it ends with '.'")
    if len(elements) > 1 and elements[0] == "headers" and isinstance(elements[1], str):
        # Records lower-case header names, so "headers.ETag" must select "headers.etag".
        elements[1] = elements[1].lower()
    return PathPattern(text, tuple(elements))


class PathSet:
    """A set of patterns; a path is selected when a pattern matches it or one of its prefixes."""

    def __init__(self, patterns: Iterable[str | PathPattern] = ()) -> None:
        compiled = [p if isinstance(p, PathPattern) else parse_pattern(p) for p in patterns]
        self.patterns: tuple[PathPattern, ...] = tuple(compiled)

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def __repr__(self) -> str:
        return f"PathSet({[p.text for p in self.patterns]!r})"

    def matches(self, path: Path) -> bool:
        """Return whether a pattern matches exactly ``path`` (callers check each prefix as they descend)."""
        return any(pattern.matches(path) for pattern in self.patterns)

    def covers(self, path: Path) -> bool:
        """Return whether ``path`` or one of its prefixes is selected."""
        return any(self.matches(path[:end]) for end in range(1, len(path) + 1))
