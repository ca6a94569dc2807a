"""Promotion readiness: distinct keys, the divergence rate and its confidence interval.

Shared by ``wrapped.shadow.report()`` (live counters) and the ``shadowfn report``
command (counts read back from logs).
"""

from __future__ import annotations

import hashlib
import math
import threading
from dataclasses import dataclass
from typing import Any

__all__ = ["KeySketch", "ReadinessReport", "check_thresholds", "key_hash", "wilson_interval"]

# z for a two-sided 95% interval.
Z_95 = 1.959963984540054

DEFAULT_MAX_DIVERGENCE_RATE = 0.001
DEFAULT_MIN_SAMPLES = 10_000

_PRECISION = 12
_REGISTERS = 1 << _PRECISION
_HASH_BITS = 64
_RANK_BITS = _HASH_BITS - _PRECISION
_ALPHA = 0.7213 / (1 + 1.079 / _REGISTERS)
EXACT_LIMIT = 256
STANDARD_ERROR = 1.04 / math.sqrt(_REGISTERS)


def key_hash(key: bytes) -> int:
    """Return the 64-bit hash of a sticky key: the first 8 bytes of its SHA-256, big-endian.

    Its hex form is the ``key`` field of shadowfn's log events, so the report
    command counts the same hashes from logs.
    """
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big")


