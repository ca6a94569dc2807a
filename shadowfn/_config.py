"""Validated shadowing settings."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

from ._keys import KeySpec
from ._paths import PathSet
from ._records import ResponseRecord
from ._redact import Redactor

__all__ = ["ShadowConfig", "check_rate"]


def _show(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    if len(text) > 80:
        text = text[:80] + "…"
    return f"{text} ({type(value).__name__})"


def check_rate(rate: Any, parameter: str = "rate") -> float:
    """Return ``rate`` as a number, or raise ValueError/TypeError naming the parameter."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float)):
        raise TypeError(
            f"{parameter} must be a number in [0, 100] (percent of keys shadowed), got {_show(rate)}"
        )
    if math.isnan(rate) or not 0 <= rate <= 100:
        raise ValueError(
            f"{parameter} must be a number in [0, 100] (percent of keys shadowed), got {_show(rate)}"
        )
    return rate


@dataclasses.dataclass(frozen=True)
class ShadowConfig:
    """The settings of one shadowed function, validated when created.

    Raises:
        TypeError, ValueError: a setting is invalid; the message names the
            setting, shows the value and says what is accepted.
    """

    rate: float = 100
    timeout: float = 2.0
    key: KeySpec = None
    ignore: tuple[str, ...] = ()
    compare: Callable[[Any, Any], bool] | None = None
    adapter: Callable[[Any], ResponseRecord] | None = None
    copy_args: bool = True
    max_pending: int | None = None
    redact: tuple[str, ...] = ()
    ignore_paths: PathSet = dataclasses.field(default_factory=PathSet, init=False, repr=False, compare=False)
    redactor: Redactor = dataclasses.field(default_factory=Redactor, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_rate(self.rate)
        timeout = self.timeout
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, (int, float))
            or not timeout > 0
            or math.isinf(timeout)
        ):
            raise ValueError(f"timeout must be a finite number of seconds > 0, got {_show(timeout)}")

        key = self.key
        if isinstance(key, tuple):
            if not key or not all(isinstance(name, str) and name for name in key):
                raise TypeError(
                    f"key must be a parameter name, a tuple of names or a callable, got {_show(key)}"
                )
        elif key is not None and not isinstance(key, str) and not callable(key):
            raise TypeError(f"key must be a parameter name, a tuple of names or a callable, got {_show(key)}")

        ignore = _patterns("ignore", self.ignore, "'body.meta.id'")
        object.__setattr__(self, "ignore", ignore)
        object.__setattr__(self, "ignore_paths", PathSet(ignore))
        redact = _patterns("redact", self.redact, "'body.user.email' or 'headers.x-api-key'")
        object.__setattr__(self, "redact", redact)
        object.__setattr__(self, "redactor", Redactor(redact))

        for name in ("compare", "adapter"):
            hook = getattr(self, name)
            if hook is not None and not callable(hook):
                raise TypeError(f"{name} must be a callable or None, got {_show(hook)}")
        if not isinstance(self.copy_args, bool):
            raise TypeError(f"copy_args must be True or False, got {_show(self.copy_args)}")
        max_pending = self.max_pending
        if max_pending is not None and (
            isinstance(max_pending, bool) or not isinstance(max_pending, int) or max_pending < 1
        ):
            raise ValueError(f"max_pending must be a positive int or None, got {_show(max_pending)}")


def _patterns(parameter: str, value: Any, example: str) -> tuple[str, ...]:
    """Return ``value`` as a tuple of valid path patterns, or raise naming ``parameter``."""
    if isinstance(value, str):
        value = (value,)
    if not isinstance(value, (tuple, list, frozenset, set)):
        raise TypeError(f"{parameter} must be a tuple of path patterns such as {example}, got {_show(value)}")
    try:
        PathSet(value)
    except ValueError as exc:
        raise ValueError(f"{parameter} has an invalid path: {exc}") from None
    return tuple(value)
