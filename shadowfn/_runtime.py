"""Process-wide switches: the kill switch and the marker for candidate runs."""

from __future__ import annotations

import contextvars
import os

import structlog

__all__ = ["disable", "enable", "is_enabled", "is_shadow"]

_IN_CANDIDATE: contextvars.ContextVar[bool] = contextvars.ContextVar("shadowfn_in_candidate", default=False)


_TRUE_VALUES = ("1", "true", "yes", "on")
_FALSE_VALUES = ("", "0", "false", "no", "off")


def _enabled_at_start() -> bool:
    """Read ``SHADOWFN_DISABLED``; a value that is neither true nor false disables, with a warning.

    A kill switch fails safe: an operator who sets it to ``disabled`` or ``2``
    in an incident means off.
    """
    raw = os.environ.get("SHADOWFN_DISABLED", "")
    value = raw.strip().lower()
    if value in _FALSE_VALUES:
        return True
    if value not in _TRUE_VALUES:
        structlog.get_logger("shadowfn").warning(
            "shadow.invalid_setting",
            reason=f"SHADOWFN_DISABLED={raw!r} is not a recognized value, so shadowing is off",
            fix=f"set it to one of {', '.join(_TRUE_VALUES)} to disable, or unset it",
        )
    return False


class _Switch:
    """The global on/off flag, read on every call without a lock (a plain bool read)."""

    enabled: bool = _enabled_at_start()


SWITCH = _Switch()


def disable() -> None:
    """Turn shadowing off in this process: every decorated function calls only its primary."""
    SWITCH.enabled = False


def enable() -> None:
    """Turn shadowing back on after :func:`disable` or ``SHADOWFN_DISABLED=1``."""
    SWITCH.enabled = True


def is_enabled() -> bool:
    """Return whether shadowing is on in this process."""
    return SWITCH.enabled


def is_shadow() -> bool:
    """Return True inside a candidate run, so candidate code can skip writes and side effects."""
    return _IN_CANDIDATE.get()


def mark_candidate() -> contextvars.Token[bool]:
    """Mark the current context as a candidate run."""
    return _IN_CANDIDATE.set(True)
