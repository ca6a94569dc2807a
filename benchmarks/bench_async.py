"""Per-call overhead and caller latency of an awaited shadowed call, beside a bare awaited call.

Run: python benchmarks/bench_async.py [--quick] [--json FILE]

Every subject wraps the same coroutine primary, ``async primary(x) -> x + 1``,
measured in one event loop, one after the other in turn. laboratory 1.0.2 has
no async support, so it has no row here.

* bare: the undecorated coroutine function;
* shadowfn at rate 0, at rate 1 (a distinct argument, so a distinct key, per
  call), at rate 1 on keys known to be unsampled, and at rate 100 with a fast
  coroutine candidate, which runs as a task on the same loop.

Caller latency is timed per awaited call, with a coroutine candidate that awaits
``asyncio.sleep(0.005)`` and, for the mixed pairing, a sync candidate that calls
``time.sleep(0.005)`` on the worker pool.
"""

from __future__ import annotations

import asyncio
import inspect
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import _harness as h

import shadowfn
from shadowfn import shadow
from shadowfn._keys import KeyBuilder

SLOW_CANDIDATE_S = 0.005


async def primary(x: int) -> int:
    return x + 1


async def fast_candidate(x: int) -> int:
    return x + 1


async def slow_candidate(x: int) -> int:
    await asyncio.sleep(SLOW_CANDIDATE_S)
    return x + 1


def slow_sync_candidate(x: int) -> int:
    time.sleep(SLOW_CANDIDATE_S)
    return x + 1


def unsampled_arguments(count: int, rate: float) -> list[int]:
    """Return ``count`` distinct arguments whose sticky key is not sampled at ``rate``."""
    builder = KeyBuilder(inspect.signature(primary), None, skip_first=False)
    found = []
    candidate_argument = 0
    while len(found) < count:
        if not shadowfn.should_shadow(builder.build((candidate_argument,), {}), rate):
            found.append(candidate_argument)
        candidate_argument += 1
    return found


async def adrain() -> None:
    if not await shadowfn.adrain(timeout=30):
        raise RuntimeError("shadow work did not drain within 30 s")


async def measure_overhead(quick: bool) -> dict[str, dict[str, float]]:
    repetitions = 300 if quick else 3000
    unsampled = unsampled_arguments(100 * (repetitions + 60), 1)
    rate0 = shadow(fast_candidate, rate=0, name="bench_async.rate0")(primary)
    rate1 = shadow(fast_candidate, rate=1, name="bench_async.rate1")(primary)
    rate1_unsampled = shadow(fast_candidate, rate=1, name="bench_async.rate1u")(primary)
    rate100 = shadow(fast_candidate, rate=100, name="bench_async.rate100")(primary)

    def unsampled_call(i: int) -> Awaitable[int]:
        return rate1_unsampled(unsampled[i])  # type: ignore[no-any-return]

    subjects = {
        "bare": h.AsyncSubject(primary),
        "shadowfn, rate 0": h.AsyncSubject(rate0),
        "shadowfn, rate 1": h.AsyncSubject(rate1),
        "shadowfn, rate 1, unsampled keys": h.AsyncSubject(unsampled_call),
        # Batches of 16 stay under the default pending bound of 32, so no call is shed.
        "shadowfn, rate 100": h.AsyncSubject(rate100, batch=16, between=adrain),
    }
    samples = await h.time_round_robin_async(subjects, repetitions=repetitions, warmup=50)
    await adrain()
    return {label: h.summarize(values) for label, values in samples.items()}


async def measure_latency(quick: bool) -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
    subjects: dict[str, Callable[[int], Awaitable[int]]] = {
        "bare": primary,
        "shadowfn, rate 100, async candidate": shadow(slow_candidate, rate=100, name="bench_async.latency")(
            primary
        ),
        "shadowfn, rate 100, sync candidate": shadow(
            slow_sync_candidate, rate=100, name="bench_async.latency_sync"
        )(primary),
    }
    pause_s = 0.0003  # keeps about 15 slow candidates in flight, under the pending bound
    repetitions = 1000 if quick else 6000
    results: dict[str, dict[str, float]] = {}
    for label, function in subjects.items():
        samples = []
        for i in range(repetitions + 20):
            start = h.perf_ns()
            await function(i)
            elapsed = h.perf_ns() - start
            if i >= 20:
                samples.append(elapsed)
            await asyncio.sleep(pause_s)
        await adrain()
        results[label] = h.summarize(samples)
    stats = shadowfn.stats()
    counters = {name: stats[name].as_dict() for name in ("bench_async.latency", "bench_async.latency_sync")}
    return results, counters


async def run(quick: bool) -> dict[str, Any]:
    overhead = await measure_overhead(quick)
    latency, counters = await measure_latency(quick)
    return {"overhead": overhead, "latency": latency, "latency_stats": counters}


def main(argv: list[str] | None = None) -> int:
    arguments = h.parser(__doc__.splitlines()[0])
    arguments.add_argument("--quick", action="store_true", help="fewer repetitions, for a smoke run")
    options = arguments.parse_args(argv)
    h.configure_logging()
    h.header("Async overhead and caller latency")

    figures = asyncio.run(run(options.quick))
    overhead, latency = figures["overhead"], figures["latency"]

    bare = overhead["bare"]["median_ns"]
    rows = [
        [label, h.format_ns(f["median_ns"]), h.format_ns(f["p99_ns"]), h.format_ns(f["median_ns"] - bare)]
        for label, f in overhead.items()
    ]
    print("Per awaited call (batches of 100 calls; rate 100 in batches of 16 with adrain() between):")
    h.print_table(["subject", "median", "p99", "overhead vs bare (median)"], rows)
    print()

    bare_latency = latency["bare"]
    rows = [
        [
            label,
            h.format_ns(f["median_ns"]),
            h.format_ns(f["p99_ns"]),
            h.format_ns(f["median_ns"] - bare_latency["median_ns"]),
            h.format_ns(f["p99_ns"] - bare_latency["p99_ns"]),
        ]
        for label, f in latency.items()
    ]
    print(
        f"Caller latency with a {SLOW_CANDIDATE_S * 1000:.0f} ms candidate (one awaited call timed at a time):"
    )
    h.print_table(["subject", "median", "p99", "added (median)", "added (p99)"], rows)
    for name, counters in figures["latency_stats"].items():
        print(f"counters of {name}: {counters}")
    print()

    targets = []
    for label in ("shadowfn, rate 100, async candidate", "shadowfn, rate 100, sync candidate"):
        added = latency[label]["median_ns"] - bare_latency["median_ns"]
        targets.append(
            [f"{label}: within 0.1 ms of bare (median)", h.format_ns(added), h.verdict(added <= 100_000)]
        )
    print("Targets:")
    h.print_table(["target", "measured", "verdict"], targets)

    h.write_json(options.json, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