class KeySketch:
    """A bounded count of distinct 64-bit key hashes; thread-safe.

    Counts exactly up to 256 distinct hashes. Beyond that it is a HyperLogLog
    sketch with 4096 one-byte registers (4 KiB), whose estimate has a standard
    error of about 1.6% (1.04 / sqrt(4096)).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._registers = bytearray(_REGISTERS)
        self._exact: set[int] | None = set()

    def add(self, hashed: int) -> None:
        """Count one key hash, an int in [0, 2**64)."""
        index = hashed >> _RANK_BITS
        rank = _RANK_BITS - (hashed & ((1 << _RANK_BITS) - 1)).bit_length() + 1
        with self._lock:
            if rank > self._registers[index]:
                self._registers[index] = rank
            exact = self._exact
            if exact is not None:
                exact.add(hashed)
                if len(exact) > EXACT_LIMIT:
                    self._exact = None

    def merge(self, other: KeySketch) -> None:
        """Add every hash counted by ``other`` (for logs read from several hosts)."""
        with other._lock:
            registers = bytes(other._registers)
            exact = None if other._exact is None else set(other._exact)
        with self._lock:
            self._registers = bytearray(map(max, self._registers, registers))
            if self._exact is not None and exact is not None:
                self._exact |= exact
                if len(self._exact) > EXACT_LIMIT:
                    self._exact = None
            else:
                self._exact = None

    @property
    def exact(self) -> bool:
        """Whether ``estimate()`` is an exact count."""
        return self._exact is not None

    def estimate(self) -> int:
        """Return the number of distinct hashes counted, exact up to 256 and estimated beyond."""
        with self._lock:
            if self._exact is not None:
                return len(self._exact)
            registers = bytes(self._registers)
        total = sum(2.0**-rank for rank in registers)
        estimate = _ALPHA * _REGISTERS * _REGISTERS / total
        zeros = registers.count(0)
        if estimate <= 2.5 * _REGISTERS and zeros:
            # Linear counting is more accurate while many registers are still empty.
            estimate = _REGISTERS * math.log(_REGISTERS / zeros)
        return round(estimate)

    def reset(self) -> None:
        with self._lock:
            self._registers = bytearray(_REGISTERS)
            self._exact = set()


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """Return the Wilson score interval for a proportion; ``(0.0, 1.0)`` when ``trials`` is 0."""
    if trials <= 0:
        return (0.0, 1.0)
    p = successes / trials
    z2 = z * z
    denominator = 1 + z2 / trials
    center = (p + z2 / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / denominator
    return (max(0.0, center - half), min(1.0, center + half))


def check_thresholds(max_divergence_rate: Any, min_samples: Any) -> tuple[float, int]:
    """Validate readiness thresholds and return them.

    Raises:
        ValueError: ``max_divergence_rate`` is not a number in [0, 1], or
            ``min_samples`` is not an int of at least 0.
    """
    if (
        isinstance(max_divergence_rate, bool)
        or not isinstance(max_divergence_rate, (int, float))
        or not 0 <= max_divergence_rate <= 1
    ):
        raise ValueError(
            f"max_divergence_rate must be a number in [0, 1] (a fraction, 0.001 = 0.1%), "
            f"got {max_divergence_rate!r}"
        )
    if isinstance(min_samples, bool) or not isinstance(min_samples, int) or min_samples < 0:
        raise ValueError(f"min_samples must be an int >= 0, got {min_samples!r}")
    return float(max_divergence_rate), min_samples


@dataclass(frozen=True)
class ReadinessReport:
    """Whether a candidate agrees with the primary often enough to replace it.

    Attributes:
        function: The shadowed function's name.
        compared: Calls whose two outcomes were compared (matches plus divergences).
        diverged: Compared calls that diverged.
        distinct_keys: Distinct sticky keys among the compared calls: exact up to
            256, beyond that a HyperLogLog estimate with about 1.6% standard error.
        distinct_keys_exact: Whether ``distinct_keys`` is exact.
        timeouts: Candidate runs that timed out, so were not compared.
        errors: Calls whose comparison or shadowing failed (compare and internal errors).
        divergence_rate: ``diverged / compared``, or None before any comparison.
        interval: The 95% Wilson score interval of the divergence rate.
    """

    function: str
    compared: int
    diverged: int
    distinct_keys: int
    distinct_keys_exact: bool
    timeouts: int
    errors: int
    divergence_rate: float | None
    interval: tuple[float, float]

    @classmethod
    def build(
        cls,
        function: str,
        *,
        matched: int,
        diverged: int,
        keys: KeySketch,
        timeouts: int = 0,
        errors: int = 0,
    ) -> ReadinessReport:
        """Build a report from outcome counts and the sketch of compared keys."""
        compared = matched + diverged
        return cls(
            function=function,
            compared=compared,
            diverged=diverged,
            distinct_keys=keys.estimate(),
            distinct_keys_exact=keys.exact,
            timeouts=timeouts,
            errors=errors,
            divergence_rate=diverged / compared if compared else None,
            interval=wilson_interval(diverged, compared),
        )

    def ready(
        self,
        max_divergence_rate: float = DEFAULT_MAX_DIVERGENCE_RATE,
        min_samples: int = DEFAULT_MIN_SAMPLES,
    ) -> bool:
        """Return whether the candidate meets the thresholds.

        Ready means at least ``min_samples`` compared calls and an upper 95%
        confidence bound of the divergence rate at or below ``max_divergence_rate``
        (a fraction: 0.001 is 0.1%).

        Raises:
            ValueError: a threshold is out of range; the message names it.
        """
        return not self.unmet(max_divergence_rate, min_samples)

    def unmet(
        self,
        max_divergence_rate: float = DEFAULT_MAX_DIVERGENCE_RATE,
        min_samples: int = DEFAULT_MIN_SAMPLES,
    ) -> list[str]:
        """Return why the candidate is not ready, one sentence per unmet threshold; empty when ready."""
        max_rate, samples = check_thresholds(max_divergence_rate, min_samples)
        reasons: list[str] = []
        if self.compared < samples:
            reasons.append(f"{self.compared} compared calls, fewer than the {samples} required")
        if self.interval[1] > max_rate:
            reasons.append(
                f"the upper 95% bound of the divergence rate, {self.interval[1]:.4%}, "
                f"is above the maximum {max_rate:.4%}"
            )
        return reasons

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON-safe data."""
        return {
            "function": self.function,
            "compared": self.compared,
            "diverged": self.diverged,
            "distinct_keys": self.distinct_keys,
            "distinct_keys_exact": self.distinct_keys_exact,
            "timeouts": self.timeouts,
            "errors": self.errors,
            "divergence_rate": self.divergence_rate,
            "interval": list(self.interval),
        }

    def __str__(self) -> str:
        rate = "n/a" if self.divergence_rate is None else f"{self.divergence_rate:.4%}"
        approx = "" if self.distinct_keys_exact else "~"
        return (
            f"{self.function}: {self.diverged}/{self.compared} diverged ({rate}, 95% CI "
            f"{self.interval[0]:.4%} to {self.interval[1]:.4%}), {approx}{self.distinct_keys} distinct keys"
        )
