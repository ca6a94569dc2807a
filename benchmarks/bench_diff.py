"""Cost of comparing two records: the ``==`` check and ``diff_records``, for bodies of 1 KB to 10 MB.

Run: python benchmarks/bench_diff.py [--json FILE]

Bodies are nested JSON-like data: a dict with a ``meta`` object and a list of
items, each item holding scalars, a list of tags and a nested ``attributes``
object. The size is the length of the body encoded with ``json.dumps``. For
each size the script builds two independent copies, so no comparison can stop
early on object identity. A third copy has one leaf changed in the last item,
so ``==`` walks nearly the whole body before it finds the change.

shadowfn compares the two records with ``==`` first and runs ``diff_records``
only on a mismatch, so:

* an equal body costs one ``==`` on the records;
* a body with one change costs one ``==`` plus one ``diff_records``.

Also shown, because it runs on the caller's thread on every sampled call: the
snapshot of the primary's value into a record (``shadowfn._records.snapshot``).
laboratory compares observations with ``==`` only and has no structural diff.
"""

from __future__ import annotations

import copy
import json
import sys
from collections.abc import Callable
from typing import Any

import _harness as h

from shadowfn import ResponseRecord
from shadowfn._divergence import diff_records
from shadowfn._records import snapshot

TARGET_SIZES = {"1 KB": 1_000, "100 KB": 100_000, "10 MB": 10_000_000}


def make_item(index: int) -> dict[str, Any]:
    return {
        "id": index,
        "name": f"item number {index}",
        "active": index % 2 == 0,
        "price": index * 1.25,
        "tags": ["red", "green", str(index % 13)],
        "attributes": {"weight": index % 97, "origin": {"country": "NZ", "code": index % 7}},
    }


def make_body(size: int) -> dict[str, Any]:
    """Build a body whose JSON encoding is close to ``size`` bytes."""
    item_bytes = len(json.dumps(make_item(1000)))
    count = max(1, round((size - 60) / (item_bytes + 2)))
    return {"meta": {"version": 3, "source": "bench"}, "items": [make_item(i) for i in range(count)]}


def time_call(call: Callable[[], object], budget_ns: float = 2e8, repetitions: int = 21) -> dict[str, float]:
    """Time ``call()`` in batches sized to ``budget_ns / repetitions``, after one warm-up call."""
    start = h.perf_ns()
    call()
    once = max(1, h.perf_ns() - start)
    batch = max(1, int(budget_ns / repetitions / once))
    subject = h.Subject(lambda _: call(), batch=batch)
    samples = h.time_round_robin({"call": subject}, repetitions=repetitions, warmup=1)["call"]
    return h.summarize(samples)


def measure(label: str, size: int) -> dict[str, Any]:
    body = make_body(size)
    equal_body = copy.deepcopy(body)
    changed_body = copy.deepcopy(body)
    changed_body["items"][-1]["attributes"]["origin"]["code"] = -1
    actual_size = len(json.dumps(body))

    primary = ResponseRecord(body=body)
    equal = ResponseRecord(body=equal_body)
    changed = ResponseRecord(body=changed_body)
    divergence = diff_records(primary, changed)
    assert divergence is not None and divergence.body is not None
    assert divergence.body.total_changes == 1, divergence.summary()
    assert primary == equal
    assert primary != changed

    figures = {
        "size_bytes": actual_size,
        "body_eq_equal": time_call(lambda: body == equal_body),
        "record_eq_equal": time_call(lambda: primary == equal),
        "diff_equal": time_call(lambda: diff_records(primary, equal)),
        "record_eq_changed": time_call(lambda: primary == changed),
        "diff_changed": time_call(lambda: diff_records(primary, changed)),
        "snapshot": time_call(lambda: snapshot(body)),
    }
    figures["pipeline_equal_ns"] = figures["record_eq_equal"]["median_ns"]
    figures["pipeline_changed_ns"] = (
        figures["record_eq_changed"]["median_ns"] + figures["diff_changed"]["median_ns"]
    )
    figures["label"] = label
    return figures


def main(argv: list[str] | None = None) -> int:
    arguments = h.parser(__doc__.splitlines()[0])
    options = arguments.parse_args(argv)
    h.header("Diff cost by body size")

    results = [measure(label, size) for label, size in TARGET_SIZES.items()]

    rows = []
    for f in results:
        rows.append(
            [
                f["label"],
                f"{f['size_bytes']:,}",
                h.format_ns(f["body_eq_equal"]["median_ns"]),
                h.format_ns(f["record_eq_equal"]["median_ns"]),
                h.format_ns(f["diff_equal"]["median_ns"]),
                h.format_ns(f["record_eq_changed"]["median_ns"]),
                h.format_ns(f["diff_changed"]["median_ns"]),
                h.format_ns(f["snapshot"]["median_ns"]),
            ]
        )
    print("Median per call:")
    h.print_table(
        [
            "body",
            "JSON bytes",
            "`==` bodies, equal",
            "`==` records, equal",
            "diff_records, equal",
            "`==` records, 1 change",
            "diff_records, 1 change",
            "snapshot (caller thread)",
        ],
        rows,
    )
    print()

    rows = []
    for f in results:
        size = f["size_bytes"]
        rows.append(
            [
                f["label"],
                f"{f['pipeline_equal_ns'] / size:.2f}",
                f"{f['pipeline_changed_ns'] / size:.2f}",
                f"{f['snapshot']['median_ns'] / size:.2f}",
            ]
        )
    print("Nanoseconds per JSON byte (constant when the cost is linear):")
    h.print_table(["body", "equal: `==`", "1 change: `==` + diff", "snapshot"], rows)
    print()

    small, large = results[1], results[2]
    growth = large["size_bytes"] / small["size_bytes"]
    changed_ratio = large["pipeline_changed_ns"] / small["pipeline_changed_ns"]
    equal_ratio = large["pipeline_equal_ns"] / small["pipeline_equal_ns"]
    # The records' ``==`` also compares ok, status, headers and error, a constant of
    # well under 1 µs, so the bound is one body ``==`` plus 10% noise plus 1 µs.
    equal_within = all(
        f["pipeline_equal_ns"] <= f["body_eq_equal"]["median_ns"] * 1.1 + 1_000 for f in results
    )
    worst_equal = max(f["pipeline_equal_ns"] / f["body_eq_equal"]["median_ns"] for f in results)
    worst_diff_equal = max(f["diff_equal"]["median_ns"] / f["body_eq_equal"]["median_ns"] for f in results)
    targets = [
        [
            "linear: 100 KB to 10 MB, cost ratio vs size ratio (1 change)",
            f"{changed_ratio:.0f}x for {growth:.0f}x the bytes",
            h.verdict(changed_ratio <= growth * 1.5),
        ],
        [
            "linear: 100 KB to 10 MB, cost ratio vs size ratio (equal)",
            f"{equal_ratio:.0f}x for {growth:.0f}x the bytes",
            h.verdict(equal_ratio <= growth * 1.5),
        ],
        [
            "equal body costs no more than one `==`: records `==` <= 1.1 x bodies `==` + 1 µs",
            f"worst ratio {worst_equal:.2f}x",
            h.verdict(equal_within),
        ],
        [
            "diff_records on equal bodies (never called by shadowfn) / one `==`",
            f"worst ratio {worst_diff_equal:.2f}x",
            "(reported)",
        ],
    ]
    print("Targets (the 1.5x and 1.1x factors allow for timing noise):")
    h.print_table(["target", "measured", "verdict"], targets)
    h.write_json(options.json, {"results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
