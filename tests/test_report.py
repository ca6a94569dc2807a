"""The ``shadowfn report`` command and the log aggregation behind it, on logs written by real runs."""

from __future__ import annotations

import gzip
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pycountry
import pytest
import structlog

import shadowfn
from shadowfn import shadow
from shadowfn._cli import main
from shadowfn._report import MAX_LINE_BYTES, MAX_PATHS, LogReport, normalize_path
from shadowfn._stats import registry

CHROMIUM = "/usr/bin/chromium"


# A codec on ISO 3166 data whose candidate really differs: it prefers a country's
# common name and drops the parenthesized part of subdivision names.


def _record(alpha_2: str, *, v2: bool) -> dict[str, Any]:
    country = pycountry.countries.get(alpha_2=alpha_2)
    subdivisions = sorted(pycountry.subdivisions.get(country_code=alpha_2) or [], key=lambda s: s.code)
    return {
        "code": country.alpha_2,
        "name": getattr(country, "common_name", country.name) if v2 else country.name,
        "numeric": country.numeric,
        "subdivisions": [
            {"code": s.code, "name": s.name.split(" (")[0] if v2 else s.name, "type": s.type}
            for s in subdivisions
        ],
    }


def encode_v2(alpha_2: str) -> dict[str, Any]:
    return _record(alpha_2, v2=True)


@shadow(encode_v2, rate=100, timeout=5.0, name="codec.encode")
def encode(alpha_2: str) -> dict[str, Any]:
    return _record(alpha_2, v2=False)


def decode_v2(numeric: str) -> str:
    if numeric.startswith("0"):
        raise KeyError(numeric)
    return str(pycountry.countries.get(numeric=numeric).alpha_2)


@shadow(decode_v2, rate=100, timeout=5.0, name="codec.decode")
def decode(numeric: str) -> str:
    return str(pycountry.countries.get(numeric=numeric).alpha_2)


@contextmanager
def json_log(path: Path, *, timestamps: bool = True) -> Iterator[None]:
    """Send structlog's output, as JSON lines, to ``path``; restore the configuration afterwards."""
    previous = structlog.get_config()
    processors: list[Any] = [structlog.processors.add_log_level]
    if timestamps:
        processors.append(structlog.processors.TimeStamper(fmt="iso"))
    processors.append(structlog.processors.JSONRenderer())
    with path.open("w", encoding="utf-8") as sink:
        structlog.configure(
            processors=processors,
            wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
            logger_factory=structlog.WriteLoggerFactory(file=sink),
            cache_logger_on_first_use=False,
        )
        try:
            yield
            assert shadowfn.drain(timeout=30)
        finally:
            structlog.configure(**previous)


def run_codec(countries: list[Any]) -> None:
    for country in countries:
        encode(country.alpha_2)
        decode(country.numeric)
        # Waiting keeps pending candidates under the bound, so none are shed.
        assert shadowfn.drain(timeout=30)


def write_codec_log(
    path: Path, *, timestamps: bool = True, countries: list[Any] | None = None
) -> dict[str, Any]:
    """Run the codec over ISO 3166 countries into a JSON-lines log; return the live counters after."""
    with json_log(path, timestamps=timestamps):
        run_codec(list(pycountry.countries) if countries is None else countries)
    stats = {name: s.as_dict() for name, s in shadowfn.stats().items()}
    registry.reset()
    return stats


@pytest.fixture(scope="module")
def codec_log(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    path = tmp_path_factory.mktemp("logs") / "codec.log"
    return path, write_codec_log(path)


def read(*paths: Path) -> dict[str, Any]:
    report = LogReport()
    for path in paths:
        report.read_path(str(path))
    return report.to_dict()


def by_function(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["function"]: f for f in data["functions"]}


# Aggregation ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("body.items[3].price", "body.items[*].price"),
        ("body.items[3].tags[12]", "body.items[*].tags[*]"),
        ("body.matrix[0][-1]", "body.matrix[*][*]"),
        ('body["a.b"].c', 'body["a.b"].c'),
        ("status", "status"),
    ],
)
def test_normalize_path(path: str, expected: str) -> None:
    assert normalize_path(path) == expected


