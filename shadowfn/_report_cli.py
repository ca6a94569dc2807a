"""``shadowfn report FILE...``: summarize shadowfn's events from structlog JSON-lines logs."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, TextIO

from ._readiness import DEFAULT_MAX_DIVERGENCE_RATE, DEFAULT_MIN_SAMPLES, check_thresholds
from ._report import LogReport

__all__ = ["configure_parser", "render_text", "run"]

EXAMPLE_TEXT = 60


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the report command's arguments to ``parser``."""
    parser.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="structlog JSON-lines log files ('-' reads standard input, *.gz is decompressed)",
    )
    parser.add_argument(
        "--format", choices=("text", "json"), default="text", help="output format (default: text)"
    )
    parser.add_argument("--html", metavar="FILE", help="also write a self-contained HTML page to FILE")
    parser.add_argument(
        "--max-divergence-rate",
        type=_rate,
        metavar="FRACTION",
        help=f"readiness threshold: the highest acceptable divergence rate as a fraction "
        f"(0.001 = 0.1%%); default {DEFAULT_MAX_DIVERGENCE_RATE} when --min-samples is given",
    )
    parser.add_argument(
        "--min-samples",
        type=_samples,
        metavar="N",
        help=f"readiness threshold: the fewest compared calls; default {DEFAULT_MIN_SAMPLES} "
        f"when --max-divergence-rate is given",
    )


def _rate(text: str) -> float:
    try:
        return check_thresholds(float(text), 0)[0]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid --max-divergence-rate {text!r}: expected a fraction in [0, 1], such as 0.001"
        ) from None


def _samples(text: str) -> int:
    try:
        return check_thresholds(0.0, int(text))[1]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid --min-samples {text!r}: expected an integer of at least 0"
        ) from None


def run(args: argparse.Namespace) -> int:
    """Read the logs, print the report and write the HTML page; return the exit status.

    Returns 0 on success, 1 when standard output was closed early (a broken pipe),
    2 when a file cannot be read or the page cannot be written, and 3 when readiness
    thresholds were given and a function does not meet them, so a CI job can gate a
    promotion on the logs. Malformed lines are listed in the report and do not change
    the status.
    """
    thresholds = None
    if args.max_divergence_rate is not None or args.min_samples is not None:
        thresholds = (
            DEFAULT_MAX_DIVERGENCE_RATE if args.max_divergence_rate is None else args.max_divergence_rate,
            DEFAULT_MIN_SAMPLES if args.min_samples is None else args.min_samples,
        )

    report = LogReport()
    for path in args.files:
        try:
            report.read_path(path)
        except OSError as exc:
            print(f"shadowfn report: cannot read {path}: {exc.strerror or exc}", file=sys.stderr)
            return 2
    data = report.to_dict(thresholds)

    if args.html is not None:
        from ._report_html import render_html

        try:
            with open(args.html, "w", encoding="utf-8") as page:
                page.write(render_html(data))
        except OSError as exc:
            print(f"shadowfn report: cannot write {args.html}: {exc.strerror or exc}", file=sys.stderr)
            return 2

    try:
        if args.format == "json":
            json.dump(data, sys.stdout, indent=2, ensure_ascii=False)
            sys.stdout.write("\n")
        else:
            render_text(data, sys.stdout)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader (such as ``head``) closed the pipe; point stdout at devnull so
        # the interpreter's final flush does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    if thresholds is not None:
        verdicts = [function.get("readiness", {}).get("ready") for function in data["functions"]]
        if not verdicts or not all(verdicts):
            return 3
    return 0


def render_text(data: dict[str, Any], out: TextIO) -> None:
    """Write the report as plain text."""
    malformed = data["malformed"]
    out.write(
        f"{len(data['files'])} file(s), {data['lines']} lines, {data['events']} shadowfn events, "
        f"{data['other_lines']} other events, {malformed['count']} malformed lines\n"
    )
    if data["time_range"] is not None:
        out.write(f"time range: {data['time_range'][0]} to {data['time_range'][1]}\n")
    if data["untimed_events"]:
        out.write(f"{data['untimed_events']} events have no timestamp and are left out of the timeline\n")
    if not data["functions"]:
        out.write("no shadowfn events found\n")
        if malformed["count"] and not data["events"] and not data["other_lines"]:
            out.write(
                "no line was a JSON object: write the log with structlog.processors.JSONRenderer() "
                "as the last processor (see docs/report.md)\n"
            )
    for function in data["functions"]:
        out.write("\n")
        _render_function(function, data["thresholds"], out)
    if malformed["count"]:
        out.write(f"\nmalformed lines ({malformed['count']}, first {len(malformed['lines'])} listed):\n")
        for entry in malformed["lines"]:
            out.write(f"  {entry['file']}:{entry['line']}: {entry['reason']}\n")


def _render_function(function: dict[str, Any], thresholds: dict[str, Any] | None, out: TextIO) -> None:
    out.write(f"{function['function']}\n")
    out.write(
        f"  sampled {function['sampled']}  matched {function['matched']}  "
        f"diverged {function['diverged']}  timeouts {function['timeouts']}  shed {function['shed']}  "
        f"compare failed {function['compare_failed']}  internal errors {function['internal_errors']}"
        + (f"  cancelled {function['cancelled']}" if function["cancelled"] else "")
        + "\n"
    )
    if function["timeouts"] or function["shed"]:
        out.write("  timeouts and shed are lower bounds: their warnings are rate-limited\n")

    if not function["matches_logged"]:
        out.write("  no shadow.match events: log at debug level to count matches and the rate\n")
    low, high = function["interval"]
    rate = function["divergence_rate"]
    approx = "" if function["distinct_keys_exact"] else "~"
    out.write(
        f"  divergence rate {_percent(rate)} (95% CI {_percent(low)} to {_percent(high)}) "
        f"over {function['compared']} compared calls, {approx}{function['distinct_keys']} distinct keys\n"
    )
    if function["candidate_ms_mean"] is not None:
        out.write(
            f"  mean duration: primary {function['primary_ms_mean']:.3f} ms, "
            f"candidate {function['candidate_ms_mean']:.3f} ms\n"
        )

    readiness = function["readiness"]
    if readiness is not None and thresholds is not None:
        limits = (
            f"max rate {_percent(thresholds['max_divergence_rate'])}, min samples {thresholds['min_samples']}"
        )
        verdict = "yes" if readiness["ready"] else "no: " + "; ".join(readiness["unmet"])
        out.write(f"  ready ({limits}): {verdict}\n")

    if function["paths"]:
        out.write("  diverging paths, worst first:\n")
        for path in function["paths"]:
            share = "" if path["share"] is None else f" ({path['share']:.1%} of divergences)"
            kinds = ", ".join(f"{kind} {count}" for kind, count in path["kinds"].items())
            out.write(f"    {path['count']:>8}  {path['path']}{share} [{kinds}]\n")
            for example in path["examples"]:
                out.write(
                    f"              key {example['key']}: {_short(example['primary'])} -> "
                    f"{_short(example['candidate'])}\n"
                )
    if function["untracked_paths"]:
        out.write(f"  {function['untracked_paths']} more path occurrences beyond the tracked paths\n")


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4%}"


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= EXAMPLE_TEXT else text[:EXAMPLE_TEXT] + "…"
