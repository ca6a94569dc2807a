"""Canonical encoding of call arguments into sticky key bytes.

The encoding is type-tagged and length-prefixed, and it never uses ``hash()``,
``id()``, memory addresses or dict insertion order, so the same arguments give the
same bytes in every process.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import inspect
import math
import struct
import uuid
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["KeyBuilder", "UnencodableError", "canonical_bytes"]


class UnencodableError(TypeError):
    """A value of a type that the canonical encoding does not cover."""

    def __init__(self, value_type: type) -> None:
        self.value_type = value_type
        super().__init__(f"cannot encode a value of type {qualified_name(value_type)} as a key")


def qualified_name(cls: type) -> str:
    module = cls.__module__
    if module == "builtins":
        return cls.__qualname__
    return f"{module}.{cls.__qualname__}"


def _length_prefixed(tag: bytes, payload: bytes) -> bytes:
    return b"%s%d:%s" % (tag, len(payload), payload)


def _encode_str(value: str) -> bytes:
    return _length_prefixed(b"s", value.encode("utf-8", "surrogatepass"))


def _encode_float(value: float) -> bytes:
    if math.isnan(value):
        return b"fnan"
    return b"f" + struct.pack(">d", value)


def _encode_items(tag: bytes, parts: Sequence[bytes]) -> bytes:
    return b"%s%d:%s" % (tag, len(parts), b"".join(parts))


def _encode_fields(tag: bytes, cls: type, pairs: list[tuple[str, Any]], depth: int) -> bytes:
    parts = [_encode_str(qualified_name(cls))]
    for name, field_value in pairs:
        parts.append(_encode_str(name))
        parts.append(_encode(field_value, depth))
    return _encode_items(tag, parts)


_MAX_DEPTH = 100
_MISSING = inspect.Parameter.empty


def _encode(value: Any, depth: int = 0) -> bytes:
    if depth > _MAX_DEPTH:
        raise UnencodableError(type(value))
    depth += 1
    cls = type(value)

    # Exact types first: the common case costs one dict lookup.
    exact = _EXACT.get(cls)
    if exact is not None:
        return exact(value, depth)

    if isinstance(value, enum.Enum):
        return _encode_items(b"E", [_encode_str(qualified_name(cls)), _encode_str(value.name)])
    if dataclasses.is_dataclass(value):
        pairs = [(f.name, getattr(value, f.name)) for f in dataclasses.fields(value)]
        return _encode_fields(b"D", cls, pairs, depth)
    if isinstance(value, tuple) and hasattr(cls, "_fields"):
        return _encode_fields(b"n", cls, list(zip(cls._fields, value, strict=False)), depth)

    # Subclasses of the basic types encode as their base type.
    for base, encoder in _SUBCLASS_ORDER:
        if isinstance(value, base):
            return encoder(value, depth)
    raise UnencodableError(cls)


def _sorted_parts(values: Any, depth: int) -> list[bytes]:
    return sorted(_encode(item, depth) for item in values)


def _encode_dict(value: dict[Any, Any], depth: int) -> bytes:
    pairs = sorted(_encode(k, depth) + _encode(v, depth) for k, v in value.items())
    return _encode_items(b"d", pairs)


_EXACT: dict[type, Callable[[Any, int], bytes]] = {
    type(None): lambda v, d: b"N",
    bool: lambda v, d: b"T" if v else b"F",
    int: lambda v, d: b"i%d;" % v,
    float: lambda v, d: _encode_float(v),
    str: lambda v, d: _encode_str(v),
    bytes: lambda v, d: _length_prefixed(b"b", v),
    bytearray: lambda v, d: _length_prefixed(b"b", bytes(v)),
    list: lambda v, d: _encode_items(b"l", [_encode(i, d) for i in v]),
    tuple: lambda v, d: _encode_items(b"t", [_encode(i, d) for i in v]),
    dict: _encode_dict,
    set: lambda v, d: _encode_items(b"S", _sorted_parts(v, d)),
    frozenset: lambda v, d: _encode_items(b"S", _sorted_parts(v, d)),
    datetime.datetime: lambda v, d: _length_prefixed(b"@T", v.isoformat().encode()),
    datetime.date: lambda v, d: _length_prefixed(b"@D", v.isoformat().encode()),
    datetime.time: lambda v, d: _length_prefixed(b"@t", v.isoformat().encode()),
    datetime.timedelta: lambda v, d: b"@d%d,%d,%d;" % (v.days, v.seconds, v.microseconds),
    decimal.Decimal: lambda v, d: _length_prefixed(b"m", str(v).encode()),
    uuid.UUID: lambda v, d: _length_prefixed(b"u", v.bytes),
}

_SUBCLASS_ORDER: list[tuple[type, Callable[[Any, int], bytes]]] = [
    (bool, _EXACT[bool]),
    (int, _EXACT[int]),
    (float, _EXACT[float]),
    (str, _EXACT[str]),
    (bytes, _EXACT[bytes]),
    (bytearray, _EXACT[bytearray]),
    (list, _EXACT[list]),
    (tuple, _EXACT[tuple]),
    (dict, _EXACT[dict]),
    (frozenset, _EXACT[frozenset]),
    (set, _EXACT[set]),
    (datetime.datetime, _EXACT[datetime.datetime]),
    (datetime.date, _EXACT[datetime.date]),
    (datetime.time, _EXACT[datetime.time]),
    (datetime.timedelta, _EXACT[datetime.timedelta]),
    (decimal.Decimal, _EXACT[decimal.Decimal]),
    (uuid.UUID, _EXACT[uuid.UUID]),
]


def canonical_bytes(value: Any) -> bytes:
    """Encode ``value`` into deterministic, type-tagged bytes.

    Covers None, bool, int, float, str, bytes, list, tuple, dict, set, frozenset,
    dataclasses, enums, datetime, date, time, timedelta, Decimal, UUID and named
    tuples, nested to a depth of 100.

    Raises:
        UnencodableError: ``value`` or something inside it is of another type.
    """
    return _encode(value)


KeySpec = str | tuple[str, ...] | Callable[..., Any] | None


class KeyBuilder:
    """Builds the key bytes of one call for one decorated function.

    With no key spec the key covers every argument bound to the signature, with
    defaults applied, so ``f(1, y=2)``, ``f(1, 2)`` and ``f(x=1, y=2)`` share a key.
    ``skip_first`` leaves out ``self`` or ``cls``.
    """

    def __init__(self, signature: inspect.Signature, spec: KeySpec, *, skip_first: bool) -> None:
        parameters = list(signature.parameters.values())
        positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        if skip_first and parameters and parameters[0].kind in positional:
            parameters = parameters[1:]
        self._signature = signature.replace(parameters=parameters)
        self._spec = spec
        self._names = [p.name for p in parameters]
        self._defaults = [p.default for p in parameters]
        plain_kinds = (
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            inspect.Parameter.KEYWORD_ONLY,
        )
        self._positional_limit = sum(
            1 for p in parameters if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
        )
        self._plain = all(p.kind in plain_kinds for p in parameters)
        self._index = {name: i for i, name in enumerate(self._names)}
        if isinstance(spec, str):
            self._selected: tuple[str, ...] | None = (spec,)
        elif isinstance(spec, tuple):
            self._selected = spec
        else:
            self._selected = None

    def build(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
        """Return the key bytes for one call.

        Raises:
            UnencodableError: an argument, or the key function's result, cannot be encoded.
            Exception: whatever the user's key function raises.
        """
        spec = self._spec
        if callable(spec):
            produced = spec(*args, **kwargs)
            if isinstance(produced, (bytes, bytearray, memoryview)):
                return bytes(produced)
            if isinstance(produced, str):
                return produced.encode("utf-8", "surrogatepass")
            return canonical_bytes(produced)

        pairs = self._bind(args, kwargs)
        if self._selected is not None:
            selected = dict(pairs)
            pairs = [(name, selected.get(name)) for name in self._selected]
        parts = []
        for name, value in pairs:
            parts.append(_encode_str(name))
            parts.append(_encode(value))
        return _encode_items(b"A", parts)

    def _bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[tuple[str, Any]]:
        if self._plain and len(args) <= self._positional_limit:
            values = list(self._defaults)
            values[: len(args)] = args
            index = self._index
            for name, value in kwargs.items():
                position = index.get(name)
                if position is None:
                    return self._bind_slow(args, kwargs)
                values[position] = value
            if any(value is _MISSING for value in values):
                return self._bind_slow(args, kwargs)
            return list(zip(self._names, values, strict=True))
        return self._bind_slow(args, kwargs)

    def _bind_slow(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[tuple[str, Any]]:
        try:
            bound = self._signature.bind(*args, **kwargs)
        except TypeError:
            # The primary rejects these arguments too; key on them as given.
            return [("*args", list(args)), ("**kwargs", dict(kwargs))]
        bound.apply_defaults()
        return list(bound.arguments.items())
