"""Shared helpers for the benchmark scripts: timing, statistics, machine description, output.

The scripts in this folder are run by hand (see ``run_all.sh``), never by pytest.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from importlib import metadata
from typing import Any

PACKAGES = ("shadowfn", "wrapt", "structlog", "laboratory", "orjson")

perf_ns = time.perf_counter_ns


def cpu_model() -> str:
    """Return the CPU model name from /proc/cpuinfo, or the platform's processor string."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    """Describe the machine and the software that a figure was measured with."""
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "os": platform.platform(),
        "packages": versions,
    }


def describe_machine() -> str:
    info = machine()
    packages = ", ".join(f"{name} {version}" for name, version in info["packages"].items())
    return (
        f"CPU: {info['cpu']}, {info['cores']} cores ({info['usable_cores']} usable)\n"
        f"Python: {info['python']} on {info['os']}\n"
        f"Packages: {packages}"
    )


def summarize(samples_ns: Sequence[float]) -> dict[str, float]:
    """Return the median, p99, p99.9, minimum, maximum and count of per-call times, in nanoseconds."""
    ordered = sorted(samples_ns)
    last = len(ordered) - 1
    return {
        "median_ns": statistics.median(ordered),
        "p99_ns": ordered[min(last, int(len(ordered) * 0.99))],
        "p999_ns": ordered[min(last, int(len(ordered) * 0.999))],
        "min_ns": ordered[0],
        "max_ns": ordered[last],
        "samples": len(ordered),
    }


@dataclasses.dataclass
class Subject:
    """One thing to time: ``call(i)`` makes one call with a distinct index ``i``.

    ``batch`` calls are timed together and ``between()``, when given, runs untimed
    after each batch (for example to wait for shadow work).
    """

    call: Callable[[int], object]
    batch: int = 100
    between: Callable[[], object] | None = None
    next_index: int = 0

    def run_batch(self) -> float:
        """Run one batch and return its time per call, in nanoseconds."""
        call = self.call
        index = self.next_index
        start = perf_ns()
        for i in range(index, index + self.batch):
            call(i)
        elapsed = perf_ns() - start
        self.next_index = index + self.batch
        if self.between is not None:
            self.between()
        return elapsed / self.batch


def time_round_robin(
    subjects: dict[str, Subject], *, repetitions: int, warmup: int
) -> dict[str, list[float]]:
    """Time ``repetitions`` batches of every subject, taking the subjects in turn.

    Taking turns spreads any change in background load over all subjects alike,
    so the differences between them stay fair on a shared machine. Timing a batch
    instead of one call keeps the resolution and the cost of ``perf_counter_ns``
    itself out of sub-microsecond figures. The garbage collector is off while timing.
    """
    for _ in range(warmup):
        for subject in subjects.values():
            subject.run_batch()

    samples: dict[str, list[float]] = {label: [] for label in subjects}
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repetitions):
            for label, subject in subjects.items():
                samples[label].append(subject.run_batch())
    finally:
        if gc_was_enabled:
            gc.enable()
    return samples


@dataclasses.dataclass
class AsyncSubject:
    """One coroutine function to time: ``await call(i)`` makes one awaited call with index ``i``."""

    call: Callable[[int], Awaitable[object]]
    batch: int = 100
    between: Callable[[], Awaitable[object]] | None = None
    next_index: int = 0

    async def run_batch(self) -> float:
        """Await one batch of calls and return its time per call, in nanoseconds."""
        call = self.call
        index = self.next_index
        start = perf_ns()
        for i in range(index, index + self.batch):
            await call(i)
        elapsed = perf_ns() - start
        self.next_index = index + self.batch
        if self.between is not None:
            await self.between()
        return elapsed / self.batch


async def time_round_robin_async(
    subjects: dict[str, AsyncSubject], *, repetitions: int, warmup: int
) -> dict[str, list[float]]:
    """Await ``repetitions`` batches of every subject in turn, as :func:`time_round_robin` does."""
    for _ in range(warmup):
        for subject in subjects.values():
            await subject.run_batch()

    samples: dict[str, list[float]] = {label: [] for label in subjects}
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repetitions):
            for label, subject in subjects.items():
                samples[label].append(await subject.run_batch())
    finally:
        if gc_was_enabled:
            gc.enable()
    return samples


def format_ns(value: float) -> str:
    """Format a duration given in nanoseconds with a readable unit."""
    if abs(value) < 1_000:
        return f"{value:.0f} ns"
    if abs(value) < 1_000_000:
        return f"{value / 1_000:.2f} µs"
    return f"{value / 1_000_000:.3f} ms"


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print a Markdown table, so the output can go into docs/benchmarks.md as is."""
    print("| " + " | ".join(headers) + " |")
    print("|" + "|".join("---" for _ in headers) + "|")
    for row in rows:
        print("| " + " | ".join(str(cell) for cell in row) + " |")


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def parser(description: str) -> argparse.ArgumentParser:
    arguments = argparse.ArgumentParser(description=description)
    arguments.add_argument("--json", metavar="FILE", help="also write the figures to FILE as JSON")
    return arguments


def header(title: str) -> None:
    print(f"# {title}")
    print()
    print("Command: " + " ".join([os.path.basename(sys.executable), *sys.argv]))
    print(describe_machine())
    print()


def write_json(path: str | None, figures: dict[str, Any]) -> None:
    if path is None:
        return
    with open(path, "w", encoding="utf-8") as output:
        json.dump({"machine": machine(), "command": sys.argv, **figures}, output, indent=2, default=str)


def configure_logging() -> None:
    """Log like a quiet production service: JSON lines at INFO and above, written nowhere.

    shadowfn never configures structlog. Left unconfigured, structlog prints every
    event, debug included, to stdout, which would both flood the output and time the
    terminal. This keeps the processing cost of warnings in the figures and drops
    debug events at the level check, as a service logging at INFO does.
    """
    import logging

    import structlog

    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.ReturnLoggerFactory(),
        cache_logger_on_first_use=True,
    )
