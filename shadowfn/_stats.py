"""Per-function outcome counters."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, fields

from . import _metrics
from ._readiness import KeySketch

__all__ = ["Counters", "FunctionStats", "registry"]


@dataclass(frozen=True)
class FunctionStats:
    """A snapshot of one function's counters.

    ``calls`` counts calls made while shadowing was on for the function (not
    disabled, rate above 0). ``sampled`` counts calls that reached the sampling
    step and were not declined: calls selected for shadowing plus calls whose key
    could not be built. Every sampled call ends in one outcome, so once shadow
    work has drained, ``sampled`` equals the sum of the outcome counters
    (``matched`` through ``internal_errors``); ``pending`` counts calls still
    waiting for their outcome.
    """

    calls: int = 0
    sampled: int = 0
    matched: int = 0
    diverged: int = 0
    timeouts: int = 0
    shed: int = 0
    unkeyable: int = 0
    uncopyable: int = 0
    cancelled: int = 0
    compare_errors: int = 0
    internal_errors: int = 0
    pending: int = 0

    @property
    def outcomes(self) -> int:
        """The number of sampled calls that have reached an outcome."""
        return (
            self.matched
            + self.diverged
            + self.timeouts
            + self.shed
            + self.unkeyable
            + self.uncopyable
            + self.cancelled
            + self.compare_errors
            + self.internal_errors
        )

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


OUTCOMES = (
    "matched",
    "diverged",
    "timeouts",
    "shed",
    "unkeyable",
    "uncopyable",
    "cancelled",
    "compare_errors",
    "internal_errors",
)


class Counters:
    """Live counters of one function name; increments are thread-safe."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._values = {f.name: 0 for f in fields(FunctionStats)}
        # Distinct keys of compared calls, counted when a call settles.
        self.keys = KeySketch()
        self._unsampled = 0
        # Incremented by reset(), so a call counted before a reset is not settled after it.
        self.generation = 0

    def count_call(self, sampled: bool = False, outcome: str | None = None) -> int:
        """Count one call; a sampled call is either settled now or left pending.

        Returns the generation to pass to :meth:`settle`.
        """
        with self._lock:
            generation = self.generation
            values = self._values
            values["calls"] += 1
            if sampled:
                values["sampled"] += 1
                if outcome is None:
                    values["pending"] += 1
                else:
                    values[outcome] += 1
        if outcome is not None:
            # Settled before a candidate started (shed, unkeyable, ...): no durations.
            _metrics.record(self.name, outcome)

        return generation

    def count_unsampled(self) -> None:
        """Count one call that sampling declined. Most calls end here, so it updates a single integer."""
        with self._lock:
            self._unsampled += 1

    def settle(self, outcome: str, generation: int | None = None) -> bool:
        """Move one pending call to ``outcome``.

        Returns False, counting nothing, when ``generation`` (from
        :meth:`count_call`) is given and a reset came in between.
        """
        with self._lock:
            if generation is not None and generation != self.generation:
                return False
            self._values["pending"] -= 1
            self._values[outcome] += 1
            return True

    def snapshot(self) -> FunctionStats:
        with self._lock:
            values = dict(self._values)
            values["calls"] += self._unsampled
        return FunctionStats(**values)

    def reset(self) -> None:
        with self._lock:
            for counter in self._values:
                self._values[counter] = 0
            self._unsampled = 0
            self.generation += 1
        self.keys.reset()


class _Registry:
    """Counters by function name; functions that share a name share counters."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, Counters] = {}

    def counters(self, name: str) -> Counters:
        with self._lock:
            found = self._counters.get(name)
            if found is None:
                found = self._counters[name] = Counters(name)
            return found

    def snapshot(self) -> dict[str, FunctionStats]:
        with self._lock:
            counters = list(self._counters.values())
        return {c.name: c.snapshot() for c in counters}

    def reset(self) -> None:
        with self._lock:
            counters = list(self._counters.values())
        for c in counters:
            c.reset()


registry = _Registry()


def _after_fork_in_child() -> None:
    # A forked child gets fresh locks, because another thread of the parent may
    # have held one at the moment of the fork, and counters from zero: calls that
    # were pending in the parent settle there, never here.
    registry._lock = threading.Lock()
    for counters in registry._counters.values():
        counters._lock = threading.Lock()
        counters.keys._lock = threading.Lock()
        counters.reset()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
