"""Very long timeouts: accepted by the settings, they must not break waits elsewhere in shadowfn."""

from __future__ import annotations

import threading

from _support import country_name, poll

import shadowfn
from shadowfn import ShadowConfig, Shadower, shadow

# Accepted by timeout= (a finite number > 0), and longer than threading.TIMEOUT_MAX.
CENTURIES = 1e12


def test_long_timeout_keeps_other_timeouts_working() -> None:
    release = threading.Event()

    def hangs(alpha_2: str) -> str:
        release.wait(10)
        return country_name(alpha_2)

    @shadow(hangs, timeout=CENTURIES)
    def patient(alpha_2: str) -> str:
        return country_name(alpha_2)

    @shadow(hangs, timeout=0.2)
    def impatient(alpha_2: str) -> str:
        return country_name(alpha_2)

    try:
        assert patient("SE") == "Sweden"
        assert impatient("FI") == "Finland"
        impatient_timed_out = poll(lambda: impatient.shadow.stats.timeouts == 1, 5)
    finally:
        release.set()

    assert impatient_timed_out
    assert shadowfn.drain(timeout=5)
    assert patient.shadow.stats.matched == 1


def test_long_timeout_in_strict_mode_returns_result() -> None:
    @shadow(country_name, timeout=CENTURIES)
    def lookup(alpha_2: str) -> str:
        return country_name(alpha_2)

    with shadowfn.strict(grace=CENTURIES):
        result = lookup("NO")

    assert result == "Norway"
    assert lookup.shadow.stats.matched == 1


def test_long_timeout_shadower_call_returns_outcome() -> None:
    shadower = Shadower(country_name, country_name, ShadowConfig(timeout=CENTURIES))

    outcome = shadower.call("DK")

    assert outcome.value() == "Denmark"
    assert outcome.outcome == "matched"


def test_drain_with_long_timeout_waits_for_work() -> None:
    release = threading.Event()

    def waits(alpha_2: str) -> str:
        release.wait(10)
        return country_name(alpha_2)

    @shadow(waits, timeout=10)
    def lookup(alpha_2: str) -> str:
        return country_name(alpha_2)

    assert lookup("IS") == "Iceland"
    releaser = threading.Timer(0.1, release.set)
    releaser.start()
    try:
        drained = shadowfn.drain(timeout=CENTURIES)
    finally:
        release.set()
        releaser.cancel()

    assert drained
    assert lookup.shadow.stats.matched == 1
