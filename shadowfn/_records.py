"""Records: snapshots of one side's outcome, normalized to plain data."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import inspect
import json
import re
import sys
import types
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ._keys import qualified_name

__all__ = ["ResponseRecord", "error_text", "normalize", "snapshot", "snapshot_exception"]

MAX_DEPTH = 64
MAX_NODES = 2_000_000

CYCLE_MARK = "<cycle>"
DEPTH_MARK = "<max depth exceeded>"
SIZE_MARK = "<size limit exceeded>"


@dataclasses.dataclass(frozen=True)
class ResponseRecord:
    """The snapshot of one side's outcome.

    Attributes:
        ok: False when the function raised.
        status: An HTTP-style status code, or None.
        headers: Header names, lower-cased, mapped to their values.
        body: The returned value normalized to plain data (dict, list, str, int,
            float, bool, None, bytes), or None when the function raised.
        error: ``"qualified.TypeName: message"`` when the function raised, else None.
    """

    ok: bool = True
    status: int | None = None
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    body: Any = None
    error: str | None = None

    __hash__ = None  # type: ignore[assignment]


def error_text(exc: BaseException) -> str:
    """Return ``"qualified.TypeName: message"`` for an exception, whatever its ``__str__`` does."""
    try:
        message = str(exc)
    except Exception:
        message = "<str() failed>"
    return f"{qualified_name(type(exc))}: {message}"


def snapshot_exception(exc: BaseException) -> ResponseRecord:
    return ResponseRecord(ok=False, error=error_text(exc))


def snapshot(value: Any, adapter: Callable[[Any], ResponseRecord] | None = None) -> ResponseRecord:
    """Turn a returned value into a record that later mutation of ``value`` cannot change.

    Raises:
        TypeError: ``adapter`` returned something other than a ResponseRecord, or
            ``value`` is a generator or coroutine, whose items cannot be compared
            without consuming them.
        Exception: whatever ``adapter`` raises.
    """
    if inspect.isgenerator(value) or inspect.isasyncgen(value) or inspect.iscoroutine(value):
        raise TypeError(
            f"cannot compare a {type(value).__name__}: its items are produced lazily and belong to the "
            "caller; return a list, or pass adapter= to turn the value into a ResponseRecord"
        )
    if adapter is not None:
        record = adapter(value)
        if not isinstance(record, ResponseRecord):
            raise TypeError(f"adapter must return a ResponseRecord, got {type(record).__name__}")
        return _detached(record)
    if isinstance(value, ResponseRecord):
        return _detached(value)
    http = _http_record(value)
    if http is not None:
        return http
    return ResponseRecord(body=normalize(value))


def _detached(record: ResponseRecord) -> ResponseRecord:
    """Copy a record built by user code, so later mutation of its headers or body cannot change it."""
    headers = {str(name).lower(): str(header) for name, header in record.headers.items()}
    return dataclasses.replace(record, headers=headers, body=normalize(record.body))


def _http_record(value: Any) -> ResponseRecord | None:
    """Read an HTTP-style response: status, headers and a body (JSON bodies parsed)."""
    status = getattr(value, "status_code", None)
    if status is None:
        status = getattr(value, "status", None)
    if isinstance(status, bool) or not isinstance(status, int):
        return None
    raw_headers = getattr(value, "headers", None)
    if raw_headers is None or not hasattr(raw_headers, "items"):
        return None
    if hasattr(value, "content"):
        body = value.content
    elif hasattr(value, "body"):
        body = value.body
    else:
        return None
    if not isinstance(body, (bytes, bytearray, memoryview, str, type(None))):
        return None

    headers = {str(name).lower(): str(header) for name, header in raw_headers.items()}
    if isinstance(body, (bytearray, memoryview)):
        body = bytes(body)
    if "json" in headers.get("content-type", "") and body:
        try:
            body = normalize(json.loads(body))
        except ValueError:
            pass
    return ResponseRecord(status=int(status), headers=headers, body=body)


_SCALARS = (str, int, float, bool, type(None), bytes)
_SCALAR_BASES = (bool, int, float, str, bytes)


def normalize(value: Any) -> Any:
    """Return a copy of ``value`` as plain data: dict, list, str, int, float, bool, None, bytes.

    Dataclasses, named tuples, attrs and pydantic models, SQLAlchemy rows and mapped
    objects become dicts. Tuples and sequences become lists; sets become lists in a
    stable order. Enums become ``"Type.NAME"``; datetimes, Decimals and UUIDs become
    strings. Cycles, nesting deeper than 64 levels and values past 2,000,000 nodes
    are replaced by marker strings instead of being followed.
    """
    if type(value) in _SCALARS:
        return value
    return _Normalizer().run(value)


class _Normalizer:
    def __init__(self) -> None:
        self.nodes = 0
        self.active: set[int] = set()

    def run(self, value: Any, depth: int = 0) -> Any:
        cls = type(value)
        if cls in _SCALARS:
            return value
        self.nodes += 1
        if self.nodes > MAX_NODES:
            return SIZE_MARK
        if depth >= MAX_DEPTH:
            return DEPTH_MARK

        marker = id(value)
        if marker in self.active:
            return CYCLE_MARK
        self.active.add(marker)
        try:
            return self._convert(value, cls, depth + 1)
        finally:
            self.active.discard(marker)

    def _convert(self, value: Any, cls: type, depth: int) -> Any:
        if cls is dict or isinstance(value, Mapping):
            return {_normalize_key(k): self.run(v, depth) for k, v in value.items()}
        if cls is list:
            return [self.run(item, depth) for item in value]
        if isinstance(value, enum.Enum):
            return f"{cls.__name__}.{value.name}"
        if isinstance(value, tuple):
            if hasattr(cls, "_fields"):
                return {name: self.run(item, depth) for name, item in zip(cls._fields, value, strict=False)}
            return [self.run(item, depth) for item in value]
        if isinstance(value, (set, frozenset)):
            items = [self.run(item, depth) for item in value]
            return sorted(items, key=_stable_order)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {f.name: self.run(getattr(value, f.name), depth) for f in dataclasses.fields(value)}
        simple = _simple_value(value)
        if simple is not None:
            return simple
        # Library models first: a SQLAlchemy Row is also a Sequence, but its
        # column names belong in the snapshot.
        plain = _library_model(value)
        if plain is not None:
            return self.run(plain, depth - 1)
        if isinstance(value, (list, range)) or _is_sequence(value):
            return [self.run(item, depth) for item in value]
        attributes = _instance_attributes(value)
        if attributes is not None:
            return {name: self.run(item, depth) for name, item in attributes.items()}
        return _safe_repr(value)


def _simple_value(value: Any) -> Any:
    """Convert scalar-like library types; return None for anything else."""
    for base in _SCALAR_BASES:
        if isinstance(value, base):
            # A subclass of a scalar type (enums were handled before this point).
            return base(value)  # type: ignore[arg-type]
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (datetime.timedelta, decimal.Decimal, uuid.UUID)):
        return str(value)
    return None


def _is_sequence(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def _library_model(value: Any) -> Any:
    """Convert pydantic, attrs and SQLAlchemy objects when those packages are loaded.

    The packages are never imported here: a value can only be an instance of one of
    their types when the user's code has already imported the package.
    """
    pydantic = sys.modules.get("pydantic")
    if pydantic is not None and isinstance(value, pydantic.BaseModel):
        return value.model_dump()
    attr = sys.modules.get("attr")
    if attr is not None and attr.has(type(value)):
        return {a.name: getattr(value, a.name) for a in attr.fields(type(value))}
    sqlalchemy = sys.modules.get("sqlalchemy")
    if sqlalchemy is not None:
        if isinstance(value, sqlalchemy.engine.Row):
            return dict(value._mapping)
        state = sqlalchemy.inspect(value, raiseerr=False)
        mapper = getattr(state, "mapper", None)
        if mapper is not None and state is not mapper:
            return {column.key: getattr(value, column.key) for column in mapper.column_attrs}
    return None


def _instance_attributes(value: Any) -> dict[str, Any] | None:
    try:
        attributes = vars(value)
    except TypeError:
        attributes = _slot_attributes(value)
        if attributes is None:
            return None
    # A module's namespace is not data, and through ``sys`` it reaches every loaded module.
    if isinstance(value, (type, types.ModuleType)) or callable(value):
        return None
    # Private attributes count too: objects such as pycountry's records keep all their
    # data in them, and leaving them out would make two different objects match.
    return {name: item for name, item in attributes.items() if not name.startswith("__")}


def _slot_attributes(value: Any) -> dict[str, Any] | None:
    """Return the set attributes of an object that has ``__slots__`` and no ``__dict__``."""
    attributes: dict[str, Any] = {}
    found_slots = False
    for cls in type(value).__mro__:
        slots = cls.__dict__.get("__slots__", ())
        if isinstance(slots, str):
            slots = (slots,)
        for name in slots:
            found_slots = True
            if name not in ("__dict__", "__weakref__") and hasattr(value, name):
                attributes[name] = getattr(value, name)
    return attributes if found_slots else None


def _normalize_key(key: Any) -> Any:
    if type(key) in _SCALARS:
        return key
    if isinstance(key, enum.Enum):
        return f"{type(key).__name__}.{key.name}"
    simple = _simple_value(key)
    if simple is not None:
        return simple
    if isinstance(key, (tuple, frozenset)):
        return _key_text(key)
    return _safe_repr(key)


def _key_text(key: Any) -> str:
    """Return the text of a tuple or frozenset dict key, with set members in a stable order.

    ``repr`` of a frozenset follows hash order, which differs between equal sets
    and between processes.
    """
    if isinstance(key, frozenset):
        members = sorted(_key_text(member) for member in key)
        return "frozenset({" + ", ".join(members) + "})"
    if isinstance(key, tuple) and not hasattr(type(key), "_fields"):
        parts = [_key_text(part) for part in key]
        return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"
    return repr(_normalize_key(key))


def _stable_order(item: Any) -> tuple[str, str]:
    return (type(item).__name__, _safe_repr(item))


def _safe_repr(value: Any, limit: int = 200) -> str:
    try:
        text = repr(value)
    except Exception:
        return f"<{type(value).__name__} with a failing __repr__>"
    # A default repr carries a memory address, which differs between the two
    # sides' objects without saying anything about their values.
    text = _ADDRESS.sub("", text)
    if len(text) > limit:
        return text[:limit] + "…"
    return text


# Every " at 0x7f...", as in "<weakref at 0x...; to 'T' at 0x...>".
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
