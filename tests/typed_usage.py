"""Typed usage of the public API; ``mypy --strict`` must accept this file."""

from __future__ import annotations

import shadowfn
from shadowfn import (
    Divergence,
    DivergenceEntry,
    FunctionStats,
    ReplaySummary,
    ResponseRecord,
    ShadowConfig,
    Shadower,
    ShadowOutcome,
    shadow,
)


def encode_v2(record: dict[str, str]) -> str:
    return ",".join(sorted(record))


@shadow(encode_v2, rate=10, timeout=0.05, ignore=("body.meta",))
def encode(record: dict[str, str]) -> str:
    return ",".join(sorted(record))


@shadow(encode_v2, redact=("body.user.email", "headers.x-api-key"))
def encode_private(record: dict[str, str]) -> str:
    return ",".join(sorted(record))


def typed_usage() -> None:
    text: str = encode({"a": "1"})
    assert text
    private: str = encode_private({"a": "1"})
    assert private
    config = shadowfn.ShadowConfig(redact=("body.token",))
    assert config.redact == ("body.token",)
    entries: list[DivergenceEntry] = shadowfn.log.recent(n=5, function="encode")
    for entry in entries:
        divergence: Divergence = entry.divergence
        line: str = divergence.summary()
        assert line
    everything: dict[str, FunctionStats] = shadowfn.stats()
    assert isinstance(everything, dict)
    record = ResponseRecord(ok=True, status=200, headers={"etag": "x"}, body={"a": 1})
    assert record.ok
    drained: bool = shadowfn.drain(timeout=1.0)
    assert drained in (True, False)
    decided: bool = shadowfn.should_shadow(b"req-30", 10)
    assert decided


def typed_explicit_usage() -> None:
    config = ShadowConfig(rate=10).with_timeout(0.5).with_ignore(("body.meta",))
    sampled: bool = config.should_shadow(b"req-30")
    assert sampled
    shadower = Shadower(encode.__wrapped__, encode_v2, config)  # type: ignore[attr-defined]
    outcome: ShadowOutcome[str] = Shadower(encode_v2, encode_v2, config).call({"a": "1"})
    text: str = outcome.value()
    assert text
    summary: ReplaySummary = shadowfn.replay(shadower, [({"a": "1"},)], concurrency=2, progress=False)
    assert summary.ok


@shadow(encode_v2, tolerance={"abs": 1e-9, "rel": 1e-6}, unordered=("body.items",), noise_rate=5, pure=True)
def encode_tuned(record: dict[str, str]) -> str:
    return ",".join(sorted(record))


def typed_testing_and_tuning() -> None:
    try:
        with shadowfn.strict(grace=0.5):
            encode_tuned({"a": "1"})
    except shadowfn.DivergenceError as error:
        outcome: str = error.outcome
        assert outcome
    noise: shadowfn.NoiseStats | None = encode_tuned.shadow.noise  # type: ignore[attr-defined]
    assert noise is None or noise.noise_runs >= 0
    tolerance = shadowfn.Tolerance(abs=1e-9, rel=1e-6)
    assert tolerance.close(1.0, 1.0 + 1e-12)
    shadowfn.enable_metrics(meter_provider=None)
    shadowfn.disable_metrics()
