"""Caller latency and outcome accounting under sixteen threads calling at once, beside the bare function.

Run: python benchmarks/bench_load.py [--threads 16] [--seconds 10] [--json FILE]

The primary builds a small record and encodes it with the standard library's
``json``; the candidate encodes the same record with its keys in another order
for one id in ten, so the run has matches and divergences. Three subjects get the
same load one after the other, each for ``--seconds``:

* bare: the undecorated primary;
* shadowfn, rate 100: the candidate runs on the worker pool; calls past the
  pending bound are shed;
* laboratory, enabled: laboratory runs the candidate inline in the caller's thread.

Each thread times every call with ``perf_counter_ns``. After the shadowfn run and
``shadowfn.drain()``, the counters must add up: ``calls`` equals the calls the
threads made, and every sampled call has exactly one outcome.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import _harness as h
from laboratory import Experiment

import shadowfn
from shadowfn import shadow
from shadowfn._stats import OUTCOMES


def make_record(record_id: int) -> dict[str, Any]:
    return {
        "id": record_id,
        "name": f"record {record_id}",
        "tags": ["alpha", "beta", str(record_id % 7)],
        "price": record_id / 100,
    }


def primary(record_id: int) -> str:
    return json.dumps(make_record(record_id), sort_keys=True)


def candidate(record_id: int) -> str:
    return json.dumps(make_record(record_id), sort_keys=record_id % 10 != 0)


def run_load(function: Callable[[int], object], threads: int, seconds: float) -> tuple[list[int], int]:
    """Call ``function`` from ``threads`` threads for ``seconds``; return every call's latency in ns."""
    start_barrier = threading.Barrier(threads + 1)
    stop = threading.Event()
    per_thread: list[list[int]] = [[] for _ in range(threads)]

    def worker(index: int) -> None:
        latencies = per_thread[index]
        perf_ns = h.perf_ns
        argument = index * 10_000_000
        start_barrier.wait()
        while not stop.is_set():
            started = perf_ns()
            function(argument)
            latencies.append(perf_ns() - started)
            argument += 1

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in workers:
        thread.start()
    start_barrier.wait()
    time.sleep(seconds)
    stop.set()
    for thread in workers:
        thread.join()

    latencies = [value for thread_latencies in per_thread for value in thread_latencies]
    return latencies, len(latencies)


def main(argv: list[str] | None = None) -> int:
    arguments = h.parser(__doc__.splitlines()[0])
    arguments.add_argument("--threads", type=int, default=16, help="number of calling threads")
    arguments.add_argument(
        "--seconds", type=float, default=10.0, help="duration of each load run, in seconds"
    )
    options = arguments.parse_args(argv)
    h.configure_logging()
    h.header("Caller latency under concurrent load")

    subjects: dict[str, Callable[[int], object]] = {
        "bare": primary,
        "shadowfn, rate 100": shadow(candidate, rate=100, name="bench_load.encode")(primary),
        "laboratory, enabled": Experiment.decorator(candidate)(primary),
    }
    results: dict[str, dict[str, Any]] = {}
    counters: dict[str, int] = {}
    drained = True
    for label, function in subjects.items():
        latencies, calls = run_load(function, options.threads, options.seconds)
        if label.startswith("shadowfn"):
            drained = shadowfn.drain(timeout=30)
            counters = shadowfn.stats()["bench_load.encode"].as_dict()
        figures = h.summarize(latencies)
        figures["calls"] = calls
        figures["calls_per_second"] = calls / options.seconds
        results[label] = figures

    rows = [
        [
            label,
            f"{f['calls']:,}",
            f"{f['calls_per_second']:,.0f}",
            h.format_ns(f["median_ns"]),
            h.format_ns(f["p99_ns"]),
            h.format_ns(f["p999_ns"]),
            h.format_ns(f["max_ns"]),
        ]
        for label, f in results.items()
    ]
    print(f"{options.threads} threads, {options.seconds:g} s per subject:")
    h.print_table(["subject", "calls", "calls/s", "p50", "p99", "p99.9", "max"], rows)
    print()

    shadow_calls = results["shadowfn, rate 100"]["calls"]
    outcomes = sum(counters[name] for name in OUTCOMES)
    print(f"shadowfn counters after drain (drained: {drained}): {counters}")
    print()
    bare = results["bare"]
    shadowed = results["shadowfn, rate 100"]
    targets = [
        [
            "no lost outcomes: calls counted = calls made, sampled = outcomes, pending 0",
            f"{counters['calls']:,} = {shadow_calls:,}; {counters['sampled']:,} = {outcomes:,}; "
            f"pending {counters['pending']}",
            h.verdict(
                drained
                and counters["calls"] == shadow_calls
                and counters["sampled"] == outcomes
                and counters["pending"] == 0
            ),
        ],
        [
            "p50 added to bare",
            h.format_ns(shadowed["median_ns"] - bare["median_ns"]),
            "(reported)",
        ],
        [
            "p99 added to bare",
            h.format_ns(shadowed["p99_ns"] - bare["p99_ns"]),
            "(reported)",
        ],
    ]
    print("Targets:")
    h.print_table(["target", "measured", "verdict"], targets)
    h.write_json(options.json, {"results": results, "counters": counters, "drained": drained})
    return 0


if __name__ == "__main__":
    sys.exit(main())
