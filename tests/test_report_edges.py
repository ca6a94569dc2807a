"""The report reader on log lines that are valid JSON but odd: timestamps, event fields, numbers."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from shadowfn._cli import main

MATCH = {"event": "shadow.match", "function": "codec.encode", "key": "0123456789abcdef"}


def _reject_constant(name: str) -> Any:
    raise ValueError(f"the report output contains {name}, which is not JSON")


def _report(path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    status = main(["report", "--format", "json", "--max-divergence-rate", "0.01", str(path)])
    data: dict[str, Any] = json.loads(capsys.readouterr().out, parse_constant=_reject_constant)
    # Status 3 only means that a function is not ready, or that none was found. The
    # report itself must still be complete.
    ready = bool(data["functions"]) and all(f["readiness"]["ready"] for f in data["functions"])
    assert status == (0 if ready else 3)
    return data


@pytest.mark.parametrize(
    "timestamp",
    [
        "NaN",
        "Infinity",
        "-Infinity",
        "1e300",
        "-1e18",
        # Epoch milliseconds, as some log pipelines write them: year 56000 as seconds.
        "1733340000000",
        '"9999-12-31T23:59:59-23:59"',
        '"0001-01-01T00:00:00+23:59"',
    ],
)
def test_out_of_range_timestamp_is_untimed(
    timestamp: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "app.log"
    fields = json.dumps(MATCH)[:-1]
    log.write_text(f'{fields}, "timestamp": {timestamp}}}\n{fields}, "timestamp": "2026-12-04T20:00:00Z"}}\n')

    data = _report(log, capsys)

    assert data["events"] == 2
    assert data["untimed_events"] == 1
    assert data["time_range"] == ["2026-12-04T20:00:00Z", "2026-12-04T20:00:00Z"]
    assert data["functions"][0]["matched"] == 2


@pytest.mark.parametrize("event", ['["shadow.match"]', '{"name": "shadow.match"}', "7", "null"])
def test_non_string_event_field_is_other_line(
    event: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "app.log"
    log.write_text(f'{{"event": {event}, "function": "codec.encode"}}\n{json.dumps(MATCH)}\n')

    data = _report(log, capsys)

    assert data["other_lines"] == 1
    assert data["events"] == 1
    assert data["malformed"]["count"] == 0


@pytest.mark.parametrize("duration", ["NaN", "Infinity", "true"])
def test_non_finite_durations_are_not_averaged(
    duration: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "app.log"
    fields = json.dumps(MATCH)[:-1]
    log.write_text(
        f'{fields}, "primary_ms": {duration}, "candidate_ms": 1.0}}\n'
        f'{fields}, "primary_ms": 2.0, "candidate_ms": 4.0}}\n'
    )

    data = _report(log, capsys)

    function = data["functions"][0]
    assert function["matched"] == 2
    assert function["primary_ms_mean"] == 2.0
    assert function["candidate_ms_mean"] == 4.0


def test_timeline_near_year_one_renders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "app.log"
    fields = json.dumps(MATCH)[:-1]
    # Three hundred one-second buckets make the timeline widen its buckets.
    lines = [f'{fields}, "timestamp": "0001-01-01T00:{n // 60:02d}:{n % 60:02d}Z"}}' for n in range(1, 301)]
    log.write_text("\n".join(lines) + "\n")

    data = _report(log, capsys)

    timeline = data["functions"][0]["timeline"]
    assert sum(point["compared"] for point in timeline) == 300
    assert timeline[0]["start"] == "0001-01-01T00:00:00Z"


def _gzip_log(lines: int) -> bytes:
    text = "".join(json.dumps({**MATCH, "key": f"{number:016x}"}) + "\n" for number in range(lines))
    return gzip.compress(text.encode(), mtime=0)


def test_truncated_gzip_log_reports_lines_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    compressed = _gzip_log(20000)
    log = tmp_path / "app.log.gz"
    # A copy cut off mid-transfer, or a log compressed while it was read.
    log.write_bytes(compressed[: len(compressed) // 2])

    data = _report(log, capsys)

    assert 0 < data["events"] < 20000
    assert data["malformed"]["count"] == 1
    assert data["malformed"]["lines"][0]["line"] == data["lines"] + 1
    assert "compressed" in data["malformed"]["lines"][0]["reason"]
