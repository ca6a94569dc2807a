"""Shadower settings that the decorator honours: noise runs of a pure primary."""

from __future__ import annotations

from typing import Any

import pycountry
import pytest

import shadowfn
from shadowfn import ShadowConfig, Shadower

CODES = ["DE", "FR", "JP", "BR", "KE"]


def lookup_v2(alpha_2: str) -> dict[str, Any]:
    country = pycountry.countries.get(alpha_2=alpha_2)
    return {"name": country.name, "alpha_3": country.alpha_3}


def test_shadower_runs_noise_for_pure_primary() -> None:
    primary_runs: list[str] = []

    def lookup(alpha_2: str) -> dict[str, Any]:
        primary_runs.append(alpha_2)
        country = pycountry.countries.get(alpha_2=alpha_2)
        return {"name": country.name, "alpha_3": country.alpha_3}

    config = ShadowConfig(timeout=1.0, noise_rate=100, pure=True)
    shadower = Shadower(lookup, lookup_v2, config, name="shadower.noise")

    outcomes = [shadower.call(code) for code in CODES]
    assert shadowfn.drain(timeout=5)

    assert [outcome.outcome for outcome in outcomes] == ["matched"] * len(CODES)
    # Each call runs the primary once for the caller and once more as its noise run.
    assert sorted(primary_runs) == sorted(CODES * 2)


@pytest.mark.asyncio
async def test_async_shadower_runs_noise_for_pure_primary() -> None:
    primary_runs: list[str] = []

    async def lookup(alpha_2: str) -> dict[str, Any]:
        primary_runs.append(alpha_2)
        country = pycountry.countries.get(alpha_2=alpha_2)
        return {"name": country.name, "alpha_3": country.alpha_3}

    async def lookup_v2_async(alpha_2: str) -> dict[str, Any]:
        return lookup_v2(alpha_2)

    config = ShadowConfig(timeout=1.0, noise_rate=100, pure=True)
    shadower = Shadower(lookup, lookup_v2_async, config, name="shadower.async_noise")

    outcomes = [await shadower.acall(code) for code in CODES]
    assert await shadowfn.adrain(timeout=5)

    assert [outcome.outcome for outcome in outcomes] == ["matched"] * len(CODES)
    assert sorted(primary_runs) == sorted(CODES * 2)