def test_counts_agree_with_live_counters(codec_log: tuple[Path, dict[str, Any]]) -> None:
    path, live = codec_log
    functions = by_function(read(path))

    assert set(functions) == {"codec.encode", "codec.decode"}
    for name, found in functions.items():
        assert found["matched"] == live[name]["matched"]
        assert found["diverged"] == live[name]["diverged"]
        assert found["sampled"] == live[name]["sampled"]
        assert found["timeouts"] == 0
        assert found["shed"] == 0
        assert found["distinct_keys"] == len(pycountry.countries)
        assert found["distinct_keys_exact"] is True


def test_divergence_rate_and_interval(codec_log: tuple[Path, dict[str, Any]]) -> None:
    path, live = codec_log
    found = by_function(read(path))["codec.encode"]
    compared = live["codec.encode"]["matched"] + live["codec.encode"]["diverged"]

    assert found["compared"] == compared
    assert found["divergence_rate"] == pytest.approx(live["codec.encode"]["diverged"] / compared)
    low, high = found["interval"]
    assert low < found["divergence_rate"] < high


def test_paths_normalized_worst_first(codec_log: tuple[Path, dict[str, Any]]) -> None:
    path, _ = codec_log
    found = by_function(read(path))["codec.encode"]
    paths = {p["path"]: p for p in found["paths"]}
    with_common_name = [c for c in pycountry.countries if hasattr(c, "common_name")]
    with_parentheses = {s.country_code for s in pycountry.subdivisions if " (" in s.name}

    assert set(paths) == {"body.name", "body.subdivisions[*].name"}
    assert paths["body.name"]["count"] == len(with_common_name)
    assert paths["body.subdivisions[*].name"]["count"] == len(with_parentheses)
    counts = [p["count"] for p in found["paths"]]
    assert counts == sorted(counts, reverse=True)


def test_path_examples_are_real_values(codec_log: tuple[Path, dict[str, Any]]) -> None:
    path, _ = codec_log
    found = by_function(read(path))["codec.encode"]
    names = {c.name: c.common_name for c in pycountry.countries if hasattr(c, "common_name")}

    for entry in found["paths"]:
        assert 1 <= len(entry["examples"]) <= 5
    examples = next(p for p in found["paths"] if p["path"] == "body.name")["examples"]
    for example in examples:
        assert names[example["primary"]] == example["candidate"]
        assert len(example["key"]) == 16
    subdivision = next(p for p in found["paths"] if p["path"] == "body.subdivisions[*].name")["examples"][0]
    assert subdivision["primary"].startswith(subdivision["candidate"] + " (")
    assert subdivision["path"].startswith("body.subdivisions[")


def test_raised_candidate_shows_ok_and_error(codec_log: tuple[Path, dict[str, Any]]) -> None:
    path, _ = codec_log
    found = by_function(read(path))["codec.decode"]
    paths = {p["path"]: p for p in found["paths"]}
    leading_zero = [c for c in pycountry.countries if c.numeric.startswith("0")]

    assert paths["ok"]["count"] == len(leading_zero)
    assert paths["ok"]["examples"][0]["primary"] is True
    assert paths["ok"]["examples"][0]["candidate"] is False
    assert paths["error"]["examples"][0]["candidate"].startswith("KeyError")


def test_logs_from_several_hosts_add_up(tmp_path: Path) -> None:
    countries = list(pycountry.countries)
    first = write_codec_log(tmp_path / "host-a.log", countries=countries[:100])
    second = write_codec_log(tmp_path / "host-b.log", countries=countries[80:])

    found = by_function(read(tmp_path / "host-a.log", tmp_path / "host-b.log"))["codec.encode"]

    assert found["matched"] == first["codec.encode"]["matched"] + second["codec.encode"]["matched"]
    assert found["diverged"] == first["codec.encode"]["diverged"] + second["codec.encode"]["diverged"]
    # Keys 80..99 ran on both hosts; the sketch counts them once.
    assert found["distinct_keys"] == len(countries)


