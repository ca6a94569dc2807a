"""Memory and counters under one million calls at rate 100 against a candidate that never returns.

Run: python benchmarks/bench_memory.py [--calls N] [--json FILE]

Each measurement runs in a fresh subprocess, so one does not inherit the other's
heap or threads:

* bare: the undecorated primary, called N times, for the baseline RSS growth;
* shadowfn, RSS: the shadowed primary, called N times, RSS sampled every 10,000
  calls (``VmRSS`` from /proc/self/status);
* shadowfn, tracemalloc: the same calls with ``tracemalloc`` tracing Python
  allocations, for the peak growth of the Python heap.

The candidate blocks forever on ``threading.Event().wait()``. Once the pending
bound is reached, every further call must be shed, so ``shed`` must equal the
calls minus the bound, and the counters must add up to the calls. laboratory runs
its candidate inline, so its first call would never return: it has no row.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
import tracemalloc
from typing import Any

import _harness as h

import shadowfn
from shadowfn import shadow
from shadowfn._executor import admission

LIMIT_MB = 20
SAMPLE_EVERY = 10_000


def rss_bytes() -> int:
    """Return the resident set size of this process, from /proc/self/status."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("VmRSS not found in /proc/self/status")


def primary(x: int) -> dict[str, int]:
    return {"value": x}


def never_returns(x: int) -> dict[str, int]:
    threading.Event().wait()
    return {"value": x}


def run_phase(mode: str, calls: int) -> dict[str, Any]:
    h.configure_logging()
    if mode == "bare":
        function = primary
    else:
        function = shadow(never_returns, rate=100, timeout=0.05, name="bench_memory.hung")(primary)
    # One call before the baseline starts shadowfn's threads and fills its caches;
    # it is counted in ``total_calls``.
    function(-1)
    time.sleep(0.2)

    if mode == "tracemalloc":
        tracemalloc.start()
    baseline_rss = rss_bytes()
    baseline_traced = tracemalloc.get_traced_memory()[0] if mode == "tracemalloc" else 0
    max_rss = baseline_rss

    started = time.perf_counter()
    for i in range(calls):
        function(i)
        if i % SAMPLE_EVERY == 0:
            max_rss = max(max_rss, rss_bytes())
    seconds = time.perf_counter() - started
    max_rss = max(max_rss, rss_bytes())

    figures: dict[str, Any] = {
        "mode": mode,
        "calls": calls,
        "total_calls": calls + 1,
        "seconds": seconds,
        "rss_growth_bytes": max_rss - baseline_rss,
    }
    if mode == "tracemalloc":
        current, peak = tracemalloc.get_traced_memory()
        figures["traced_peak_growth_bytes"] = peak - baseline_traced
        figures["traced_current_growth_bytes"] = current - baseline_traced
        tracemalloc.stop()
    if mode != "bare":
        figures["drained"] = shadowfn.drain(timeout=10)
        figures["bound"] = admission.max_pending
        figures["stats"] = shadowfn.stats()["bench_memory.hung"].as_dict()
    return figures


def run_in_subprocess(mode: str, calls: int) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, __file__, "--phase", mode, "--calls", str(calls)],
        check=True,
        capture_output=True,
        text=True,
        timeout=900,
    )
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def megabytes(value: int) -> str:
    return f"{value / 2**20:.2f} MB"


def main(argv: list[str] | None = None) -> int:
    arguments = h.parser(__doc__.splitlines()[0])
    arguments.add_argument("--calls", type=int, default=1_000_000, help="number of calls per measurement")
    arguments.add_argument("--phase", choices=("bare", "rss", "tracemalloc"), help=argparse.SUPPRESS)
    options = arguments.parse_args(argv)
    if options.phase is not None:
        print(json.dumps(run_phase(options.phase, options.calls)))
        return 0

    h.header("Memory under a hung candidate")
    bare = run_in_subprocess("bare", options.calls)
    rss = run_in_subprocess("rss", options.calls)
    traced = run_in_subprocess("tracemalloc", options.calls)

    rows = [
        ["bare", f"{bare['calls']:,}", f"{bare['seconds']:.2f} s", megabytes(bare["rss_growth_bytes"]), "-"],
        [
            "shadowfn, RSS run",
            f"{rss['calls']:,}",
            f"{rss['seconds']:.2f} s",
            megabytes(rss["rss_growth_bytes"]),
            "-",
        ],
        [
            "shadowfn, tracemalloc run",
            f"{traced['calls']:,}",
            f"{traced['seconds']:.2f} s",
            megabytes(traced["rss_growth_bytes"]),
            megabytes(traced["traced_peak_growth_bytes"]),
        ],
    ]
    h.print_table(["subject", "calls", "time", "peak RSS growth", "peak tracemalloc growth"], rows)
    print()

    stats = rss["stats"]
    total = rss["total_calls"]
    expected_shed = total - rss["bound"]
    outcomes = sum(
        stats[name]
        for name in (
            "matched",
            "diverged",
            "timeouts",
            "shed",
            "unkeyable",
            "uncopyable",
            "cancelled",
            "compare_errors",
            "internal_errors",
        )
    )
    print(f"Counters after drain (RSS run, pending bound {rss['bound']}): {stats}")
    print()
    worst_growth = max(
        rss["rss_growth_bytes"], traced["rss_growth_bytes"], traced["traced_peak_growth_bytes"]
    )
    targets = [
        [
            f"peak memory growth < {LIMIT_MB} MB",
            megabytes(worst_growth),
            h.verdict(worst_growth < LIMIT_MB * 2**20),
        ],
        [
            "shed = calls beyond the pending bound",
            f"{stats['shed']:,} = {total:,} calls - {rss['bound']}",
            h.verdict(stats["shed"] == expected_shed),
        ],
        [
            "counters add up to the calls",
            f"calls {stats['calls']:,}, sampled {stats['sampled']:,}, outcomes {outcomes:,}, pending {stats['pending']}",
            h.verdict(stats["calls"] == total and stats["sampled"] == outcomes and stats["pending"] == 0),
        ],
    ]
    print("Targets:")
    h.print_table(["target", "measured", "verdict"], targets)
    h.write_json(options.json, {"bare": bare, "rss": rss, "tracemalloc": traced})
    return 0


if __name__ == "__main__":
    sys.exit(main())
