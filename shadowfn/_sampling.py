"""Sticky sampling: the decision whether one key is shadowed at one rate."""

from __future__ import annotations

import hashlib
import math
import struct

__all__ = ["bucket_of", "should_shadow", "split_rate"]

_FRACTION_SCALE = 2**32

# Both 4-byte words of the digest as big-endian unsigned ints, in one C call.
_read_words = struct.Struct(">II").unpack_from


def split_rate(rate: float) -> tuple[int, float]:
    """Split a rate in percent into its whole bucket count and its fraction."""
    whole = math.floor(rate)
    return whole, rate - whole


def bucket_of(key: bytes) -> int:
    """Return the bucket (0 to 99) of ``key``: the first 4 SHA-256 bytes, big-endian, mod 100."""
    digest = hashlib.sha256(key).digest()
    return int.from_bytes(digest[:4], "big") % 100


def decide(key: bytes, whole: int, fraction: float) -> bool:
    """Decide for a rate already split by :func:`split_rate`, with 0 < rate < 100."""
    first: int
    second: int
    first, second = _read_words(hashlib.sha256(key).digest())
    bucket = first % 100
    if bucket < whole:
        return True
    if bucket > whole or fraction == 0.0:
        return False

    # The boundary bucket is split by the next 4 digest bytes, so a key admitted at
    # rate r stays admitted at every higher rate.
    return second / _FRACTION_SCALE < fraction


def should_shadow(key: bytes, rate: float) -> bool:
    """Return whether ``key`` is shadowed at ``rate`` percent.

    The decision depends only on the key bytes and the rate, so it is the same in
    every process and on every machine. For whole-number rates it matches the Rust
    crate request-shadow: SHA-256 of the key, the first 4 bytes read as a big-endian
    unsigned integer, mod 100, shadowed when below the rate. Rates 0 and 100 decide
    without hashing. Raising the rate only adds keys.

    Raises:
        TypeError: ``key`` is not bytes-like.
        ValueError: ``rate`` is not a real number in [0, 100].
    """
    if not isinstance(key, (bytes, bytearray, memoryview)):
        raise TypeError(f"key must be bytes, got {type(key).__name__}: {key!r:.80}")
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 100:
        raise ValueError(f"rate must be a number in [0, 100], got {rate!r}")
    if rate <= 0:
        return False
    if rate >= 100:
        return True

    whole, fraction = split_rate(rate)
    return decide(bytes(key), whole, fraction)
