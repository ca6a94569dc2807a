"""Bounded, JSON-safe previews of values, for what is logged and kept in memory."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["preview"]

MAX_TEXT = 120
MAX_ITEMS = 8
MAX_DEPTH = 3


def preview(value: Any, depth: int = 0) -> Any:
    """Return a JSON-safe copy of ``value`` cut to a small size.

    Strings and bytes longer than 120 characters are cut and marked with ``…``;
    containers keep their first 8 items and nest at most 3 levels; bytes become
    their ``repr``; non-finite floats become strings.
    """
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


def _cut(text: str) -> str:
    if len(text) <= MAX_TEXT:
        return text
    return text[:MAX_TEXT] + "…"


def _size(value: Any) -> int | str:
    try:
        return len(value)
    except Exception:
        return "?"
