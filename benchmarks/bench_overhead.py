"""Per-call overhead and caller latency of a sync shadowed call, beside a bare call and laboratory.

Run: python benchmarks/bench_overhead.py [--quick] [--json FILE]

Every subject wraps the same primary, ``primary(x) -> x + 1``, and is measured in
the same process, one after the other:

* bare: the undecorated primary;
* laboratory, disabled: ``Experiment.decorator`` with ``enabled()`` returning False,
  the path laboratory takes when an experiment is off (it still builds the
  experiment object and an observation on every call);
* laboratory, enabled: the candidate runs too, inline, after or before the primary;
* shadowfn at rate 0, at rate 1 (distinct argument per call, so a distinct key),
  at rate 1 on keys known to be unsampled, and at rate 100.

Overhead is the subject's per-call median minus the bare call's median. Caller
latency is timed per call, with a candidate that sleeps 5 ms.
"""

from __future__ import annotations

import inspect
import sys
import time
from collections.abc import Callable
from typing import Any

import _harness as h
from laboratory import Experiment

import shadowfn
from shadowfn import shadow
from shadowfn._keys import KeyBuilder

SLOW_CANDIDATE_S = 0.005


def primary(x: int) -> int:
    return x + 1


def fast_candidate(x: int) -> int:
    return x + 1


def slow_candidate(x: int) -> int:
    time.sleep(SLOW_CANDIDATE_S)
    return x + 1


class DisabledExperiment(Experiment):  # type: ignore[misc]
    def enabled(self) -> bool:
        return False


def build_subjects() -> dict[str, Callable[[int], int]]:
    return {
        "bare": primary,
        "laboratory, disabled": DisabledExperiment.decorator(fast_candidate)(primary),
        "laboratory, enabled": Experiment.decorator(fast_candidate)(primary),
        "shadowfn, rate 0": shadow(fast_candidate, rate=0, name="bench.rate0")(primary),
        "shadowfn, rate 1": shadow(fast_candidate, rate=1, name="bench.rate1")(primary),
        "shadowfn, rate 1, unsampled keys": shadow(fast_candidate, rate=1, name="bench.rate1u")(primary),
        "shadowfn, rate 100": shadow(fast_candidate, rate=100, name="bench.rate100")(primary),
    }


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


def drain() -> None:
    if not shadowfn.drain(timeout=30):
        raise RuntimeError("shadow work did not drain within 30 s")


def measure_overhead(quick: bool) -> dict[str, dict[str, float]]:
    functions = build_subjects()
    repetitions = 300 if quick else 3000
    unsampled = unsampled_arguments(100 * (repetitions + 60), 1)

    subjects = {label: h.Subject(function) for label, function in functions.items()}
    unsampled_function = functions["shadowfn, rate 1, unsampled keys"]
    subjects["shadowfn, rate 1, unsampled keys"] = h.Subject(lambda i: unsampled_function(unsampled[i]))
    # Batches of 16 stay under the default pending bound of 32, so no call is shed.
    subjects["shadowfn, rate 100"] = h.Subject(functions["shadowfn, rate 100"], batch=16, between=drain)

    samples = h.time_round_robin(subjects, repetitions=repetitions, warmup=50)
    drain()
    return {label: h.summarize(values) for label, values in samples.items()}


def measure_latency(quick: bool) -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
    subjects = {
        "bare": primary,
        "laboratory, enabled": Experiment.decorator(slow_candidate)(primary),
        "shadowfn, rate 100": shadow(slow_candidate, rate=100, name="bench.latency")(primary),
    }
    pause_s = 0.0003  # keeps about 15 slow candidates in flight, under the pending bound
    results: dict[str, dict[str, float]] = {}
    for label, function in subjects.items():
        # laboratory waits for the 5 ms candidate on every call, so it gets fewer repetitions.
        if label.startswith("laboratory"):
            repetitions = 100 if quick else 600
        else:
            repetitions = 1000 if quick else 6000
        samples = []
        for i in range(repetitions + 20):
            start = h.perf_ns()
            function(i)
            elapsed = h.perf_ns() - start
            if i >= 20:
                samples.append(elapsed)
            time.sleep(pause_s)
        drain()
        results[label] = h.summarize(samples)
    stats = shadowfn.stats()["bench.latency"]
    return results, stats.as_dict()


def main(argv: list[str] | None = None) -> int:
    arguments = h.parser(__doc__.splitlines()[0])
    arguments.add_argument("--quick", action="store_true", help="fewer repetitions, for a smoke run")
    options = arguments.parse_args(argv)
    h.configure_logging()
    h.header("Sync overhead and caller latency")

    overhead = measure_overhead(options.quick)
    bare = overhead["bare"]["median_ns"]
    rows = []
    for label, figures in overhead.items():
        extra = figures["median_ns"] - bare
        rows.append(
            [label, h.format_ns(figures["median_ns"]), h.format_ns(figures["p99_ns"]), h.format_ns(extra)]
        )
    print("Per-call time (batches of 100 calls; rate 100 in batches of 16 with a drain between):")
    h.print_table(["subject", "median", "p99", "overhead vs bare (median)"], rows)
    print()

    latency, latency_stats = measure_latency(options.quick)
    bare_latency = latency["bare"]["median_ns"]
    rows = []
    for label, figures in latency.items():
        rows.append(
            [
                label,
                h.format_ns(figures["median_ns"]),
                h.format_ns(figures["p99_ns"]),
                h.format_ns(figures["median_ns"] - bare_latency),
                h.format_ns(figures["p99_ns"] - latency["bare"]["p99_ns"]),
            ]
        )
    print(f"Caller latency with a {SLOW_CANDIDATE_S * 1000:.0f} ms candidate (one call timed at a time):")
    h.print_table(["subject", "median", "p99", "added (median)", "added (p99)"], rows)
    print(f"shadowfn counters for the latency run: {latency_stats}")
    print()

    rate0 = overhead["shadowfn, rate 0"]["median_ns"] - bare
    unsampled = overhead["shadowfn, rate 1, unsampled keys"]["median_ns"] - bare
    lab_disabled = overhead["laboratory, disabled"]["median_ns"] - bare
    added = latency["shadowfn, rate 100"]["median_ns"] - bare_latency
    targets = [
        ["rate-0 overhead <= 1 µs", h.format_ns(rate0), h.verdict(rate0 <= 1_000)],
        [
            "unsampled overhead < laboratory disabled",
            f"{h.format_ns(unsampled)} vs {h.format_ns(lab_disabled)}",
            h.verdict(unsampled < lab_disabled),
        ],
        ["caller latency within 0.1 ms of bare (median)", h.format_ns(added), h.verdict(added <= 100_000)],
    ]
    print("Targets:")
    h.print_table(["target", "measured", "verdict"], targets)

    h.write_json(
        options.json,
        {"overhead": overhead, "latency": latency, "latency_stats": latency_stats},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
