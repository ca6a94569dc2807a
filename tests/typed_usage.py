"""Typed usage of the public API; ``mypy --strict`` must accept this file."""

from __future__ import annotations

import shadowfn
from shadowfn import Divergence, DivergenceEntry, FunctionStats, ResponseRecord, shadow


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
