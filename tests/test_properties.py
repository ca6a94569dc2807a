"""Properties of keys, comparison, ignore paths and sampling, checked with Hypothesis."""

from __future__ import annotations

import copy
import inspect
import math
import os
import pickle
import random
import subprocess
import sys
import textwrap
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import shadowfn
from shadowfn._divergence import diff_records
from shadowfn._keys import KeyBuilder, canonical_bytes
from shadowfn._paths import Path, PathSet, format_path
from shadowfn._records import ResponseRecord, snapshot

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Hashable scalars, usable as dict keys and set members.
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=12),
    st.binary(max_size=12),
    st.datetimes(),
    st.dates(),
    st.times(),
    st.timedeltas(),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.uuids(),
)
HASHABLE = st.recursive(
    SCALARS, lambda inner: st.tuples(inner, inner) | st.frozensets(inner, max_size=3), max_leaves=6
)
VALUES = st.recursive(
    st.one_of(SCALARS, st.just(float("nan"))),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(HASHABLE, inner, max_size=4),
        st.sets(HASHABLE, max_size=4),
    ),
    max_leaves=20,
)

# The function whose call keys the subprocess rebuilds from the same source.
SIGNATURE_SOURCE = "def target(a, b=None, *rest, c=1, **extra):\n    pass\n"


def _target_signature() -> inspect.Signature:
    namespace: dict[str, Any] = {}
    exec(SIGNATURE_SOURCE, namespace)
    return inspect.signature(namespace["target"])


CHILD_SCRIPT = textwrap.dedent(
    """
    import inspect, pickle, sys
    from shadowfn._keys import KeyBuilder, canonical_bytes

    source, values, calls = pickle.load(sys.stdin.buffer)
    namespace = {}
    exec(source, namespace)
    builder = KeyBuilder(inspect.signature(namespace["target"]), None, skip_first=False)
    keys = [canonical_bytes(value) for value in values]
    keys += [builder.build(args, kwargs) for args, kwargs in calls]
    pickle.dump(keys, sys.stdout.buffer)
    """
)

CALLS = st.tuples(
    st.tuples(VALUES) | st.tuples(VALUES, VALUES, VALUES),
    st.dictionaries(st.sampled_from(["c", "d", "e"]), VALUES, max_size=2),
)


@settings(
    max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(st.lists(VALUES, min_size=40, max_size=40), st.lists(CALLS, min_size=10, max_size=10))
def test_canonical_key_same_in_another_process(values: list[Any], calls: list[Any]) -> None:
    builder = KeyBuilder(_target_signature(), None, skip_first=False)
    expected = [canonical_bytes(value) for value in values]
    expected += [builder.build(args, kwargs) for args, kwargs in calls]
    # Another hash seed changes set iteration order and str hashes.
    env = {**os.environ, "PYTHONHASHSEED": "12345", "SHADOWFN_DISABLED": "1"}

    child = subprocess.run(
        [sys.executable, "-c", CHILD_SCRIPT],
        input=pickle.dumps((SIGNATURE_SOURCE, values, calls)),
        capture_output=True,
        env=env,
        timeout=60,
        check=True,
    )

    assert pickle.loads(child.stdout) == expected


@FAST
@given(st.dictionaries(HASHABLE, VALUES, max_size=8))
def test_canonical_key_ignores_dict_order(mapping: dict[Any, Any]) -> None:
    reordered = dict(reversed(list(mapping.items())))

    assert canonical_bytes(reordered) == canonical_bytes(mapping)
    assert canonical_bytes({"outer": reordered}) == canonical_bytes({"outer": mapping})


@FAST
@given(st.dictionaries(st.sampled_from(["c", "d", "e"]), VALUES, max_size=3), VALUES)
def test_call_key_ignores_keyword_order(extra: dict[str, Any], first: Any) -> None:
    builder = KeyBuilder(_target_signature(), None, skip_first=False)
    reordered = dict(reversed(list(extra.items())))

    assert builder.build((first,), extra) == builder.build((first,), reordered)
    assert builder.build((first,), {}) == builder.build((), {"a": first})


@FAST
@given(VALUES)
def test_value_never_diverges_from_deep_copy(value: Any) -> None:
    primary = snapshot(value)
    candidate = snapshot(copy.deepcopy(value))

    assert diff_records(primary, candidate) is None


# JSON-like trees from a small alphabet, so two independent trees overlap often.
LEAVES = st.one_of(st.none(), st.booleans(), st.integers(-2, 2), st.sampled_from(["x", "y"]), st.just(1.5))
TREES = st.recursive(
    LEAVES,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["a", "b", "c"]), inner, max_size=3)
    ),
    max_leaves=12,
)
BODIES = st.dictionaries(st.sampled_from(["a", "b", "c"]), TREES, max_size=3)


