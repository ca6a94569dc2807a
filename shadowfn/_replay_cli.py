"""``shadowfn replay MODULE:FUNCTION INPUTS.jsonl``: replay a corpus from the command line.

Exit status: 0 when no input diverged, 1 when any did (or, with ``--strict``,
when any input did not end in a match), 2 on a usage error.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

import structlog

from ._replay import DEFAULT_CONCURRENCY, Call, ReplaySummary, replay

__all__ = ["configure_parser", "run"]

EXIT_OK = 0
EXIT_DIVERGED = 1
EXIT_USAGE = 2

_LOG_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "off": logging.CRITICAL + 10,
}
_SHAPES = 'a JSON array of positional arguments, an object of keyword arguments, or {"args": [...], "kwargs": {...}}'


class UsageError(Exception):
    """A problem with the command line or its files, reported with exit status 2."""


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the replay command's arguments to ``parser``."""
    parser.add_argument(
        "target",
        metavar="MODULE:FUNCTION",
        help="a function decorated with @shadow, or a shadowfn.Shadower; the current directory is importable",
    )
    parser.add_argument(
        "inputs",
        metavar="INPUTS.jsonl",
        help=f"one input per line: {_SHAPES}; '-' reads standard input",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=DEFAULT_CONCURRENCY,
        metavar="N",
        help=f"inputs run at once (default {DEFAULT_CONCURRENCY})",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="also exit 1 when an input times out or ends in anything other than a match",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON instead of text")
    parser.add_argument("--no-progress", action="store_true", help="do not draw the progress bar")
    parser.add_argument(
        "--log-level",
        choices=sorted(_LOG_LEVELS),
        default="error",
        help="the lowest level of shadowfn's structlog events printed to stderr (default error), "
        "when the imported module has not configured structlog itself",
    )


def run(args: argparse.Namespace) -> int:
    """Replay the inputs, print the summary and return the exit status."""
    try:
        target = load_target(args.target)
        corpus = Corpus.open(args.inputs)
    except UsageError as exc:
        print(f"shadowfn replay: {exc}", file=sys.stderr)
        return EXIT_USAGE

    _quiet_structlog(args.log_level)
    try:
        with corpus:
            summary = replay(
                target, corpus.calls(), concurrency=args.concurrency, progress=not args.no_progress
            )
    except (TypeError, ValueError) as exc:
        print(f"shadowfn replay: {exc}", file=sys.stderr)
        return EXIT_USAGE

    if args.json:
        document = summary.to_dict()
        document["bad_lines"] = [{"line": n, "error": e} for n, e in corpus.bad_lines]
        document["lines"] = corpus.line_numbers
        print(json.dumps(document, indent=2, default=repr, ensure_ascii=False))
    else:
        print_summary(summary, corpus, sys.stdout, strict=args.strict)

    if summary.total == 0:
        print(f"shadowfn replay: {args.inputs} has no valid inputs", file=sys.stderr)
        return EXIT_USAGE
    failed = not summary.ok or (args.strict and not summary.all_matched)

    return EXIT_DIVERGED if failed else EXIT_OK


def load_target(spec: str) -> Any:
    """Import ``MODULE:ATTRIBUTE`` (the attribute may be dotted), with the current directory importable."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise UsageError(f"target must be MODULE:FUNCTION, such as 'app.codec:encode', got {spec!r}")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise UsageError(f"cannot import module {module_name!r}: {type(exc).__name__}: {exc}") from None
    found: Any = module
    for part in attribute.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise UsageError(f"{module_name!r} has no attribute {attribute!r}") from None

    return found


@dataclass
class Corpus:
    """A JSON-lines file of inputs, parsed lazily; bad lines are kept with their numbers and skipped."""

    stream: Any
    name: str
    bad_lines: list[tuple[int, str]] = field(default_factory=list)
    # line_numbers[i] is the line of the i-th valid input.
    line_numbers: list[int] = field(default_factory=list)

    @classmethod
    def open(cls, path: str) -> Corpus:
        if path == "-":
            return cls(sys.stdin.buffer, "<stdin>")
        try:
            return cls(open(path, "rb"), path)
        except OSError as exc:
            raise UsageError(f"cannot open inputs file {path!r}: {exc.strerror}") from None

    def __enter__(self) -> Corpus:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.stream is not sys.stdin.buffer:
            self.stream.close()

    def calls(self) -> Iterator[Call]:
        for number, raw in enumerate(self.stream, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                self.bad_lines.append((number, f"invalid UTF-8 at byte {exc.start}"))
                continue
            if not text.strip():
                continue
            try:
                call = parse_line(text)
            except ValueError as exc:
                self.bad_lines.append((number, str(exc)))
                continue
            self.line_numbers.append(number)
            yield call


def parse_line(text: str) -> Call:
    """Parse one JSON line into a Call.

    Raises:
        ValueError: the line is not JSON or not one of the accepted shapes.
    """
    text = text.rstrip("\r\n")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON: {exc.msg} at column {exc.pos + 1}") from None
    except RecursionError:
        raise ValueError("invalid JSON: nested too deeply to parse") from None
    if isinstance(value, list):
        return Call(tuple(value))
    if not isinstance(value, dict):
        raise ValueError(f"expected {_SHAPES}, got a JSON {_json_type(value)}")
    if value and set(value) <= {"args", "kwargs"}:
        args = value.get("args", [])
        kwargs = value.get("kwargs", {})
        if not isinstance(args, list):
            raise ValueError(f'"args" must be a JSON array, got a JSON {_json_type(args)}')
        if not isinstance(kwargs, dict):
            raise ValueError(f'"kwargs" must be a JSON object, got a JSON {_json_type(kwargs)}')
        return Call(tuple(args), kwargs)

    return Call((), value)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _quiet_structlog(level: str) -> None:
    # The replay summary is the command's output; structlog's default
    # configuration would print every divergence event to stdout as well. A
    # module that configured structlog itself keeps its configuration.
    if structlog.is_configured():
        return
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(_LOG_LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )


def print_summary(summary: ReplaySummary, corpus: Corpus, out: TextIO, *, strict: bool = False) -> None:
    """Print ``summary`` as text, naming inputs by their line in the corpus.

    With ``strict``, inputs that were not compared make the verdict FAIL, as they
    make the command's exit status 1.
    """
    lines = corpus.line_numbers

    def where(index: int) -> str:
        return f"line {lines[index]}" if index < len(lines) else f"input {index}"

    write = out.write
    write(f"replayed {_count(summary.total, 'input')} of {corpus.name} through {summary.function} ")
    write(f"in {summary.seconds:.2f} s\n")
    write("outcomes: " + (", ".join(f"{name} {count}" for name, count in summary.counts.items()) or "none"))
    if summary.primary_errors:
        write(f" (the primary raised on {summary.primary_errors})")
    write("\n")

    if summary.divergences:
        write(f"divergences by path ({_count(summary.diverged, 'input')} diverged):\n")
        for group in summary.divergences:
            write(f"  {group.path}: {_count(group.count, 'input')}\n")
            for example in group.examples:
                write(
                    f"    {where(example.index)}: {example.path} {example.kind}: "
                    f"{example.primary!r} -> {example.candidate!r}\n"
                )

    for side, timings in (("primary", summary.slowest_primary), ("candidate", summary.slowest_candidate)):
        if timings:
            slowest = ", ".join(f"{where(t.index)} {t.ms:.2f} ms" for t in timings)
            write(f"slowest {side}: {slowest}\n")

    if corpus.bad_lines:
        write(f"skipped {_count(len(corpus.bad_lines), 'bad line')}:\n")
        for number, error in corpus.bad_lines:
            write(f"  line {number}: {error}\n")

    not_compared = summary.total - sum(summary.counts.get(name, 0) for name in ("matched", "diverged"))
    if not_compared:
        write(f"{_count(not_compared, 'input')} not compared (see outcomes); --strict fails on them\n")

    failed = summary.diverged or (strict and not summary.all_matched)
    if failed:
        verdict = "FAIL"
    elif summary.total:
        verdict = "OK"
    else:
        verdict = "NO INPUT"
    write(f"result: {verdict}, {summary.diverged} of {_count(summary.total, 'input')} diverged\n")


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"
