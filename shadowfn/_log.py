"""The bounded, in-memory divergence log that ``shadowfn.log`` exposes."""

from __future__ import annotations

import collections
import datetime
import os
import threading
import weakref
from dataclasses import dataclass
from typing import Any

from ._divergence import Divergence
from ._records import ResponseRecord

__all__ = ["DivergenceEntry", "DivergenceLog"]

DEFAULT_CAPACITY = 1000


@dataclass(frozen=True, repr=False)
class DivergenceEntry:
    """One logged divergence.

    Attributes:
        function: The decorated function's name (``module.qualname`` by default).
        key: A short hex digest of the sticky key, never the raw arguments.
        at: When the comparison finished, in UTC.
        divergence: The structured difference.
        primary: The primary's record, its body cut to a bounded preview.
        candidate: The candidate's record, cut the same way.
        primary_ms: The primary's run time in milliseconds.
        candidate_ms: The candidate's run time in milliseconds.
        noisy_paths: The divergence's paths that were judged noise when it was
            logged (see ``noise_rate=``); empty without noise runs.
    """

    function: str
    key: str
    at: datetime.datetime
    divergence: Divergence
    primary: ResponseRecord
    candidate: ResponseRecord
    primary_ms: float
    candidate_ms: float
    noisy_paths: tuple[str, ...] = ()

    @property
    def noise_only(self) -> bool:
        """Whether every diverging path of this entry was judged noise."""
        paths = self.divergence.paths()
        return bool(paths) and all(path in self.noisy_paths for path in paths)

    def __repr__(self) -> str:
        clock = self.at.strftime("%H:%M:%S")
        return (
            f"<DivergenceEntry {clock} {self.function} key={self.key} "
            f"{self.divergence.summary()} "
            f"({self.primary_ms:.2f} ms vs {self.candidate_ms:.2f} ms)"
            f"{_noise_note(self.noisy_paths)}>"
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the entry as JSON-safe data."""
        return {
            "function": self.function,
            "key": self.key,
            "at": self.at.isoformat(),
            "divergence": self.divergence.to_dict(),
            "primary_ms": self.primary_ms,
            "candidate_ms": self.candidate_ms,
            "noisy_paths": list(self.noisy_paths),
        }


def _noise_note(noisy_paths: tuple[str, ...]) -> str:
    if not noisy_paths:
        return ""
    return " noisy: " + ", ".join(noisy_paths)


class DivergenceLog:
    """A thread-safe ring buffer of the most recent divergences.

    Holds at most ``capacity`` entries (1000 by default); the oldest entry is
    dropped when a new one arrives at capacity. Each entry's records are
    previews, so memory stays bounded whatever the functions return.
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._lock = threading.Lock()
        self._entries: collections.deque[DivergenceEntry] = collections.deque(maxlen=_checked(capacity))
        _LOGS.add(self)

    @property
    def capacity(self) -> int:
        """The maximum number of entries kept; setting it keeps the newest entries."""
        maxlen = self._entries.maxlen
        assert maxlen is not None
        return maxlen

    @capacity.setter
    def capacity(self, value: int) -> None:
        with self._lock:
            self._entries = collections.deque(self._entries, maxlen=_checked(value))

    def append(self, entry: DivergenceEntry) -> None:
        with self._lock:
            self._entries.append(entry)

    def recent(self, n: int = 10, function: str | None = None) -> list[DivergenceEntry]:
        """Return up to ``n`` entries, newest first, optionally only those of ``function``.

        ``function`` matches the full name or its last dotted part, so both
        ``"codec.encode"`` and ``"encode"`` find ``codec.encode``.

        Raises:
            ValueError: ``n`` is not an int >= 0.
            TypeError: ``function`` is not a string or None.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            given: object = n
            hint = f"; to filter by function, write recent(function={n!r})" if isinstance(given, str) else ""
            raise ValueError(f"n must be an int >= 0 (the number of entries), got {n!r}{hint}")
        if function is not None and not isinstance(function, str):
            raise TypeError(f"function must be a function name (str) or None, got {function!r}")
        with self._lock:
            entries = list(self._entries)
        found: list[DivergenceEntry] = []
        for entry in reversed(entries):
            if len(found) >= n:
                break
            if function is None or entry.function == function or entry.function.endswith("." + function):
                found.append(entry)
        return found

    def clear(self) -> None:
        """Remove every entry."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"<DivergenceLog {len(self)} of {self.capacity} entries>"


_LOGS: weakref.WeakSet[DivergenceLog] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # Another thread of the parent may have held the lock at the moment of the fork.
    for log in list(_LOGS):
        log._lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _checked(capacity: int) -> int:
    if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
        raise ValueError(f"capacity must be a positive int, got {capacity!r}")
    return capacity
