"""Redaction: values at selected paths are replaced before anything is stored or logged.

Divergence logs leave the process, so a value that may be a secret (a header
such as ``authorization``, a body path named in ``redact=``) is replaced by
``"<redacted>"`` in every ``Change``, in the records kept in ``shadowfn.log`` and
in what structlog receives. Comparison is not affected: a redacted path that
differs is still a divergence, shown with redacted values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ._paths import ANY, DEEP, Path, PathSet
from ._preview import REDACTED

__all__ = ["DEFAULT_REDACTED_HEADERS", "REDACTED", "Redactor"]

# Credentials that HTTP clients and servers send in these headers.
DEFAULT_REDACTED_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})

# Record parts that hold no body text.
_NON_BODY_PARTS = frozenset({"headers", "error", "status", "ok"})


class Redactor:
    """Decides which paths of a record are redacted and replaces their values.

    Header values named in ``DEFAULT_REDACTED_HEADERS`` are always redacted, and so
    is every path that a pattern of ``patterns`` selects (the pattern or one of its
    prefixes matches). Thread-safe: it holds no mutable state.

    Raises:
        ValueError: a pattern is invalid.
    """

    def __init__(self, patterns: Iterable[str] = ()) -> None:
        self.paths = PathSet(patterns)
        # A pattern that can reach into the body also hides raw text excerpts of
        # str and bytes bodies, because a secret inside such text has no path.
        self.hides_text = any(
            not pattern.elements
            or pattern.elements[0] in (ANY, DEEP)
            or pattern.elements[0] not in _NON_BODY_PARTS
            for pattern in self.paths.patterns
        )

    def __repr__(self) -> str:
        return f"Redactor({[p.text for p in self.paths.patterns]!r})"

    def covers(self, path: Path) -> bool:
        """Return whether the value at ``path`` (or at one of its prefixes) is redacted."""
        name = path[1] if len(path) >= 2 and path[0] == "headers" else None
        if isinstance(name, str) and name.lower() in DEFAULT_REDACTED_HEADERS:
            return True
        return bool(self.paths) and self.paths.covers(path)

    def matches(self, path: Path) -> bool:
        """Return whether a pattern selects exactly ``path``; callers check prefixes as they descend."""
        return bool(self.paths) and self.paths.matches(path)

    def headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        """Return a copy of ``headers`` with redacted values replaced.

        Names match case-insensitively, because an adapter may keep a header's
        original case while patterns name it in lower case.
        """
        return {
            name: REDACTED
            if self.covers(("headers", name)) or self.covers(("headers", str(name).lower()))
            else value
            for name, value in headers.items()
        }

    def error(self, text: str | None) -> str | None:
        """Return an error text with its message replaced when ``error`` is redacted; the type stays."""
        if text is None or not self.covers(("error",)):
            return text
        type_name, _, _ = text.partition(":")
        return f"{type_name}: {REDACTED}"

    def text_excerpt(self, path: Path, value: Any) -> Any:
        """Return ``value``, a raw excerpt of a str or bytes body, or REDACTED where it may hold a secret."""
        if value is None:
            return None
        if self.hides_text or self.covers(path):
            return REDACTED
        return value


NO_PATTERNS = Redactor()
