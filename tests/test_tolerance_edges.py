"""Tolerance on numbers beyond the float range: a divergence, never a failed comparison."""

from __future__ import annotations

import math

import pytest

import shadowfn
from shadowfn import Tolerance, shadow

# An int that no float can represent, such as an exact factorial from a bignum API.
FACTORIAL_200 = math.factorial(200)


@pytest.mark.parametrize("candidate_value", [1.5, math.inf, 1e308])
def test_huge_int_against_float_diverges(candidate_value: float) -> None:
    @shadow(lambda: {"n": candidate_value}, tolerance=0.1, timeout=1.0)
    def compute() -> dict[str, int]:
        return {"n": FACTORIAL_200}

    assert compute() == {"n": FACTORIAL_200}
    assert shadowfn.drain(timeout=5)

    stats = compute.shadow.stats
    assert stats.compare_errors == 0
    assert stats.diverged == 1


def test_close_rejects_huge_int_without_raising() -> None:
    tolerance = Tolerance(abs=1.0, rel=0.5)

    assert not tolerance.close(FACTORIAL_200, 1.0)
    assert not tolerance.close(-math.inf, -FACTORIAL_200)
