"""ShadowConfig: validation, builders, sampling, and its use through ``shadow(config=...)``."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import orjson
import pycountry
import pytest

import shadowfn
from shadowfn import ResponseRecord, ShadowConfig, shadow


def _records() -> list[dict[str, str]]:
    return [{"alpha_2": c.alpha_2, "name": c.name} for c in list(pycountry.countries)[:40]]


def _compare_lower(primary: Any, candidate: Any) -> bool:
    return bool(primary == candidate)


def _adapter(value: Any) -> ResponseRecord:
    return ResponseRecord(body=value)


BUILDERS: list[tuple[str, Any]] = [
    ("rate", 5),
    ("timeout", 0.25),
    ("key", "record"),
    ("ignore", ("body.meta", "body.items[*].id")),
    ("compare", _compare_lower),
    ("adapter", _adapter),
    ("copy_args", False),
    ("max_pending", 4),
]


@pytest.mark.parametrize(("setting", "value"), BUILDERS)
def test_builder_returns_new_config(setting: str, value: Any) -> None:
    original = ShadowConfig()
    names = [f.name for f in dataclasses.fields(ShadowConfig) if f.init]

    changed = getattr(original, f"with_{setting}")(value)

    assert changed is not original
    assert getattr(changed, setting) == value
    assert original == ShadowConfig()
    for other in names:
        if other != setting:
            assert getattr(changed, other) == getattr(original, other)


@pytest.mark.parametrize(
    ("builder", "value", "error", "words"),
    [
        ("with_rate", 101, ValueError, "rate"),
        ("with_rate", "5", TypeError, "rate"),
        ("with_timeout", 0, ValueError, "timeout"),
        ("with_timeout", float("inf"), ValueError, "timeout"),
        ("with_key", 3, TypeError, "key"),
        ("with_ignore", ("body..x[",), ValueError, "ignore"),
        ("with_ignore", 5, TypeError, "ignore"),
        ("with_compare", "no", TypeError, "compare"),
        ("with_adapter", 1, TypeError, "adapter"),
        ("with_copy_args", "yes", TypeError, "copy_args"),
        ("with_max_pending", 0, ValueError, "max_pending"),
    ],
)
def test_builder_validates_like_constructor(
    builder: str, value: Any, error: type[Exception], words: str
) -> None:
    config = ShadowConfig()

    with pytest.raises(error) as raised:
        getattr(config, builder)(value)

    assert words in str(raised.value)
    assert config == ShadowConfig()


def test_with_ignore_accepts_single_path() -> None:
    config = ShadowConfig(ignore=("body.a",)).with_ignore("body.meta")

    assert config.ignore == ("body.meta",)
    assert config.ignore_paths.matches(("body", "meta"))


def test_builders_chain() -> None:
    config = ShadowConfig().with_rate(5).with_timeout(0.5).with_ignore(("status",))

    assert (config.rate, config.timeout, config.ignore) == (5, 0.5, ("status",))


def test_config_is_frozen() -> None:
    config = ShadowConfig()

    with pytest.raises(dataclasses.FrozenInstanceError):
        config.rate = 5  # type: ignore[misc]


@pytest.mark.parametrize("rate", [0, 0.5, 1, 10, 33.3, 50, 99.99, 100])
def test_should_shadow_matches_module_function(rate: float) -> None:
    config = ShadowConfig(rate=rate)
    keys = [f"req-{i}".encode() for i in range(300)] + [b"", b"hello", b"req-key-1"]

    for key in keys:
        assert config.should_shadow(key) == shadowfn.should_shadow(key, rate), key


def test_should_shadow_worked_cases() -> None:
    config = ShadowConfig(rate=10)

    assert config.should_shadow(b"req-30")
    assert not config.should_shadow(b"req-key-1")
    assert not config.should_shadow(b"")


def test_should_shadow_rejects_str_key() -> None:
    with pytest.raises(TypeError, match="key must be bytes"):
        ShadowConfig().should_shadow("req-30")  # type: ignore[arg-type]


def test_shadow_rejects_config_with_keywords() -> None:
    config = ShadowConfig(rate=5)

    with pytest.raises(TypeError) as raised:
        shadow(json.dumps, config=config, rate=10)

    message = str(raised.value)
    assert "config=" in message
    assert "rate=" in message
    assert "with_rate" in message


@pytest.mark.parametrize(
    "keywords",
    [{"timeout": 2.0}, {"ignore": ()}, {"copy_args": True}, {"max_pending": None}, {"key": None}],
)
def test_shadow_rejects_config_with_default_valued_keyword(keywords: dict[str, Any]) -> None:
    # An explicit keyword is rejected even when it equals the default.
    with pytest.raises(TypeError, match="not both"):
        shadow(json.dumps, config=ShadowConfig(), **keywords)


def test_shadow_config_allows_name_and_enabled() -> None:
    @shadow(orjson.dumps, config=ShadowConfig(), name="codec.encode", enabled=False)
    def encode(record: dict[str, str]) -> bytes:
        return json.dumps(record, separators=(",", ":")).encode()

    assert encode.shadow.name == "codec.encode"  # type: ignore[attr-defined]
    assert not encode.shadow.enabled  # type: ignore[attr-defined]


def test_shadow_rejects_non_config() -> None:
    with pytest.raises(TypeError, match="config must be a ShadowConfig"):
        shadow(json.dumps, config={"rate": 5})  # type: ignore[call-overload]


def _run_codec(encode: Any, records: list[dict[str, str]]) -> tuple[list[bytes], shadowfn.FunctionStats]:
    results = [encode(record) for record in records]
    assert shadowfn.drain(timeout=10)
    return results, encode.shadow.stats


def test_keywords_and_config_are_equivalent() -> None:
    records = _records()
    ignore = ("body.meta",)

    def encode_v2(record: dict[str, str]) -> bytes:
        return orjson.dumps(record)

    def legacy(record: dict[str, str]) -> bytes:
        return json.dumps(record, separators=(",", ":"), ensure_ascii=True).encode()

    by_keywords = shadow(encode_v2, rate=30, timeout=1.0, ignore=ignore, name="kw.encode")(legacy)
    config = ShadowConfig(rate=30, timeout=1.0, ignore=ignore)
    by_config = shadow(encode_v2, config=config, name="cfg.encode")(legacy)

    assert by_keywords.shadow.config == by_config.shadow.config  # type: ignore[attr-defined]
    results_kw, stats_kw = _run_codec(by_keywords, records)
    divergent_kw = [entry.key for entry in shadowfn.log.recent(n=100, function="kw.encode")]
    results_cfg, stats_cfg = _run_codec(by_config, records)
    divergent_cfg = [entry.key for entry in shadowfn.log.recent(n=100, function="cfg.encode")]

    assert results_kw == results_cfg
    assert stats_kw == stats_cfg
    assert stats_kw.sampled == sum(config.should_shadow(_key_of(by_config, r)) for r in records)
    assert sorted(divergent_kw) == sorted(divergent_cfg)


def _key_of(function: Any, record: dict[str, str]) -> bytes:
    builder = function.shadow._builders[False]
    key: bytes = builder.build((record,), {})
    return key


def test_shadow_without_settings_uses_config_defaults() -> None:
    encode = shadow(orjson.dumps)(json.dumps)

    assert encode.shadow.config == ShadowConfig()  # type: ignore[attr-defined]


@pytest.mark.parametrize("setting", ["ignore", "unordered", "redact"])
def test_path_without_record_part_rejected(setting: str) -> None:
    with pytest.raises(ValueError, match=rf"{setting} has the path 'name', which matches nothing") as raised:
        ShadowConfig(**{setting: ("name",)})

    assert "'body.name'" in str(raised.value)


def test_paths_from_record_parts_or_wildcards_accepted() -> None:
    config = ShadowConfig(ignore=("status", "headers.etag", "body.items[*].id", "*.x", "**.updated_at"))

    assert config.ignore == ("status", "headers.etag", "body.items[*].id", "*.x", "**.updated_at")
