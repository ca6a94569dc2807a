"""Process-wide switches: the kill switch and the marker for candidate runs."""

from __future__ import annotations

import contextvars
import os

__all__ = ["disable", "enable", "is_enabled", "is_shadow"]

_IN_CANDIDATE: contextvars.ContextVar[bool] = contextvars.ContextVar("shadowfn_in_candidate", default=False)


class _Switch:
    """The global on/off flag, read on every call without a lock (a plain bool read)."""

    enabled: bool = os.environ.get("SHADOWFN_DISABLED", "").strip().lower() not in (
        "1",
        "true",
        "yes",
        "on",
    )


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
