"""Validated shadowing settings."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

from ._keys import KeySpec
from ._paths import ANY, DEEP, PathSet
from ._records import ResponseRecord
from ._redact import Redactor
from ._sampling import should_shadow
from ._tolerance import Tolerance, parse_tolerance

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

    A config is immutable: the ``with_*`` builders return a new, validated
    config and leave this one as it is, so one config can be shared between
    threads and shadowed functions.

    Raises:
        TypeError, ValueError: a setting is invalid; the message names the
            setting, shows the value and states what is accepted.
    """

    rate: float = 100
    timeout: float = 2.0
    key: KeySpec = None
    ignore: tuple[str, ...] = ()
    compare: Callable[[Any, Any], bool] | None = None
    adapter: Callable[[Any], ResponseRecord] | None = None
    copy_args: bool = True
    max_pending: int | None = None
    tolerance: Tolerance | None = None
    unordered: tuple[str, ...] = ()
    noise_rate: float = 0
    pure: bool = False
    redact: tuple[str, ...] = ()
    ignore_paths: PathSet = dataclasses.field(default_factory=PathSet, init=False, repr=False, compare=False)
    unordered_paths: PathSet = dataclasses.field(
        default_factory=PathSet, init=False, repr=False, compare=False
    )
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

        ignore: Any = self.ignore
        if isinstance(ignore, str):
            ignore = (ignore,)
        if not isinstance(ignore, (tuple, list, frozenset, set)):
            raise TypeError(
                f"ignore must be a tuple of path patterns such as 'body.meta.id', got {_show(ignore)}"
            )
        try:
            paths = PathSet(ignore)
        except ValueError as exc:
            raise ValueError(f"ignore has an invalid path: {exc}") from None
        check_roots("ignore", paths)
        object.__setattr__(self, "ignore", tuple(ignore))
        object.__setattr__(self, "ignore_paths", paths)
        object.__setattr__(self, "tolerance", parse_tolerance(self.tolerance))
        self._check_unordered()
        self._check_noise()
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

    def should_shadow(self, key: bytes) -> bool:
        """Return whether ``key`` is shadowed at this config's rate, as :func:`shadowfn.should_shadow` decides.

        Raises:
            TypeError: ``key`` is not bytes-like.
        """
        return should_shadow(key, self.rate)

    # Builders: each returns a new config, validated like the constructor.

    def with_rate(self, rate: float) -> ShadowConfig:
        """Return a copy with ``rate`` percent of keys shadowed."""
        return dataclasses.replace(self, rate=rate)

    def with_timeout(self, timeout: float) -> ShadowConfig:
        """Return a copy whose candidate may run ``timeout`` seconds."""
        return dataclasses.replace(self, timeout=timeout)

    def with_key(self, key: KeySpec) -> ShadowConfig:
        """Return a copy whose sticky key is built from ``key``."""
        return dataclasses.replace(self, key=key)

    def with_ignore(self, ignore: tuple[str, ...] | list[str] | str) -> ShadowConfig:
        """Return a copy that ignores exactly the paths in ``ignore`` (replacing, not adding to, the old ones)."""
        return dataclasses.replace(self, ignore=ignore)  # type: ignore[arg-type]

    def with_compare(self, compare: Callable[[Any, Any], bool] | None) -> ShadowConfig:
        """Return a copy that compares values with ``compare``."""
        return dataclasses.replace(self, compare=compare)

    def with_adapter(self, adapter: Callable[[Any], ResponseRecord] | None) -> ShadowConfig:
        """Return a copy that turns return values into records with ``adapter``."""
        return dataclasses.replace(self, adapter=adapter)

    def with_copy_args(self, copy_args: bool) -> ShadowConfig:
        """Return a copy that does (True) or does not (False) deep-copy the candidate's arguments."""
        return dataclasses.replace(self, copy_args=copy_args)

    def with_max_pending(self, max_pending: int | None) -> ShadowConfig:
        """Return a copy with at most ``max_pending`` candidates pending at once."""
        return dataclasses.replace(self, max_pending=max_pending)

    def with_redact(self, redact: tuple[str, ...] | list[str] | str) -> ShadowConfig:
        """Return a copy that redacts exactly the paths in ``redact`` (replacing the old ones)."""
        return dataclasses.replace(self, redact=redact)  # type: ignore[arg-type]

    def _check_unordered(self) -> None:
        unordered: Any = self.unordered
        if isinstance(unordered, str):
            unordered = (unordered,)
        if not isinstance(unordered, (tuple, list, frozenset, set)):
            raise TypeError(
                "unordered must be a tuple of path patterns of lists, such as 'body.items' "
                f"or 'body.**.tags', got {_show(unordered)}"
            )
        try:
            paths = PathSet(unordered)
        except ValueError as exc:
            raise ValueError(f"unordered has an invalid path: {exc}") from None
        check_roots("unordered", paths)
        object.__setattr__(self, "unordered", tuple(unordered))
        object.__setattr__(self, "unordered_paths", paths)

    def _check_noise(self) -> None:
        if not isinstance(self.pure, bool):
            raise TypeError(f"pure must be True or False, got {_show(self.pure)}")
        noise_rate = self.noise_rate
        if isinstance(noise_rate, bool) or not isinstance(noise_rate, (int, float)):
            raise TypeError(
                f"noise_rate must be a number in [0, 100] (percent of sampled calls), got {_show(noise_rate)}"
            )
        if math.isnan(noise_rate) or not 0 <= noise_rate <= 100:
            raise ValueError(
                f"noise_rate must be a number in [0, 100] (percent of sampled calls), got {_show(noise_rate)}"
            )
        if noise_rate > 0 and not self.pure:
            raise ValueError(
                f"noise_rate={noise_rate!r} requires pure=True: noise runs call the decorated function "
                "a second time, which is only safe for a function without side effects. "
                "Pass pure=True if it has none, or leave noise_rate at 0"
            )


def _patterns(parameter: str, value: Any, example: str) -> tuple[str, ...]:
    """Return ``value`` as a tuple of valid path patterns, or raise naming ``parameter``."""
    if isinstance(value, str):
        value = (value,)
    if not isinstance(value, (tuple, list, frozenset, set)):
        raise TypeError(f"{parameter} must be a tuple of path patterns such as {example}, got {_show(value)}")
    try:
        paths = PathSet(value)
    except ValueError as exc:
        raise ValueError(f"{parameter} has an invalid path: {exc}") from None
    check_roots(parameter, paths)
    return tuple(value)


RECORD_PARTS = ("ok", "status", "headers", "body", "error")


def check_roots(parameter: str, paths: PathSet) -> None:
    """Raise ValueError when a pattern cannot match any path, because paths start at a record part."""
    for pattern in paths.patterns:
        first = pattern.elements[0]
        if first in (ANY, DEEP) or first in RECORD_PARTS:
            continue
        raise ValueError(
            f"{parameter} has the path {pattern.text!r}, which matches nothing: paths start with "
            f"one of {', '.join(RECORD_PARTS)}, * or **, as divergences print them; "
            f"for a field of the returned value write 'body.{pattern.text}'"
        )
