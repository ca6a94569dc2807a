"""Bounded, JSON-safe previews of values, for what is logged and kept in memory."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ._paths import Key, Path

if TYPE_CHECKING:
    from ._redact import Redactor

__all__ = ["preview"]

REDACTED = "<redacted>"

MAX_TEXT = 120
MAX_ITEMS = 8
MAX_DEPTH = 3


def preview(value: Any, depth: int = 0, *, path: Path | None = None, redactor: Redactor | None = None) -> Any:
    """Return a JSON-safe copy of ``value`` cut to a small size.

    Strings and bytes longer than 120 characters are cut and marked with ``…``;
    containers keep their first 8 items and nest at most 3 levels; bytes become
    their ``repr``; non-finite floats become strings. With a ``redactor``,
    ``path`` is where ``value`` sits in its record, and every value that the
    redactor selects at or below it becomes ``"<redacted>"``.
    """
    if redactor is not None and path is not None:
        if redactor.covers(path):
            return REDACTED
        return _redacted_preview(value, depth, path, redactor)
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, str):
        return _cut(value)
    if isinstance(value, (bytes, bytearray)):
        return _cut(repr(bytes(value[: MAX_TEXT + 1])))
    if depth >= MAX_DEPTH:
        return _cut(f"<{type(value).__name__} of {_size(value)} items>")
    if isinstance(value, dict):
        items = list(value.items())
        shown = {str(k): preview(v, depth + 1) for k, v in items[:MAX_ITEMS]}
        if len(items) > MAX_ITEMS:
            shown["…"] = f"{len(items) - MAX_ITEMS} more keys"
        return shown
    if isinstance(value, (list, tuple)):
        shown_list = [preview(v, depth + 1) for v in value[:MAX_ITEMS]]
        if len(value) > MAX_ITEMS:
            shown_list.append(f"… {len(value) - MAX_ITEMS} more items")
        return shown_list
    try:
        return _cut(repr(value))
    except Exception:
        return f"<{type(value).__name__}>"


def _redacted_preview(value: Any, depth: int, path: Path, redactor: Redactor) -> Any:
    # The caller has checked ``path`` itself; each child is checked on the way down.
    if depth >= MAX_DEPTH or not isinstance(value, (dict, list, tuple)):
        return preview(value, depth)
    if isinstance(value, dict):
        items = list(value.items())
        shown: dict[str, Any] = {}
        for key, item in items[:MAX_ITEMS]:
            child = (*path, key if isinstance(key, str) else Key(key))
            shown[str(key)] = (
                REDACTED if redactor.matches(child) else _redacted_preview(item, depth + 1, child, redactor)
            )
        if len(items) > MAX_ITEMS:
            shown["…"] = f"{len(items) - MAX_ITEMS} more keys"
        return shown
    shown_list = []
    for index, item in enumerate(value[:MAX_ITEMS]):
        child = (*path, index)
        shown_list.append(
            REDACTED if redactor.matches(child) else _redacted_preview(item, depth + 1, child, redactor)
        )
    if len(value) > MAX_ITEMS:
        shown_list.append(f"… {len(value) - MAX_ITEMS} more items")
    return shown_list


def _cut(text: str) -> str:
    if len(text) <= MAX_TEXT:
        return text
    return text[:MAX_TEXT] + "…"


def _size(value: Any) -> int | str:
    try:
        return len(value)
    except Exception:
        return "?"