def test_log_without_timestamps(tmp_path: Path) -> None:
    path = tmp_path / "plain.log"
    live = write_codec_log(path, timestamps=False, countries=list(pycountry.countries)[:30])

    data = read(path)
    found = by_function(data)["codec.encode"]

    assert data["time_range"] is None
    assert data["untimed_events"] == data["events"]
    assert found["timeline"] == []
    assert found["diverged"] == live["codec.encode"]["diverged"]


def test_timeline_covers_every_comparison(codec_log: tuple[Path, dict[str, Any]]) -> None:
    path, _ = codec_log
    for found in read(path)["functions"]:
        points = found["timeline"]
        assert points
        assert sum(p["compared"] for p in points) == found["compared"]
        assert sum(p["diverged"] for p in points) == found["diverged"]


def test_timeouts_are_a_lower_bound(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    release = threading.Event()

    def slow_v2(alpha_2: str) -> dict[str, Any]:
        release.wait(10)
        return _record(alpha_2, v2=True)

    @shadow(slow_v2, rate=100, timeout=0.05, name="codec.slow")
    def slow(alpha_2: str) -> dict[str, Any]:
        return _record(alpha_2, v2=False)

    path = tmp_path / "slow.log"
    try:
        with json_log(path):
            values = [slow(country.alpha_2) for country in list(pycountry.countries)[:3]]
    finally:
        release.set()
    live = shadowfn.stats()["codec.slow"]
    main(["report", str(path)])
    text = capsys.readouterr().out
    found = by_function(read(path))["codec.slow"]

    assert values == [_record(c.alpha_2, v2=False) for c in list(pycountry.countries)[:3]]
    assert live.timeouts == 3
    # One warning per function per 10 s reaches the log; later ones are suppressed.
    assert 1 <= found["timeouts"] <= live.timeouts
    assert found["compared"] == 0
    assert "timeouts and shed are lower bounds" in text


def test_gzip_log(codec_log: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    path, _ = codec_log
    packed = tmp_path / "codec.log.gz"
    with path.open("rb") as source, gzip.open(packed, "wb") as target:
        shutil.copyfileobj(source, target)

    assert read(packed)["functions"] == read(path)["functions"]


# Malformed input ---------------------------------------------------------------


def test_malformed_lines_counted_with_locations(
    codec_log: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    path, _ = codec_log
    damaged = tmp_path / "damaged.log"
    lines = path.read_bytes().splitlines(keepends=True)
    bad = {
        3: b'{"event": "shadow.match", "function": \n',
        5: b"[1, 2, 3]\n",
        8: b'{"event": "shadow.divergence", "key": "00"}\n',
        9: b'{"event": "shadow.match", "function": "x\xff"}\n',
    }
    for number in sorted(bad):
        lines.insert(number - 1, bad[number])
    lines[-1] = lines[-1][:-20]  # a line cut off mid-write
    damaged.write_bytes(b"".join(lines))

    data = read(damaged)

    assert data["malformed"]["count"] == 5
    listed = {entry["line"]: entry for entry in data["malformed"]["lines"]}
    assert set(listed) == {3, 5, 8, 9, len(lines)}
    assert all(entry["file"] == str(damaged) for entry in listed.values())
    assert listed[5]["reason"] == "a JSON list, not an object"
    assert "without a function" in listed[8]["reason"]
    assert listed[9]["reason"] == "invalid UTF-8"
    assert listed[3]["reason"].startswith("invalid JSON")


def test_overlong_line_is_skipped(codec_log: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    path, _ = codec_log
    long_log = tmp_path / "long.log"
    with long_log.open("wb") as out:
        out.write(b'{"event": "other", "blob": "' + b"x" * (MAX_LINE_BYTES + 10) + b'"}\n')
        out.write(path.read_bytes())

    data = read(long_log)

    assert data["malformed"]["lines"] == [
        {"file": str(long_log), "line": 1, "reason": f"line longer than {MAX_LINE_BYTES} bytes"}
    ]
    assert data["functions"] == read(path)["functions"]


def test_other_application_events_are_skipped(codec_log: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    path, _ = codec_log
    mixed = tmp_path / "mixed.log"
    mixed.write_bytes(b'{"event": "request served", "status": 200}\n\n' + path.read_bytes())

    data = read(mixed)

    assert data["other_lines"] == 1
    assert data["malformed"]["count"] == 0
    assert data["functions"] == read(path)["functions"]


# Command line -------------------------------------------------------------------


def test_cli_text_output(codec_log: tuple[Path, dict[str, Any]], capsys: pytest.CaptureFixture[str]) -> None:
    path, live = codec_log

    status = main(["report", str(path)])

    out = capsys.readouterr().out
    assert status == 0
    assert "codec.encode\n" in out
    assert f"diverged {live['codec.encode']['diverged']}" in out
    assert "body.subdivisions[*].name" in out
    assert '"Bolivia, Plurinational State of" -> "Bolivia"' in out
    assert "ready" not in out


def test_cli_json_equals_library(
    codec_log: tuple[Path, dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = codec_log

    status = main(["report", "--format", "json", str(path)])

    assert status == 0
    assert json.loads(capsys.readouterr().out) == read(path)


def test_cli_readiness_thresholds(
    codec_log: tuple[Path, dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = codec_log

    loose_status = main(
        ["report", "--format", "json", "--max-divergence-rate", "0.5", "--min-samples", "100", str(path)]
    )
    loose = by_function(json.loads(capsys.readouterr().out))
    strict_status = main(["report", "--max-divergence-rate", "0.001", str(path)])
    strict_text = capsys.readouterr().out

    assert loose_status == (0 if all(f["readiness"]["ready"] for f in loose.values()) else 3)
    assert strict_status == 3
    assert loose["codec.encode"]["readiness"] == {"ready": True, "unmet": []}
    assert "ready (max rate 0.1000%, min samples 10000): no" in strict_text
    assert "fewer than the 10000 required" in strict_text


def test_cli_readiness_matches_library(tmp_path: Path) -> None:
    path = tmp_path / "codec.log"
    with json_log(path):
        run_codec(list(pycountry.countries)[:60])
    live = encode.shadow.report()

    from_log = LogReport()
    from_log.read_path(str(path))
    logged = from_log.readiness("codec.encode")

    assert logged.compared == live.compared
    assert logged.diverged == live.diverged
    assert logged.distinct_keys == live.distinct_keys
    assert logged.interval == live.interval


@pytest.mark.parametrize(
    ("option", "value"),
    [("--max-divergence-rate", "2"), ("--max-divergence-rate", "abc"), ("--min-samples", "-1")],
)
def test_cli_rejects_bad_thresholds(
    option: str, value: str, codec_log: tuple[Path, dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = codec_log

    with pytest.raises(SystemExit) as exited:
        main(["report", option, value, str(path)])

    assert exited.value.code == 2
    assert f"invalid {option} {value!r}" in capsys.readouterr().err


def test_cli_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.log"

    status = main(["report", str(missing)])

    assert status == 2
    assert f"cannot read {missing}" in capsys.readouterr().err


def test_console_script_runs(codec_log: tuple[Path, dict[str, Any]]) -> None:
    path, _ = codec_log
    script = Path(sys.executable).parent / "shadowfn"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "shadowfn"]

    result = subprocess.run(
        [*command, "report", "--format", "json", str(path)], capture_output=True, timeout=60
    )

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == read(path)


def test_cli_reads_standard_input(codec_log: tuple[Path, dict[str, Any]]) -> None:
    path, _ = codec_log

    result = subprocess.run(
        [sys.executable, "-m", "shadowfn", "report", "--format", "json", "-"],
        input=path.read_bytes(),
        capture_output=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["files"] == ["<stdin>"]
    assert report["functions"] == read(path)["functions"]


# HTML page --------------------------------------------------------------------------


def test_html_page_is_self_contained(codec_log: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    path, _ = codec_log
    page = tmp_path / "report.html"

    assert main(["report", "--html", str(page), str(path)]) == 0

    text = page.read_text(encoding="utf-8")
    assert "<script" not in text
    assert "<link" not in text
    assert "src=" not in text
    assert "url(" not in text
    assert "<svg" in text


def test_html_escapes_function_names(tmp_path: Path) -> None:
    def candidate(x: int) -> int:
        return x + 1

    @shadow(candidate, rate=100, name="<script>alert(1)</script>")
    def primary(x: int) -> int:
        return x

    path = tmp_path / "escape.log"
    with json_log(path):
        assert primary(1) == 1
    page = tmp_path / "escape.html"

    main(["report", "--html", str(page), str(path)])

    text = page.read_text(encoding="utf-8")
    assert "<script>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_html_renders_in_chromium(codec_log: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    path, _ = codec_log
    page = tmp_path / "report.html"
    main(["report", "--max-divergence-rate", "0.001", "--html", str(page), str(path)])

    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                "--dump-dom",
                page.as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=90,
        )

    dom = result.stdout
    assert result.returncode == 0, result.stderr[-2000:]
    assert '<table id="functions">' in dom
    assert dom.count('<table class="paths">') == 2
    assert dom.count('<svg class="timeline"') == 2
    assert "<polyline" in dom
    assert "body.subdivisions[*].name" in dom
    assert '<td class="not-ready">no</td>' in dom


# Bounded memory -------------------------------------------------------------------------


def test_large_log_streams_in_bounded_memory(codec_log: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    """Stream about 20 MB, rewriting real events with fresh keys, paths and times, and trace the peak."""
    path, _ = codec_log
    events = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    big = tmp_path / "big.log"
    written = 0
    copies = 0
    with big.open("w", encoding="utf-8") as out:
        while written < 20_000_000:
            for index, original in enumerate(events):
                serial = copies * len(events) + index
                event = json.loads(json.dumps(original))
                event["key"] = f"{serial * 7919:016x}"
                # One event a second, as Unix seconds, so the timeline has to widen its buckets.
                event["timestamp"] = 1_796_000_000 + serial
                if event["event"] == "shadow.divergence" and event["diff"]["body"] is not None:
                    for change in event["diff"]["body"]["changes"]:
                        # Distinct dict keys are not normalized away, so the path cap is exercised.
                        change["path"] = f"{change['path']}.v{serial}"
                line = json.dumps(event) + "\n"
                out.write(line)
                written += len(line)
            copies += 1
    size = big.stat().st_size

    tracemalloc.start()
    try:
        report = LogReport()
        report.read_path(str(big))
        data = report.to_dict()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    encode_report = by_function(data)["codec.encode"]
    assert data["events"] == copies * len(events)
    assert len(encode_report["paths"]) == MAX_PATHS
    assert encode_report["untracked_paths"] > 0
    assert len(encode_report["timeline"]) <= 240
    assert encode_report["distinct_keys_exact"] is False
    assert peak < size / 10, f"peak {peak} bytes while reading {size} bytes"


def test_console_rendered_log_gets_a_hint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "console.log"
    log.write_text(
        "2026-12-04 20:09:48 [warning  ] shadow.divergence  function=codec.encode key=9afe80228bf5b64c\n"
    )

    status = main(["report", str(log)])

    assert status == 0
    out = capsys.readouterr().out
    assert "no line was a JSON object" in out
    assert "JSONRenderer()" in out
