"""Cost of the steps of a sampling decision, and of the library calls they replace.

Run: python benchmarks/bench_keys.py [--json FILE]

An unsampled call at a rate below 100 binds its arguments to the signature,
encodes them into key bytes, hashes them and counts the call. shadowfn binds
plain signatures by position (``KeyBuilder._bind_plain``) instead of calling
``inspect.Signature.bind`` and ``BoundArguments.apply_defaults``. This script
times both on a one-argument function and on a three-argument function with a
default, beside the other steps, so the choice can be checked on any machine.
"""

from __future__ import annotations

import hashlib
import inspect
import sys
from collections.abc import Callable
from typing import Any

import _harness as h

from shadowfn._keys import KeyBuilder
from shadowfn._sampling import decide
from shadowfn._stats import Counters


def one(x: int) -> int:
    return x


def three(a: int, b: str, c: float = 1.5) -> int:
    return a


def signature_bind(signature: inspect.Signature, args: tuple[Any, ...]) -> list[tuple[str, Any]]:
    bound = signature.bind(*args)
    bound.apply_defaults()
    return list(bound.arguments.items())


def main(argv: list[str] | None = None) -> int:
    arguments = h.parser(__doc__.splitlines()[0])
    options = arguments.parse_args(argv)
    h.header("Steps of a sampling decision")

    one_signature = inspect.signature(one)
    three_signature = inspect.signature(three)
    one_builder = KeyBuilder(one_signature, None, skip_first=False)
    three_builder = KeyBuilder(three_signature, None, skip_first=False)
    key = one_builder.build((12345,), {})
    counters = Counters("bench_keys")

    calls: dict[str, Callable[[int], object]] = {
        "inspect.Signature.bind + apply_defaults, f(x)": lambda i: signature_bind(one_signature, (i,)),
        "KeyBuilder._bind_plain, f(x)": lambda i: one_builder._bind_plain((i,), {}),
        "inspect.Signature.bind + apply_defaults, f(a, b, c=1.5)": lambda i: signature_bind(
            three_signature, (i, "b")
        ),
        "KeyBuilder._bind_plain, f(a, b, c=1.5)": lambda i: three_builder._bind_plain((i, "b"), {}),
        "KeyBuilder.build, f(x)": lambda i: one_builder.build((i,), {}),
        "KeyBuilder.build, f(a, b, c=1.5)": lambda i: three_builder.build((i, "b"), {}),
        "hashlib.sha256(key).digest()": lambda i: hashlib.sha256(key).digest(),
        "decide (sha256 and bucket) at rate 1": lambda i: decide(key, 1, 0.0),
        "Counters.count_unsampled": lambda i: counters.count_unsampled(),
    }
    subjects = {label: h.Subject(call) for label, call in calls.items()}
    samples = h.time_round_robin(subjects, repetitions=2000, warmup=50)
    figures = {label: h.summarize(values) for label, values in samples.items()}

    rows = [[label, h.format_ns(f["median_ns"]), h.format_ns(f["p99_ns"])] for label, f in figures.items()]
    print("Per call (batches of 100):")
    h.print_table(["step", "median", "p99"], rows)
    h.write_json(options.json, {"steps": figures})
    return 0


if __name__ == "__main__":
    sys.exit(main())
