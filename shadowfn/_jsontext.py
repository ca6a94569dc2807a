"""Leaf-level comparison of two JSON texts whose parsed values are equal.

``json`` and ``orjson`` can encode one value as different text (``"\\u00c5"`` versus
``"Å"``, ``1e-05`` versus ``0.00001``). Scanning both texts token by token and
pairing the leaves by path shows where the text differs, not only that it does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

from ._paths import Path, Segment

__all__ = ["leaf_tokens", "parse_json_text"]

_TOKENS = re.compile(
    r"""
    \s*(?:
      (?P<string>"(?:[^"\\]|\\.)*")
    | (?P<scalar>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null|NaN|-?Infinity)
    | (?P<punct>[{}\[\]:,])
    )
    """,
    re.VERBOSE | re.DOTALL,
)


def parse_json_text(body: bytes | str) -> object:
    """Parse ``body`` as JSON when it looks like an object or array, else return a sentinel."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    stripped = text.lstrip()
    if not stripped or stripped[0] not in "{[":
        return NOT_JSON
    try:
        return json.loads(text)
    except ValueError:
        return NOT_JSON


class _NotJson:
    def __repr__(self) -> str:
        return "NOT_JSON"


NOT_JSON = _NotJson()


def leaf_tokens(body: bytes | str) -> Iterator[tuple[Path, str]]:
    """Yield ``(path, raw token text)`` for every scalar leaf of a JSON text, in order.

    Raises:
        ValueError: the text is not valid JSON.
        RecursionError: the text nests deeper than the interpreter's recursion limit.
    """
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    tokens = _tokenize(text)
    yield from _leaves(tokens, _next(tokens), ())


def _tokenize(text: str) -> Iterator[str]:
    position = 0
    while True:
        match = _TOKENS.match(text, position)
        if match is None:
            return
        position = match.end()
        yield match.group(match.lastgroup or "punct")


def _next(tokens: Iterator[str]) -> str:
    token = next(tokens, None)
    if token is None:
        raise ValueError("unexpected end of JSON text")
    return token


def _leaves(tokens: Iterator[str], token: str, path: Path) -> Iterator[tuple[Path, str]]:
    if token == "{":
        token = _next(tokens)
        while token != "}":
            key: Segment = json.loads(token)
            _next(tokens)  # the colon
            yield from _leaves(tokens, _next(tokens), (*path, key))
            token = _next(tokens)
            if token == ",":
                token = _next(tokens)
        return
    if token == "[":
        token = _next(tokens)
        index = 0
        while token != "]":
            yield from _leaves(tokens, token, (*path, index))
            token = _next(tokens)
            if token == ",":
                token = _next(tokens)
            index += 1
        return
    yield path, token
