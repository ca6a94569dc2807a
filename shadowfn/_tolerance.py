"""Float tolerance: when two numbers that differ still count as the same value."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = ["Tolerance", "parse_tolerance"]

ACCEPTED = (
    "a number >= 0 (an absolute tolerance), a dict with the keys 'abs' and/or 'rel', "
    "a shadowfn.Tolerance, or None"
)


@dataclass(frozen=True)
class Tolerance:
    """How far apart two floats may be and still match.

    Two numbers ``a`` and ``b``, at least one of them a float, match when
    ``abs(a - b) <= max(rel * max(abs(a), abs(b)), abs)``, the rule of
    ``math.isclose``. Both bounds default to 0, so ``Tolerance()`` only
    matches equal numbers. Ints compared with ints and bools are always exact.

    Raises:
        ValueError: a bound is not a finite number >= 0.
    """

    abs: float = 0.0
    rel: float = 0.0

    def __post_init__(self) -> None:
        for name in ("abs", "rel"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
                raise ValueError(
                    f"tolerance {name!r} must be a finite number >= 0, got {value!r} ({type(value).__name__})"
                )

    def close(self, primary: Any, candidate: Any) -> bool:
        """Return whether two leaves are numbers, at least one a float, within this tolerance."""
        if not (_is_number(primary) and _is_number(candidate)):
            return False
        if not (isinstance(primary, float) or isinstance(candidate, float)):
            return False
        try:
            return math.isclose(primary, candidate, rel_tol=self.rel, abs_tol=self.abs)
        except OverflowError:
            # math.isclose cannot convert an int beyond the float range; count it as not close.
            return False


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def parse_tolerance(value: Any) -> Tolerance | None:
    """Turn the ``tolerance=`` setting into a Tolerance, or None when it is off.

    Raises:
        TypeError, ValueError: ``value`` is not accepted; the message shows it and lists what is.
    """
    if value is None or isinstance(value, Tolerance):
        return value
    shown = f"{value!r} ({type(value).__name__})"
    if isinstance(value, dict):
        unknown = sorted(str(key) for key in value if key not in ("abs", "rel"))
        if unknown or not value:
            raise ValueError(f"tolerance must be {ACCEPTED}, got {shown}")
        try:
            return Tolerance(**value)
        except ValueError as exc:
            raise ValueError(f"{exc}; tolerance must be {ACCEPTED}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"tolerance must be {ACCEPTED}, got {shown}")
    if not 0 <= value < math.inf:
        raise ValueError(f"tolerance must be {ACCEPTED}, got {shown}")
    return Tolerance(abs=value)