def _differing_paths(primary: Any, candidate: Any, path: Path) -> set[str]:
    """Return the paths where two JSON-like values differ: a plain reference walk."""
    if isinstance(primary, dict) and isinstance(candidate, dict):
        found: set[str] = set()
        for key in primary.keys() | candidate.keys():
            if key in primary and key in candidate:
                found |= _differing_paths(primary[key], candidate[key], (*path, key))
            else:
                found.add(format_path((*path, key)))
        return found
    if isinstance(primary, list) and isinstance(candidate, list):
        found = set()
        for index in range(max(len(primary), len(candidate))):
            if index < len(primary) and index < len(candidate):
                found |= _differing_paths(primary[index], candidate[index], (*path, index))
            else:
                found.add(format_path((*path, index)))
        return found
    containers = (dict, list)
    if isinstance(primary, containers) or isinstance(candidate, containers) or primary != candidate:
        return {format_path(path)}
    return set()


def _reported(primary: Any, candidate: Any, ignore: PathSet | None = None) -> list[str]:
    divergence = diff_records(ResponseRecord(body=primary), ResponseRecord(body=candidate), ignore)
    if divergence is None or divergence.body is None:
        return []
    assert divergence.body.total_changes == len(divergence.body.changes)
    return [change.path for change in divergence.body.changes]


@FAST
@given(BODIES, BODIES)
def test_diff_lists_exactly_differing_paths(primary: dict[str, Any], candidate: dict[str, Any]) -> None:
    expected = _differing_paths(primary, candidate, ("body",))

    reported = _reported(primary, candidate)

    assert sorted(reported) == sorted(expected)


@FAST
@given(BODIES, BODIES, st.randoms(use_true_random=False))
def test_ignore_removes_exactly_that_change(
    primary: dict[str, Any], candidate: dict[str, Any], chooser: random.Random
) -> None:
    reported = _reported(primary, candidate)
    if not reported:
        return
    chosen = chooser.choice(reported)

    remaining = _reported(primary, candidate, PathSet([chosen]))

    assert sorted(remaining) == sorted(path for path in reported if path != chosen)


RATES = st.floats(min_value=0, max_value=100, allow_nan=False)


@FAST
@given(st.binary(max_size=24), RATES, RATES)
def test_sampling_monotone_in_rate(key: bytes, first: float, second: float) -> None:
    low, high = sorted((first, second))

    if shadowfn.should_shadow(key, low):
        assert shadowfn.should_shadow(key, high)


_KEY_SOURCE = random.Random(20240601)
KEYS = [_KEY_SOURCE.randbytes(16) for _ in range(10_000)]


@settings(max_examples=25, deadline=None, derandomize=True)
@given(RATES)
def test_sampling_within_three_sigma_of_rate(rate: float) -> None:
    probability = rate / 100
    expected = len(KEYS) * probability
    sigma = math.sqrt(len(KEYS) * probability * (1 - probability))

    shadowed = sum(shadowfn.should_shadow(key, rate) for key in KEYS)

    # At rates near 0 or 100 sigma is below one key; allow that one key.
    assert abs(shadowed - expected) <= max(3 * sigma, 1)


def test_sampling_bounds_are_exact() -> None:
    assert not any(shadowfn.should_shadow(key, 0) for key in KEYS)
    assert all(shadowfn.should_shadow(key, 100) for key in KEYS)
